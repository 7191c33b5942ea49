// The GenrmBackend contract (genrm_backend_contract.h) for the backends that
// need no LibTorch: rule, fake, latency around both, and openai against a
// local scripted server (model/model_backend_contract_test.cc has the
// model backend).
#include "genrm_server/genrm_backend_contract.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "genrm_server/fake_genrm_backend.h"
#include "genrm_server/genrm_backend.h"
#include "genrm_server/latency_backend.h"
#include "genrm_server/openai/fake_openai_server.h"
#include "genrm_server/openai/openai_backend.h"
#include "genrm_server/options_from_spec.h"
#include "genrm_server/rule_backend.h"
#include "gtest/gtest.h"

namespace fapo::genrm::contract {
namespace {

std::unique_ptr<GenrmBackend> MakeFake() {
  auto state = std::make_shared<FakeGenrmBackend::State>();
  absl::MutexLock lock(&state->mu);
  state->complete_immediately = true;
  return std::make_unique<FakeGenrmBackend>(state);
}

std::unique_ptr<GenrmBackend> WithLatency(std::unique_ptr<GenrmBackend> inner) {
  LatencyBackendOptions options;
  options.distribution = {LatencyKind::kLogNormal, 5, 3};
  return *LatencyBackend::Create(options, std::move(inner));
}

// One server for the whole executable, never stopped (civetweb takes ~2 s
// to stop); it answers every request with a critique boxing step 0.
FakeOpenAiServer& OpenAiServer() {
  static FakeOpenAiServer* server = [] {
    auto* made = new FakeOpenAiServer();
    made->Reset([](int, const nlohmann::json&) {
      return Completion({"Step 0 is wrong. \\boxed{0}"});
    });
    return made;
  }();
  return *server;
}

std::unique_ptr<GenrmBackend> MakeOpenAi() {
  OpenAiBackendOptions options = OpenAiOptionsFromSpec(config::JobSpec());
  options.base_url = OpenAiServer().base_url();
  options.model = "contract-genrm";
  options.max_retries = 0;
  options.timeout_ms = 10000;
  auto backend = OpenAiBackend::Create(options);
  EXPECT_TRUE(backend.ok()) << backend.status();
  return backend.ok() ? std::unique_ptr<GenrmBackend>(*std::move(backend))
                      : nullptr;
}

std::vector<BackendCase> Cases() {
  return {
      {"rule",
       [] { return std::unique_ptr<GenrmBackend>(*RuleBackend::Create({})); }},
      {"fake", MakeFake},
      {"latency_rule",
       [] {
         return WithLatency(
             std::unique_ptr<GenrmBackend>(*RuleBackend::Create({})));
       }},
      {"latency_fake", [] { return WithLatency(MakeFake()); }},
      {"openai", MakeOpenAi},
  };
}

INSTANTIATE_TEST_SUITE_P(AllBackends, GenrmBackendContractTest,
                         ::testing::ValuesIn(Cases()), BackendCaseName);

}  // namespace
}  // namespace fapo::genrm::contract
