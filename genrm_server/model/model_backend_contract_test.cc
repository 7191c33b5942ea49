// The GenrmBackend contract (genrm_backend_contract.h) for the LibTorch
// model backend, on the tiny random arith model: its text is junk, so its
// verdicts are UNPARSABLE, but the contract's mechanics must hold.
#include <memory>
#include <string>

#include "engine/tools/tools.h"
#include "genrm_server/genrm_backend_contract.h"
#include "genrm_server/model/model_backend.h"
#include "gtest/gtest.h"
#include "tests/support/subprocess.h"

namespace fapo::genrm::contract {
namespace {

const std::string& TinyModelDir() {
  static fapo::testing::TempDir* dir = [] {
    auto* made = new fapo::testing::TempDir("genrm-model-contract-");
    EXPECT_TRUE(made->status().ok()) << made->status();
    absl::Status written = engine::WriteTinyArithModel(made->path(), 7);
    EXPECT_TRUE(written.ok()) << written;
    return made;
  }();
  return dir->path();
}

std::unique_ptr<GenrmBackend> MakeModel() {
  ModelBackendOptions options;
  options.model_dir = TinyModelDir();
  options.samples = 1;
  options.max_new_tokens = 4;
  auto backend = ModelBackend::Create(std::move(options));
  EXPECT_TRUE(backend.ok()) << backend.status();
  return backend.ok() ? std::unique_ptr<GenrmBackend>(*std::move(backend))
                      : nullptr;
}

INSTANTIATE_TEST_SUITE_P(Model, GenrmBackendContractTest,
                         ::testing::Values(BackendCase{
                             "model", MakeModel, /*verdicts_ok=*/false,
                             /*concurrent_batches_per_thread=*/4}),
                         BackendCaseName);

}  // namespace
}  // namespace fapo::genrm::contract
