// GenrmService over a real gRPC server on 127.0.0.1 port 0: rule verdicts,
// request validation, dynamic batching of concurrent calls, deadlines and
// cancellation with a backend that holds batches, and the metrics.
#include "genrm_server/genrm_service.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fapo/v1/genrm.grpc.pb.h"
#include "genrm_server/dynamic_batcher.h"
#include "genrm_server/fake_genrm_backend.h"
#include "genrm_server/options_from_spec.h"
#include "genrm_server/rule_backend.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/metrics/metrics_registry.h"
#include "services/metrics/metrics_testing.h"
#include "services/rpc/channel.h"
#include "services/rpc/server.h"
#include "services/rpc/status_conversion.h"
#include "services/status/status_matchers.h"
#include "tests/support/eventually.h"

namespace fapo::genrm {
namespace {

using ::fapo::testing::Eventually;

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

fapo::v1::ScoreRequest Arith(const std::string& id,
                             const std::string& solution) {
  fapo::v1::ScoreRequest request;
  request.set_request_id("req-" + id);
  request.set_trajectory_id(id);
  request.set_task("arith");
  request.set_problem("3+7*4-2");
  request.set_solution(solution);
  return request;
}

// The job spec's batching defaults (NOTE [one default]).
DynamicBatcherOptions SpecBatcher() {
  return BatcherOptionsFromSpec(config::JobSpec(), "genrm-test");
}

// A batcher + service + server, and a stub to it.
class GenrmServiceTest : public ::testing::Test {
 protected:
  void Start(std::unique_ptr<GenrmBackend> backend,
             DynamicBatcherOptions options = SpecBatcher(),
             absl::Duration drain_timeout = absl::Seconds(5)) {
    registry_ = metrics::NewMetricsRegistry();
    options.genrm_server_id = "genrm-test";
    auto instrumented = InstrumentBackend(std::move(backend), registry_.get());
    ASSERT_THAT(instrumented, IsOk());
    auto batcher = DynamicBatcher::Create(options, *std::move(instrumented));
    ASSERT_THAT(batcher, IsOk());
    batcher_ = *std::move(batcher);
    auto service = GenrmService::Create(batcher_.get(), registry_.get());
    ASSERT_THAT(service, IsOk());
    service_ = *std::move(service);
    rpc::ServerOptions server_options;
    server_options.host = "127.0.0.1";
    server_options.drain_timeout = drain_timeout;
    auto server = rpc::RpcServer::Start(
        server_options,
        {{service_.get(), fapo::v1::GenRM::service_full_name()}});
    ASSERT_THAT(server, IsOk());
    server_ = *std::move(server);
    auto channel = rpc::MakeChannel(server_->address(), {});
    ASSERT_THAT(channel, IsOk());
    stub_ = fapo::v1::GenRM::NewStub(*channel);
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
    if (batcher_) batcher_->Shutdown();
  }

  absl::StatusOr<fapo::v1::Verdict> Score(
      const fapo::v1::ScoreRequest& request,
      absl::Duration timeout = absl::Seconds(10)) {
    auto context = rpc::NewContext(timeout);
    fapo::v1::ScoreResponse response;
    grpc::Status status = stub_->Score(context.get(), request, &response);
    if (!status.ok()) return rpc::FromGrpcStatus(status);
    return response.verdict();
  }

  double CounterValue(const std::string& name, const std::string& label) {
    return metrics::testing::Read(*registry_, name, {label}).value_or(0);
  }
  uint64_t HistogramCount(const std::string& name) {
    return static_cast<uint64_t>(
        metrics::testing::Read(*registry_, name).value_or(0));
  }

  std::unique_ptr<metrics::MetricsRegistry> registry_;
  std::unique_ptr<DynamicBatcher> batcher_;
  std::unique_ptr<GenrmService> service_;
  std::unique_ptr<rpc::RpcServer> server_;
  std::unique_ptr<fapo::v1::GenRM::Stub> stub_;
};

std::unique_ptr<GenrmBackend> Rule() {
  auto backend = RuleBackend::Create({});
  EXPECT_THAT(backend, IsOk());
  return *std::move(backend);
}

TEST_F(GenrmServiceTest, RuleVerdictsForSoundFlawedAndWrongSolutions) {
  Start(Rule());
  // Default arith options: 3+7=0, 0*4=0, 0-2=8, answer 8 mod 5 = 3.
  auto sound = Score(Arith("sound", "3+7=0\n0*4=0\n0-2=8\n#3"));
  ASSERT_THAT(sound, IsOk());
  EXPECT_EQ(sound->trajectory_id(), "sound");
  EXPECT_TRUE(sound->answer_correct());
  EXPECT_EQ(sound->first_error_step(), -1);
  EXPECT_EQ(sound->num_steps(), 4);
  EXPECT_EQ(sound->status(), fapo::v1::VERDICT_STATUS_OK);
  EXPECT_EQ(sound->genrm_server_id(), "genrm-test");
  EXPECT_TRUE(sound->has_latency());

  auto flawed = Score(Arith("flawed", "3+7=5\n5*4=0\n0-2=8\n#3"));
  ASSERT_THAT(flawed, IsOk());
  EXPECT_TRUE(flawed->answer_correct());
  EXPECT_EQ(flawed->first_error_step(), 0);

  auto wrong = Score(Arith("wrong", "3+7=0\n0*4=0\n0-2=7\n#2"));
  ASSERT_THAT(wrong, IsOk());
  EXPECT_FALSE(wrong->answer_correct());
  EXPECT_EQ(wrong->first_error_step(), 2);

  EXPECT_EQ(CounterValue("fapo_genrm_server_requests_total", "OK"), 3);
  EXPECT_EQ(HistogramCount("fapo_genrm_server_request_latency_seconds"), 3u);
  EXPECT_EQ(HistogramCount("fapo_genrm_server_batch_size"), 3u);
  EXPECT_EQ(service_->in_flight(), 0);
}

TEST_F(GenrmServiceTest, InvalidRequestsAreInvalidArgument) {
  Start(Rule());
  fapo::v1::ScoreRequest no_id = Arith("", "3+7=0");
  EXPECT_THAT(Score(no_id), StatusIs(absl::StatusCode::kInvalidArgument,
                                     HasSubstr("trajectory_id")));
  fapo::v1::ScoreRequest no_task = Arith("t1", "3+7=0");
  no_task.clear_task();
  EXPECT_THAT(Score(no_task),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("task")));
  // The backend's per-request error comes through unchanged.
  fapo::v1::ScoreRequest unknown = Arith("t2", "3+7=0");
  unknown.set_task("chess");
  EXPECT_THAT(Score(unknown),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("chess")));
  // Validation failures never reach the batcher.
  EXPECT_EQ(batcher_->stats().requests, 1);
  EXPECT_EQ(
      CounterValue("fapo_genrm_server_requests_total", "INVALID_ARGUMENT"), 3);
}

TEST_F(GenrmServiceTest, ConcurrentCallsAreBatched) {
  auto state = std::make_shared<FakeGenrmBackend::State>();
  DynamicBatcherOptions options = SpecBatcher();
  options.max_batch_size = 4;
  options.max_batch_delay_ms = 60000;  // only full batches leave
  Start(std::make_unique<FakeGenrmBackend>(state), options);

  constexpr int kCalls = 8;
  std::vector<absl::StatusOr<fapo::v1::Verdict>> results(
      kCalls, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kCalls; ++i) {
    threads.emplace_back(
        [&, i] { results[i] = Score(Arith(absl::StrCat("t", i), "x")); });
  }
  // Both batches reach the backend while every call is still open: no
  // reactor thread is blocked by the held calls.
  ASSERT_TRUE(Eventually([&] { return state->num_held() == 2; }));
  EXPECT_EQ(service_->in_flight(), kCalls);
  EXPECT_EQ(state->CompleteAll(), 2);
  for (std::thread& thread : threads) thread.join();
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_THAT(results[i], IsOk()) << i;
    EXPECT_EQ(results[i]->trajectory_id(), absl::StrCat("t", i));
    EXPECT_EQ(results[i]->num_steps(), 4);  // the fake echoes batch size
  }
  EXPECT_THAT(state->sizes(), ElementsAre(4, 4));
  const DynamicBatcher::Stats stats = batcher_->stats();
  EXPECT_EQ(stats.requests, kCalls);
  EXPECT_EQ(stats.batches, 2);
  EXPECT_EQ(stats.full_batches, 2);
  EXPECT_EQ(HistogramCount("fapo_genrm_server_batch_size"), 2u);
  EXPECT_EQ(service_->in_flight(), 0);
}

TEST_F(GenrmServiceTest, DeadlineExceededWithASlowBackendThenLateVerdict) {
  auto state = std::make_shared<FakeGenrmBackend::State>();
  DynamicBatcherOptions options = SpecBatcher();
  options.max_batch_size = 1;
  Start(std::make_unique<FakeGenrmBackend>(state), options);

  const absl::Time start = absl::Now();
  EXPECT_THAT(Score(Arith("slow", "x"), absl::Milliseconds(200)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  // The server side saw the cancellation and finished the call...
  ASSERT_TRUE(Eventually([&] { return service_->in_flight() == 0; }));
  EXPECT_EQ(CounterValue("fapo_genrm_server_requests_total", "CANCELLED"), 1);
  // ...and the verdict that arrives afterwards touches nothing freed.
  ASSERT_EQ(state->num_held(), 1u);
  EXPECT_TRUE(state->CompleteNext());
  {
    absl::MutexLock lock(&state->mu);
    state->complete_immediately = true;
  }
  EXPECT_THAT(Score(Arith("fast", "x")), IsOk());
  EXPECT_EQ(service_->finished(), 2);
}

TEST_F(GenrmServiceTest, DrainingBatcherAnswersUnavailable) {
  Start(Rule());
  batcher_->Shutdown();
  EXPECT_THAT(Score(Arith("late", "3+7=0")),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(service_->in_flight(), 0);
}

TEST_F(GenrmServiceTest, ServerShutdownCancelsHeldCallsPromptly) {
  auto state = std::make_shared<FakeGenrmBackend::State>();
  DynamicBatcherOptions options = SpecBatcher();
  options.max_batch_size = 1;
  Start(std::make_unique<FakeGenrmBackend>(state), options,
        /*drain_timeout=*/absl::Milliseconds(100));
  absl::StatusOr<fapo::v1::Verdict> result = absl::UnknownError("not run");
  std::thread caller([&] { result = Score(Arith("held", "x")); });
  ASSERT_TRUE(Eventually([&] { return state->num_held() == 1; }));
  const absl::Time start = absl::Now();
  server_->Shutdown();  // returns only once every reactor has finished
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  caller.join();
  EXPECT_THAT(result, ::testing::Not(IsOk()));
  EXPECT_EQ(service_->in_flight(), 0);
  state->CompleteAll();  // the late verdict is dropped
}

TEST(GenrmServiceCreateTest, RejectsANullBatcher) {
  EXPECT_THAT(GenrmService::Create(nullptr, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(InstrumentBackend(nullptr, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace fapo::genrm
