#include "scheduler/clients/grpc_genrm_client.h"

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "fapo/v1/genrm.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/clients/fake_genrm_client.h"
#include "scheduler/genrm_dispatcher.h"
#include "scheduler/options_from_spec.h"
#include "services/rpc/server.h"
#include "services/rpc/status_conversion.h"
#include "services/status/status_matchers.h"

namespace fapo::scheduler {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::HasSubstr;

// Behaviour by request.task(): "ok" answers at once (first_error_step 2),
// "invalid" fails with INVALID_ARGUMENT, "hang" never answers (until the
// call is cancelled or its deadline passes).
v1::Verdict AnswerFor(const v1::ScoreRequest& request) {
  v1::Verdict verdict;
  verdict.set_trajectory_id(request.trajectory_id());
  verdict.set_status(v1::VERDICT_STATUS_OK);
  verdict.set_answer_correct(true);
  verdict.set_first_error_step(2);
  verdict.set_genrm_server_id("test-genrm");
  return verdict;
}

class HangingReactor final : public grpc::ServerUnaryReactor {
 public:
  void OnCancel() override {
    Finish(rpc::ToGrpcStatus(absl::CancelledError("client went away")));
  }
  void OnDone() override { delete this; }
};

class TestGenrmService final : public v1::GenRM::CallbackService {
 public:
  grpc::ServerUnaryReactor* Score(grpc::CallbackServerContext* context,
                                  const v1::ScoreRequest* request,
                                  v1::ScoreResponse* response) override {
    ++calls_;
    if (request->task() == "hang") return new HangingReactor();
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    if (request->task() == "invalid") {
      reactor->Finish(
          rpc::ToGrpcStatus(absl::InvalidArgumentError("unknown task")));
    } else {
      *response->mutable_verdict() = AnswerFor(*request);
      reactor->Finish(grpc::Status::OK);
    }
    return reactor;
  }
  int calls() const { return calls_.load(); }

 private:
  std::atomic<int> calls_{0};
};

v1::ScoreRequest Request(const std::string& task, const std::string& id) {
  v1::ScoreRequest request;
  request.set_trajectory_id(id);
  request.set_task(task);
  request.set_solution("a\n\nb\n\nc");
  return request;
}

// Collects the results of one `done`, counting how often it ran.
class Result {
 public:
  GenrmClient::Done Done() {
    return [this](absl::StatusOr<v1::Verdict> result) {
      absl::MutexLock lock(&mu_);
      ++runs_;
      result_ = std::move(result);
    };
  }
  absl::StatusOr<v1::Verdict> Wait() {
    absl::MutexLock lock(&mu_);
    auto ran = [this]()
                   ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return runs_ > 0; };
    if (!mu_.AwaitWithTimeout(absl::Condition(&ran), absl::Seconds(20))) {
      return absl::InternalError("done never ran");
    }
    return *result_;
  }
  int runs() {
    absl::MutexLock lock(&mu_);
    return runs_;
  }

 private:
  absl::Mutex mu_;
  int runs_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<absl::StatusOr<v1::Verdict>> result_ ABSL_GUARDED_BY(mu_);
};

// --- the contract, against every implementation ------------------------------

class ClientUnderTest {
 public:
  virtual ~ClientUnderTest() = default;
  virtual GenrmClient& client() = 0;
  virtual GenrmServer server() = 0;
};

class FakeUnderTest final : public ClientUnderTest {
 public:
  FakeUnderTest() {
    client_.SetAutoResponder(
        [](const GenrmServer&, const v1::ScoreRequest& request)
            -> std::optional<absl::StatusOr<v1::Verdict>> {
          if (request.task() == "hang") return std::nullopt;
          if (request.task() == "invalid") {
            return absl::InvalidArgumentError("unknown task");
          }
          return AnswerFor(request);
        });
  }
  GenrmClient& client() override { return client_; }
  GenrmServer server() override { return {"fake", "fake:1", 4}; }

 private:
  FakeGenrmClient client_;
};

class GrpcUnderTest final : public ClientUnderTest {
 public:
  GrpcUnderTest() {
    rpc::ServerOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.drain_timeout = absl::Milliseconds(100);
    auto server = rpc::RpcServer::Start(
        options, {{&service_, v1::GenRM::service_full_name()}});
    EXPECT_THAT(server, IsOk());
    server_ = *std::move(server);
    auto client = GrpcGenrmClient::Create({});
    EXPECT_THAT(client, IsOk());
    client_ = *std::move(client);
  }
  ~GrpcUnderTest() override { server_->Shutdown(); }
  GenrmClient& client() override { return *client_; }
  GenrmServer server() override { return {"grpc", server_->address(), 4}; }
  TestGenrmService& service() { return service_; }

 private:
  TestGenrmService service_;
  std::unique_ptr<rpc::RpcServer> server_;
  std::unique_ptr<GrpcGenrmClient> client_;
};

class GenrmClientContractTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "fake") {
      under_test_ = std::make_unique<FakeUnderTest>();
    } else {
      under_test_ = std::make_unique<GrpcUnderTest>();
    }
  }
  GenrmClient& client() { return under_test_->client(); }
  GenrmServer server() { return under_test_->server(); }
  absl::Time Deadline() { return absl::Now() + absl::Seconds(20); }

  std::unique_ptr<ClientUnderTest> under_test_;
};

TEST_P(GenrmClientContractTest, ReturnsTheVerdictOnce) {
  Result result;
  std::unique_ptr<GenrmCall> call =
      client().Score(server(), Request("ok", "t1"), Deadline(), result.Done());
  ASSERT_NE(call, nullptr);
  absl::StatusOr<v1::Verdict> verdict = result.Wait();
  ASSERT_THAT(verdict, IsOk());
  EXPECT_EQ(verdict->trajectory_id(), "t1");
  EXPECT_EQ(verdict->first_error_step(), 2);
  call->Cancel();  // after completion: a no-op
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(result.runs(), 1);
}

TEST_P(GenrmClientContractTest, ServerErrorsKeepTheirCode) {
  Result result;
  auto call = client().Score(server(), Request("invalid", "t1"), Deadline(),
                             result.Done());
  EXPECT_THAT(result.Wait(), StatusIs(absl::StatusCode::kInvalidArgument,
                                      HasSubstr("unknown task")));
}

TEST_P(GenrmClientContractTest, CancelEndsTheCallWithCancelledOnce) {
  Result result;
  auto call = client().Score(server(), Request("hang", "t1"), Deadline(),
                             result.Done());
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(result.runs(), 0);
  call->Cancel();
  EXPECT_THAT(result.Wait(), StatusIs(absl::StatusCode::kCancelled));
  call->Cancel();
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(result.runs(), 1);
}

TEST_P(GenrmClientContractTest, DroppingTheHandleDoesNotCancel) {
  Result result;
  client().Score(server(), Request("ok", "t1"), Deadline(), result.Done());
  EXPECT_THAT(result.Wait(), IsOk());
  EXPECT_EQ(result.runs(), 1);
}

TEST_P(GenrmClientContractTest, DoneMayCallBackIntoTheClient) {
  Result inner;
  std::unique_ptr<GenrmCall> inner_call;
  absl::Mutex mu;
  Result outer;
  GenrmClient::Done outer_done = outer.Done();
  auto call = client().Score(server(), Request("ok", "t1"), Deadline(),
                             [&](absl::StatusOr<v1::Verdict> verdict) {
                               auto nested =
                                   client().Score(server(), Request("ok", "t2"),
                                                  Deadline(), inner.Done());
                               {
                                 absl::MutexLock lock(&mu);
                                 inner_call = std::move(nested);
                               }
                               outer_done(std::move(verdict));
                             });
  EXPECT_THAT(outer.Wait(), IsOk());
  absl::StatusOr<v1::Verdict> second = inner.Wait();
  ASSERT_THAT(second, IsOk());
  EXPECT_EQ(second->trajectory_id(), "t2");
}

INSTANTIATE_TEST_SUITE_P(AllClients, GenrmClientContractTest,
                         ::testing::Values("fake", "grpc"),
                         [](const auto& info) { return info.param; });

// --- gRPC only
// ----------------------------------------------------------------

TEST(GrpcGenrmClientTest, PassedDeadlineIsDeadlineExceeded) {
  GrpcUnderTest under_test;
  Result result;
  const absl::Time start = absl::Now();
  auto call = under_test.client().Score(
      under_test.server(), Request("hang", "t1"),
      absl::Now() + absl::Milliseconds(300), result.Done());
  EXPECT_THAT(result.Wait(), StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(250));
}

TEST(GrpcGenrmClientTest, ServerDownIsUnavailable) {
  std::string address;
  {
    GrpcUnderTest gone;
    address = gone.server().address;
  }
  auto client = GrpcGenrmClient::Create({});
  ASSERT_THAT(client, IsOk());
  Result result;
  auto call = (*client)->Score({"gone", address, 1}, Request("ok", "t1"),
                               absl::Now() + absl::Seconds(15), result.Done());
  EXPECT_THAT(result.Wait(), StatusIs(absl::StatusCode::kUnavailable));
}

TEST(GrpcGenrmClientTest, ManyConcurrentCallsShareAChannel) {
  GrpcUnderTest under_test;
  constexpr int kCalls = 50;
  std::vector<std::unique_ptr<Result>> results;
  std::vector<std::unique_ptr<GenrmCall>> calls;
  for (int i = 0; i < kCalls; ++i) {
    results.push_back(std::make_unique<Result>());
    calls.push_back(under_test.client().Score(
        under_test.server(), Request("ok", absl::StrCat("t", i)),
        absl::Now() + absl::Seconds(20), results.back()->Done()));
  }
  for (int i = 0; i < kCalls; ++i) {
    absl::StatusOr<v1::Verdict> verdict = results[i]->Wait();
    ASSERT_THAT(verdict, IsOk());
    EXPECT_EQ(verdict->trajectory_id(), absl::StrCat("t", i));
  }
  EXPECT_EQ(under_test.service().calls(), kCalls);
}

TEST(GrpcGenrmClientTest, DestroyingTheClientCancelsCallsInFlight) {
  GrpcUnderTest under_test;
  auto client = GrpcGenrmClient::Create({});
  ASSERT_THAT(client, IsOk());
  Result result;
  auto call = (*client)->Score(under_test.server(), Request("hang", "t1"),
                               absl::Now() + absl::Seconds(20), result.Done());
  absl::SleepFor(absl::Milliseconds(50));
  client->reset();  // returns once `done` has run
  EXPECT_EQ(result.runs(), 1);
  EXPECT_THAT(result.Wait(), StatusIs(absl::StatusCode::kCancelled));
}

TEST(GrpcGenrmClientTest, BadCredentialsFailAtCreate) {
  GrpcGenrmClientOptions options;
  options.channel.security.tls = true;
  options.channel.security.ca_file = "/nonexistent/ca.pem";
  EXPECT_THAT(
      GrpcGenrmClient::Create(options),
      StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent/ca.pem")));
}

// --- the dispatcher over the real client
// ---------------------------------------

// Collects the dispatcher's verdicts.
class Sink {
 public:
  GenrmDispatcher::VerdictSink Callback() {
    return [this](const std::string& id, v1::Verdict verdict) {
      absl::MutexLock lock(&mu_);
      verdicts_.push_back(std::move(verdict));
    };
  }
  std::vector<v1::Verdict> WaitFor(size_t count) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return verdicts_.size() >= count;
    };
    mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(20));
    return verdicts_;
  }

 private:
  absl::Mutex mu_;
  std::vector<v1::Verdict> verdicts_ ABSL_GUARDED_BY(mu_);
};

TEST(GenrmDispatcherOverGrpcTest, DownServerIsRetriedOnALiveOne) {
  std::string down_address;
  {
    GrpcUnderTest gone;
    down_address = gone.server().address;
  }
  GrpcUnderTest up;
  auto client = GrpcGenrmClient::Create({});
  ASSERT_THAT(client, IsOk());
  Sink sink;
  GenrmDispatcherOptions options = DefaultSchedulerOptions().genrm;
  options.request_timeout = absl::Seconds(10);
  auto dispatcher =
      GenrmDispatcher::Create(options, client->get(), sink.Callback());
  ASSERT_THAT(dispatcher, IsOk());
  (*dispatcher)->AddServer({"down", down_address, 4});  // chosen first
  (*dispatcher)->AddServer({"up", up.server().address, 4});
  ASSERT_THAT((*dispatcher)->Submit(Request("ok", "t1")), IsOk());
  std::vector<v1::Verdict> verdicts = sink.WaitFor(1);
  ASSERT_EQ(verdicts.size(), 1u);
  EXPECT_EQ(verdicts[0].trajectory_id(), "t1");
  EXPECT_EQ(verdicts[0].status(), v1::VERDICT_STATUS_OK);
  EXPECT_EQ(verdicts[0].first_error_step(), 2);
  EXPECT_EQ(up.service().calls(), 1);
}

TEST(GenrmDispatcherOverGrpcTest, HangingServerEndsInTimeoutVerdict) {
  GrpcUnderTest under_test;
  auto client = GrpcGenrmClient::Create({});
  ASSERT_THAT(client, IsOk());
  Sink sink;
  GenrmDispatcherOptions options = DefaultSchedulerOptions().genrm;
  options.request_timeout = absl::Milliseconds(200);
  options.max_retries = 1;
  auto dispatcher =
      GenrmDispatcher::Create(options, client->get(), sink.Callback());
  ASSERT_THAT(dispatcher, IsOk());
  (*dispatcher)->AddServer({"slow", under_test.server().address, 4});
  ASSERT_THAT((*dispatcher)->Submit(Request("hang", "t1")), IsOk());
  std::vector<v1::Verdict> verdicts = sink.WaitFor(1);
  ASSERT_EQ(verdicts.size(), 1u);
  EXPECT_EQ(verdicts[0].status(), v1::VERDICT_STATUS_TIMEOUT);
  EXPECT_THAT(verdicts[0].critique(), HasSubstr("DEADLINE_EXCEEDED"));
  EXPECT_EQ(under_test.service().calls(), 2);  // 1 attempt + 1 retry
}

}  // namespace
}  // namespace fapo::scheduler
