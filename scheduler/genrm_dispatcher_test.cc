#include "scheduler/genrm_dispatcher.h"

#include <atomic>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/clients/fake_genrm_client.h"
#include "scheduler/options_from_spec.h"
#include "services/clock/fake_clock.h"
#include "services/metrics/metrics_registry.h"
#include "services/metrics/metrics_testing.h"
#include "services/status/status_matchers.h"

namespace fapo::scheduler {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

v1::ScoreRequest Request(const std::string& id) {
  v1::ScoreRequest request;
  request.set_trajectory_id(id);
  request.set_request_id(absl::StrCat("req-", id));
  request.set_task("arith");
  request.set_solution("1+1=2");
  return request;
}

v1::Verdict Flawed(int step) {
  v1::Verdict verdict;
  verdict.set_status(v1::VERDICT_STATUS_OK);
  verdict.set_answer_correct(true);
  verdict.set_first_error_step(step);
  return verdict;
}

GenrmServer Server(const std::string& id, int capacity = 64) {
  return GenrmServer{id, absl::StrCat(id, ".local:50051"), capacity};
}

// Value of one counter or gauge series, or -1 when absent.
double MetricValue(metrics::MetricsRegistry& registry, const std::string& name,
                   const std::vector<std::string>& label_values = {}) {
  return metrics::testing::Read(registry, name, label_values).value_or(-1);
}

// Sum of a histogram without labels, or -1 when absent.
double HistogramSum(metrics::MetricsRegistry& registry,
                    const std::string& name) {
  return metrics::testing::HistogramSum(registry, name).value_or(-1);
}

class GenrmDispatcherTest : public ::testing::Test {
 protected:
  void Make(GenrmDispatcherOptions options = DefaultSchedulerOptions().genrm) {
    options.clock = &clock_;
    options.metrics = registry_.get();
    auto dispatcher = GenrmDispatcher::Create(
        options, &client_, [this](const std::string& id, v1::Verdict verdict) {
          absl::MutexLock lock(&mu_);
          EXPECT_EQ(verdict.trajectory_id(), id);
          verdicts_.emplace_back(id, std::move(verdict));
        });
    ASSERT_THAT(dispatcher, IsOk());
    dispatcher_ = *std::move(dispatcher);
  }

  std::vector<std::pair<std::string, v1::Verdict>> Verdicts() {
    absl::MutexLock lock(&mu_);
    return verdicts_;
  }
  std::vector<std::string> VerdictIds() {
    std::vector<std::string> ids;
    for (const auto& [id, verdict] : Verdicts()) ids.push_back(id);
    return ids;
  }
  std::string ServerOf(int call) { return client_.call(call).server.worker_id; }
  double Metric(const std::string& name,
                const std::vector<std::string>& labels = {}) {
    return MetricValue(*registry_, name, labels);
  }

  FakeClock clock_{absl::FromUnixSeconds(1000)};
  std::unique_ptr<metrics::MetricsRegistry> registry_ =
      metrics::NewMetricsRegistry();
  FakeGenrmClient client_;
  absl::Mutex mu_;
  std::vector<std::pair<std::string, v1::Verdict>> verdicts_
      ABSL_GUARDED_BY(mu_);
  std::unique_ptr<GenrmDispatcher> dispatcher_;  // destroyed first
};

TEST_F(GenrmDispatcherTest, CreateRejectsBadOptions) {
  auto sink = [](const std::string&, v1::Verdict) {};
  GenrmDispatcherOptions options = DefaultSchedulerOptions().genrm;
  options.max_in_flight_per_server = 0;
  EXPECT_THAT(GenrmDispatcher::Create(options, &client_, sink),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("max_in_flight_per_server")));
  options = DefaultSchedulerOptions().genrm;
  options.request_timeout = absl::ZeroDuration();
  EXPECT_THAT(GenrmDispatcher::Create(options, &client_, sink),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("request_timeout")));
  options = DefaultSchedulerOptions().genrm;
  options.max_retries = -1;
  EXPECT_THAT(
      GenrmDispatcher::Create(options, &client_, sink),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_retries")));
  EXPECT_THAT(GenrmDispatcher::Create({}, nullptr, sink),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(GenrmDispatcher::Create({}, &client_, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(GenrmDispatcherTest, SendsAtOnceWithDeadlineAndDeliversVerdict) {
  GenrmDispatcherOptions options = DefaultSchedulerOptions().genrm;
  options.request_timeout = absl::Seconds(7);
  Make(options);
  dispatcher_->AddServer(Server("a"));
  ASSERT_THAT(dispatcher_->Submit(Request("t1")), IsOk());
  ASSERT_EQ(client_.num_calls(), 1);
  FakeGenrmClient::RecordedCall call = client_.call(0);
  EXPECT_EQ(call.server.worker_id, "a");
  EXPECT_EQ(call.server.address, "a.local:50051");
  EXPECT_EQ(call.request.trajectory_id(), "t1");
  EXPECT_EQ(call.request.solution(), "1+1=2");
  EXPECT_EQ(call.deadline, clock_.Now() + absl::Seconds(7));
  EXPECT_EQ(dispatcher_->in_flight(), 1);
  EXPECT_EQ(dispatcher_->in_flight("a"), 1);
  EXPECT_EQ(Metric("fapo_genrm_in_flight", {"a"}), 1);

  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(client_.Complete(0, Flawed(3)));
  auto verdicts = Verdicts();
  ASSERT_EQ(verdicts.size(), 1u);
  EXPECT_EQ(verdicts[0].first, "t1");
  EXPECT_EQ(verdicts[0].second.first_error_step(), 3);
  EXPECT_EQ(verdicts[0].second.genrm_server_id(), "a");
  EXPECT_EQ(dispatcher_->pending(), 0);
  EXPECT_EQ(dispatcher_->in_flight(), 0);
  EXPECT_EQ(Metric("fapo_genrm_in_flight", {"a"}), 0);
  EXPECT_EQ(Metric("fapo_genrm_attempts_total", {"ok"}), 1);
  EXPECT_EQ(Metric("fapo_genrm_verdict_latency_seconds"), 1);  // count
  EXPECT_EQ(Metric("fapo_genrm_dispatch_latency_seconds"), 1);
}

TEST_F(GenrmDispatcherTest, SubmitErrors) {
  Make();
  EXPECT_THAT(dispatcher_->Submit(Request("")),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_THAT(dispatcher_->Submit(Request("t1")), IsOk());
  EXPECT_THAT(dispatcher_->Submit(Request("t1")),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("t1")));
  dispatcher_->Shutdown();
  EXPECT_THAT(dispatcher_->Submit(Request("t2")),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

// NOTE [recycled requests]: a message from NewRequest is empty whatever it
// carried before, and goes out exactly as filled.
TEST_F(GenrmDispatcherTest, RecycledRequestsStartEmpty) {
  Make();
  dispatcher_->AddServer(Server("a"));
  client_.SetAutoResponder(
      [](const GenrmServer&, const v1::ScoreRequest& request)
          -> std::optional<absl::StatusOr<v1::Verdict>> {
        v1::Verdict verdict;
        verdict.set_trajectory_id(request.trajectory_id());
        verdict.set_answer_correct(true);
        verdict.set_first_error_step(-1);
        verdict.set_status(v1::VERDICT_STATUS_OK);
        return verdict;
      });
  for (int i = 0; i < 3; ++i) {
    std::unique_ptr<v1::ScoreRequest> request = dispatcher_->NewRequest();
    ASSERT_NE(request, nullptr);
    EXPECT_EQ(request->ByteSizeLong(), 0u) << i;
    request->set_trajectory_id(absl::StrCat("t", i));
    // Only the first request has a problem: none may leak into the next.
    if (i == 0) request->set_problem("2+2");
    request->set_solution(std::string(1024, 'a' + i));
    ASSERT_THAT(dispatcher_->Submit(std::move(request)), IsOk());
  }
  ASSERT_EQ(client_.num_calls(), 3);
  EXPECT_EQ(client_.call(0).request.problem(), "2+2");
  EXPECT_EQ(client_.call(2).request.problem(), "");
  EXPECT_EQ(client_.call(2).request.solution(), std::string(1024, 'c'));
  EXPECT_EQ(VerdictIds(), (std::vector<std::string>{"t0", "t1", "t2"}));
  // The same errors as Submit(request).
  std::unique_ptr<v1::ScoreRequest> unnamed = dispatcher_->NewRequest();
  EXPECT_THAT(dispatcher_->Submit(std::move(unnamed)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(dispatcher_->Submit(std::unique_ptr<v1::ScoreRequest>()),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(GenrmDispatcherTest, PicksLeastLoadedServerWithStableTies) {
  Make();
  dispatcher_->AddServer(Server("a", 4));
  dispatcher_->AddServer(Server("b", 4));
  dispatcher_->AddServer(Server("c", 4));
  for (int i = 0; i < 5; ++i) {
    ASSERT_THAT(dispatcher_->Submit(Request(absl::StrCat("t", i))), IsOk());
  }
  std::vector<std::string> servers;
  for (int i = 0; i < 5; ++i) servers.push_back(ServerOf(i));
  EXPECT_THAT(servers, ElementsAre("a", "b", "c", "a", "b"));
  // c is now the least loaded.
  ASSERT_THAT(dispatcher_->Submit(Request("t5")), IsOk());
  EXPECT_EQ(ServerOf(5), "c");
}

TEST_F(GenrmDispatcherTest, LoadIsRelativeToCap) {
  Make();
  dispatcher_->AddServer(Server("small", 1));
  dispatcher_->AddServer(Server("big", 3));
  for (int i = 0; i < 4; ++i) {
    ASSERT_THAT(dispatcher_->Submit(Request(absl::StrCat("t", i))), IsOk());
  }
  EXPECT_EQ(dispatcher_->in_flight("small"), 1);
  EXPECT_EQ(dispatcher_->in_flight("big"), 3);
  EXPECT_EQ(dispatcher_->waiting(), 0);
}

TEST_F(GenrmDispatcherTest, CapsInFlightAndDispatchesWaitingFifo) {
  GenrmDispatcherOptions options = DefaultSchedulerOptions().genrm;
  options.max_in_flight_per_server = 2;
  Make(options);
  dispatcher_->AddServer(Server("a", 10));  // cap = min(10, 2)
  for (int i = 0; i < 5; ++i) {
    ASSERT_THAT(dispatcher_->Submit(Request(absl::StrCat("t", i))), IsOk());
  }
  EXPECT_EQ(client_.num_calls(), 2);
  EXPECT_EQ(dispatcher_->waiting(), 3);
  EXPECT_EQ(Metric("fapo_genrm_waiting"), 3);

  ASSERT_TRUE(client_.Complete(1, Flawed(-1)));
  ASSERT_EQ(client_.num_calls(), 3);
  EXPECT_EQ(client_.call(2).request.trajectory_id(), "t2");
  ASSERT_TRUE(client_.Complete(0, Flawed(-1)));
  ASSERT_EQ(client_.num_calls(), 4);
  EXPECT_EQ(client_.call(3).request.trajectory_id(), "t3");
  EXPECT_EQ(dispatcher_->waiting(), 1);
  EXPECT_THAT(VerdictIds(), ElementsAre("t1", "t0"));

  // The server's own capacity binds when it is below the option.
  dispatcher_->AddServer(Server("b", 1));
  EXPECT_EQ(dispatcher_->in_flight("b"), 1);
  EXPECT_EQ(dispatcher_->waiting(), 0);
}

TEST_F(GenrmDispatcherTest, NoServersMeansWaitingUntilOneJoins) {
  Make();
  ASSERT_THAT(dispatcher_->Submit(Request("t1")), IsOk());
  EXPECT_EQ(dispatcher_->oldest_waiting_since(), clock_.Now());
  const absl::Time submitted = clock_.Now();
  clock_.Advance(absl::Seconds(3));
  ASSERT_THAT(dispatcher_->Submit(Request("t2")), IsOk());
  EXPECT_EQ(client_.num_calls(), 0);
  EXPECT_EQ(dispatcher_->waiting(), 2);
  EXPECT_EQ(dispatcher_->oldest_waiting_since(), submitted);
  dispatcher_->AddServer(Server("a"));
  EXPECT_EQ(client_.num_calls(), 2);
  EXPECT_EQ(client_.call(0).request.trajectory_id(), "t1");
  EXPECT_EQ(dispatcher_->oldest_waiting_since(), absl::InfiniteFuture());
}

TEST_F(GenrmDispatcherTest, LatenciesAreMeasuredByTheClock) {
  Make();
  ASSERT_THAT(dispatcher_->Submit(Request("t1")), IsOk());
  clock_.Advance(absl::Seconds(2));
  dispatcher_->AddServer(Server("a"));
  clock_.Advance(absl::Seconds(3));
  ASSERT_TRUE(client_.Complete(0, absl::UnavailableError("x")));  // retry
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(client_.Complete(1, Flawed(-1)));
  EXPECT_DOUBLE_EQ(
      HistogramSum(*registry_, "fapo_genrm_dispatch_latency_seconds"), 2.0);
  EXPECT_DOUBLE_EQ(
      HistogramSum(*registry_, "fapo_genrm_verdict_latency_seconds"), 6.0);
}

TEST_F(GenrmDispatcherTest, RetriesOnAnotherServer) {
  Make();
  dispatcher_->AddServer(Server("a"));
  dispatcher_->AddServer(Server("b"));
  ASSERT_THAT(dispatcher_->Submit(Request("t1")), IsOk());
  EXPECT_EQ(ServerOf(0), "a");
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(client_.Complete(0, absl::UnavailableError("connection reset")));
  ASSERT_EQ(client_.num_calls(), 2);
  EXPECT_EQ(ServerOf(1), "b");
  EXPECT_EQ(client_.call(1).deadline, clock_.Now() + absl::Seconds(30));
  EXPECT_THAT(Verdicts(), IsEmpty());
  ASSERT_TRUE(client_.Complete(1, Flawed(2)));
  ASSERT_EQ(Verdicts().size(), 1u);
  EXPECT_EQ(Verdicts()[0].second.genrm_server_id(), "b");
  EXPECT_EQ(Metric("fapo_genrm_retries_total"), 1);
  EXPECT_EQ(Metric("fapo_genrm_attempts_total", {"error"}), 1);
}

TEST_F(GenrmDispatcherTest, RetryWaitsForAnotherServerRatherThanTheFailedOne) {
  Make();
  dispatcher_->AddServer(Server("a", 1));
  dispatcher_->AddServer(Server("b", 1));
  ASSERT_THAT(dispatcher_->Submit(Request("t1")), IsOk());  // a
  ASSERT_THAT(dispatcher_->Submit(Request("t2")), IsOk());  // b
  ASSERT_TRUE(client_.Complete(0, absl::DeadlineExceededError("slow")));
  // a has room but just failed t1: t1 waits for b.
  EXPECT_EQ(client_.num_calls(), 2);
  EXPECT_EQ(dispatcher_->waiting(), 1);
  // Others still use a, overtaking t1.
  ASSERT_THAT(dispatcher_->Submit(Request("t3")), IsOk());
  ASSERT_EQ(client_.num_calls(), 3);
  EXPECT_EQ(client_.call(2).request.trajectory_id(), "t3");
  EXPECT_EQ(ServerOf(2), "a");
  ASSERT_TRUE(client_.Complete(1, Flawed(-1)));  // b frees up
  ASSERT_EQ(client_.num_calls(), 4);
  EXPECT_EQ(client_.call(3).request.trajectory_id(), "t1");
  EXPECT_EQ(ServerOf(3), "b");
}

TEST_F(GenrmDispatcherTest, PrefersServersNotYetTried) {
  GenrmDispatcherOptions options = DefaultSchedulerOptions().genrm;
  options.max_retries = 5;
  Make(options);
  dispatcher_->AddServer(Server("a"));
  dispatcher_->AddServer(Server("b"));
  dispatcher_->AddServer(Server("c"));
  ASSERT_THAT(dispatcher_->Submit(Request("t1")), IsOk());
  ASSERT_TRUE(client_.Complete(0, absl::UnavailableError("x")));  // a
  ASSERT_TRUE(client_.Complete(1, absl::UnavailableError("x")));  // b
  ASSERT_TRUE(client_.Complete(2, absl::UnavailableError("x")));  // c
  ASSERT_EQ(client_.num_calls(), 4);
  EXPECT_EQ(ServerOf(0), "a");
  EXPECT_EQ(ServerOf(1), "b");
  EXPECT_EQ(ServerOf(2), "c");
  EXPECT_NE(ServerOf(3), "c");  // all tried: anything but the last one
}

TEST_F(GenrmDispatcherTest, GivesUpAfterRetriesWithTimeoutVerdict) {
  GenrmDispatcherOptions options = DefaultSchedulerOptions().genrm;
  options.max_retries = 2;
  Make(options);
  dispatcher_->AddServer(Server("a"));
  dispatcher_->AddServer(Server("b"));
  ASSERT_THAT(dispatcher_->Submit(Request("t1")), IsOk());
  for (int attempt = 0; attempt < 3; ++attempt) {
    ASSERT_EQ(client_.num_calls(), attempt + 1);
    EXPECT_THAT(Verdicts(), IsEmpty());
    ASSERT_TRUE(
        client_.Complete(attempt, absl::DeadlineExceededError("too slow")));
  }
  EXPECT_EQ(client_.num_calls(), 3);  // 1 attempt + 2 retries, no more
  auto verdicts = Verdicts();
  ASSERT_EQ(verdicts.size(), 1u);
  const v1::Verdict& verdict = verdicts[0].second;
  EXPECT_EQ(verdict.status(), v1::VERDICT_STATUS_TIMEOUT);
  EXPECT_TRUE(verdict.answer_correct());
  EXPECT_EQ(verdict.first_error_step(), -1);
  EXPECT_EQ(verdict.trajectory_id(), "t1");
  EXPECT_THAT(verdict.critique(), HasSubstr("too slow"));
  EXPECT_EQ(Metric("fapo_genrm_gave_up_total", {"retries_exhausted"}), 1);
  EXPECT_EQ(Metric("fapo_genrm_retries_total"), 2);
  EXPECT_EQ(dispatcher_->pending(), 0);
}

TEST_F(GenrmDispatcherTest, SingleServerRetriesOnItself) {
  GenrmDispatcherOptions options = DefaultSchedulerOptions().genrm;
  options.max_retries = 1;
  Make(options);
  dispatcher_->AddServer(Server("a"));
  ASSERT_THAT(dispatcher_->Submit(Request("t1")), IsOk());
  ASSERT_TRUE(client_.Complete(0, absl::UnavailableError("x")));
  ASSERT_EQ(client_.num_calls(), 2);
  EXPECT_EQ(ServerOf(1), "a");
  ASSERT_TRUE(client_.Complete(1, absl::UnavailableError("x")));
  ASSERT_EQ(Verdicts().size(), 1u);
  EXPECT_EQ(Verdicts()[0].second.status(), v1::VERDICT_STATUS_TIMEOUT);
}

TEST_F(GenrmDispatcherTest, PermanentErrorIsNotRetried) {
  Make();
  dispatcher_->AddServer(Server("a"));
  dispatcher_->AddServer(Server("b"));
  ASSERT_THAT(dispatcher_->Submit(Request("t1")), IsOk());
  ASSERT_TRUE(
      client_.Complete(0, absl::InvalidArgumentError("unknown task 'chess'")));
  EXPECT_EQ(client_.num_calls(), 1);
  auto verdicts = Verdicts();
  ASSERT_EQ(verdicts.size(), 1u);
  EXPECT_EQ(verdicts[0].second.status(), v1::VERDICT_STATUS_UNPARSABLE);
  EXPECT_TRUE(verdicts[0].second.answer_correct());
  EXPECT_EQ(verdicts[0].second.first_error_step(), -1);
  EXPECT_THAT(verdicts[0].second.critique(), HasSubstr("unknown task 'chess'"));
  EXPECT_EQ(Metric("fapo_genrm_gave_up_total", {"permanent_error"}), 1);
  EXPECT_EQ(Metric("fapo_genrm_retries_total"), 0);
}

TEST_F(GenrmDispatcherTest, CancelWaitingRequest) {
  Make();
  dispatcher_->AddServer(Server("a", 1));
  ASSERT_THAT(dispatcher_->Submit(Request("t1")), IsOk());
  ASSERT_THAT(dispatcher_->Submit(Request("t2")), IsOk());
  ASSERT_THAT(dispatcher_->Submit(Request("t3")), IsOk());
  EXPECT_TRUE(dispatcher_->Cancel("t2"));
  EXPECT_FALSE(dispatcher_->Cancel("t2"));
  EXPECT_FALSE(dispatcher_->Cancel("never"));
  EXPECT_EQ(dispatcher_->waiting(), 1);
  ASSERT_TRUE(client_.Complete(0, Flawed(-1)));
  ASSERT_EQ(client_.num_calls(), 2);
  EXPECT_EQ(client_.call(1).request.trajectory_id(), "t3");
  ASSERT_TRUE(client_.Complete(1, Flawed(-1)));
  EXPECT_THAT(VerdictIds(), ElementsAre("t1", "t3"));
  // The id is free again.
  EXPECT_THAT(dispatcher_->Submit(Request("t2")), IsOk());
}

TEST_F(GenrmDispatcherTest, CancelInFlightRequest) {
  Make();
  dispatcher_->AddServer(Server("a", 1));
  ASSERT_THAT(dispatcher_->Submit(Request("t1")), IsOk());
  ASSERT_THAT(dispatcher_->Submit(Request("t2")), IsOk());
  EXPECT_TRUE(dispatcher_->Cancel("t1"));
  EXPECT_EQ(client_.cancels(), 1);
  EXPECT_TRUE(client_.call(0).cancelled);
  // The freed place goes to t2 at once.
  ASSERT_EQ(client_.num_calls(), 2);
  EXPECT_EQ(client_.call(1).request.trajectory_id(), "t2");
  ASSERT_TRUE(client_.Complete(1, Flawed(-1)));
  EXPECT_THAT(VerdictIds(), ElementsAre("t2"));
  EXPECT_EQ(Metric("fapo_genrm_late_results_total"), 0);  // ours: CANCELLED
  EXPECT_EQ(Metric("fapo_genrm_attempts_total", {"cancelled"}), 1);
}

TEST_F(GenrmDispatcherTest, LateResultIsIgnoredAndCounted) {
  Make();
  client_.set_complete_on_cancel(false);
  dispatcher_->AddServer(Server("a"));
  ASSERT_THAT(dispatcher_->Submit(Request("t1")), IsOk());
  EXPECT_TRUE(dispatcher_->Cancel("t1"));
  ASSERT_TRUE(client_.Complete(0, Flawed(1)));  // raced the cancel
  EXPECT_THAT(Verdicts(), IsEmpty());
  EXPECT_EQ(Metric("fapo_genrm_late_results_total"), 1);
  EXPECT_EQ(dispatcher_->pending(), 0);
}

TEST_F(GenrmDispatcherTest,
       RemovedServerRequeuesAtFrontWithoutCountingAttempt) {
  GenrmDispatcherOptions options = DefaultSchedulerOptions().genrm;
  options.max_retries = 0;  // a counted attempt would end in TIMEOUT
  Make(options);
  client_.set_complete_on_cancel(false);
  dispatcher_->AddServer(Server("a", 1));
  dispatcher_->AddServer(Server("b", 1));
  ASSERT_THAT(dispatcher_->Submit(Request("t1")), IsOk());  // a
  ASSERT_THAT(dispatcher_->Submit(Request("t2")), IsOk());  // b
  ASSERT_THAT(dispatcher_->Submit(Request("t3")), IsOk());  // waits
  dispatcher_->RemoveServer("a");
  EXPECT_EQ(client_.cancels(), 1);
  EXPECT_TRUE(client_.call(0).cancelled);
  EXPECT_EQ(dispatcher_->waiting(), 2);
  EXPECT_EQ(dispatcher_->in_flight("a"), 0);
  EXPECT_EQ(dispatcher_->servers().size(), 1u);

  ASSERT_TRUE(client_.Complete(1, Flawed(-1)));  // b frees: t1 first
  ASSERT_EQ(client_.num_calls(), 3);
  EXPECT_EQ(client_.call(2).request.trajectory_id(), "t1");
  EXPECT_EQ(ServerOf(2), "b");
  // The dead server's answer arrives after all: ignored.
  ASSERT_TRUE(client_.Complete(0, Flawed(4)));
  ASSERT_TRUE(client_.Complete(2, Flawed(1)));
  ASSERT_TRUE(client_.Complete(3, Flawed(-1)));
  EXPECT_THAT(VerdictIds(), ElementsAre("t2", "t1", "t3"));
  EXPECT_EQ(Verdicts()[1].second.first_error_step(), 1);
  EXPECT_EQ(Metric("fapo_genrm_attempts_total", {"requeued"}), 1);
  EXPECT_EQ(Metric("fapo_genrm_retries_total"), 0);
  EXPECT_EQ(Metric("fapo_genrm_late_results_total"), 1);
}

TEST_F(GenrmDispatcherTest, RemovedServerRequeuesInSubmissionOrder) {
  Make();
  dispatcher_->AddServer(Server("a", 3));
  for (int i = 0; i < 3; ++i) {
    ASSERT_THAT(dispatcher_->Submit(Request(absl::StrCat("t", i))), IsOk());
  }
  ASSERT_THAT(dispatcher_->Submit(Request("t3")), IsOk());  // waits
  dispatcher_->RemoveServer("a");
  EXPECT_EQ(client_.cancels(), 3);
  dispatcher_->AddServer(Server("b", 4));
  ASSERT_EQ(client_.num_calls(), 7);
  std::vector<std::string> order;
  for (int i = 3; i < 7; ++i) {
    order.push_back(client_.call(i).request.trajectory_id());
  }
  EXPECT_THAT(order, ElementsAre("t0", "t1", "t2", "t3"));
}

TEST_F(GenrmDispatcherTest, ReRegisteredServerAtNewAddressGetsCallsAgain) {
  Make();
  dispatcher_->AddServer(Server("a"));
  ASSERT_THAT(dispatcher_->Submit(Request("t1")), IsOk());
  dispatcher_->AddServer(GenrmServer{"a", "a.local:60000", 8});
  EXPECT_EQ(client_.cancels(), 1);
  ASSERT_EQ(client_.num_calls(), 2);
  EXPECT_EQ(client_.call(1).server.address, "a.local:60000");
  ASSERT_TRUE(client_.Complete(1, Flawed(-1)));
  EXPECT_THAT(VerdictIds(), ElementsAre("t1"));
}

TEST_F(GenrmDispatcherTest, CapacityUpdateTakesEffect) {
  Make();
  dispatcher_->AddServer(Server("a", 1));
  ASSERT_THAT(dispatcher_->Submit(Request("t1")), IsOk());
  ASSERT_THAT(dispatcher_->Submit(Request("t2")), IsOk());
  EXPECT_EQ(dispatcher_->waiting(), 1);
  dispatcher_->AddServer(Server("a", 2));
  EXPECT_EQ(dispatcher_->waiting(), 0);
  EXPECT_EQ(dispatcher_->in_flight("a"), 2);
  EXPECT_EQ(client_.cancels(), 0);
}

TEST_F(GenrmDispatcherTest, InlineCompletionDeliversBeforeSubmitReturns) {
  Make();
  int calls = 0;
  client_.SetAutoResponder([&calls](const GenrmServer&, const v1::ScoreRequest&)
                               -> std::optional<absl::StatusOr<v1::Verdict>> {
    // Fails the first attempt inline, answers the second inline.
    if (calls++ == 0) return absl::UnavailableError("flaky");
    return Flawed(0);
  });
  dispatcher_->AddServer(Server("a"));
  dispatcher_->AddServer(Server("b"));
  ASSERT_THAT(dispatcher_->Submit(Request("t1")), IsOk());
  EXPECT_EQ(client_.num_calls(), 2);
  EXPECT_EQ(ServerOf(1), "b");
  EXPECT_THAT(VerdictIds(), ElementsAre("t1"));
  EXPECT_EQ(dispatcher_->pending(), 0);
  EXPECT_EQ(dispatcher_->in_flight(), 0);
  EXPECT_EQ(dispatcher_->in_flight("a"), 0);
}

// NOTE [inline completion]: a cancel that lands while Score runs outranks
// the result that Score then delivers inline.
TEST_F(GenrmDispatcherTest, CancelDuringScoreDropsTheInlineResult) {
  Make();
  client_.SetAutoResponder(
      [this](const GenrmServer&, const v1::ScoreRequest& request)
          -> std::optional<absl::StatusOr<v1::Verdict>> {
        EXPECT_TRUE(dispatcher_->Cancel(request.trajectory_id()));
        return Flawed(0);
      });
  dispatcher_->AddServer(Server("a"));
  ASSERT_THAT(dispatcher_->Submit(Request("t1")), IsOk());
  EXPECT_EQ(client_.num_calls(), 1);
  EXPECT_THAT(Verdicts(), IsEmpty());
  EXPECT_EQ(dispatcher_->pending(), 0);
  EXPECT_EQ(dispatcher_->in_flight(), 0);
  EXPECT_EQ(dispatcher_->in_flight("a"), 0);
  dispatcher_->Shutdown();  // returns: no callback is counted as owed
}

// ... and so does a requeue (the server left while Score ran): the result
// from the departed server is dropped, and the request goes to another.
TEST_F(GenrmDispatcherTest, ServerRemovedDuringScoreRequeuesPastInlineResult) {
  Make();
  int calls = 0;
  client_.SetAutoResponder(
      [this, &calls](const GenrmServer& server, const v1::ScoreRequest&)
          -> std::optional<absl::StatusOr<v1::Verdict>> {
        if (calls++ == 0) {
          dispatcher_->RemoveServer(server.worker_id);
          return Flawed(3);  // from the server that is gone: not delivered
        }
        return Flawed(-1);
      });
  dispatcher_->AddServer(Server("a"));
  dispatcher_->AddServer(Server("b"));
  ASSERT_THAT(dispatcher_->Submit(Request("t1")), IsOk());
  EXPECT_EQ(client_.num_calls(), 2);
  EXPECT_EQ(ServerOf(0), "a");
  EXPECT_EQ(ServerOf(1), "b");
  std::vector<std::pair<std::string, v1::Verdict>> verdicts = Verdicts();
  ASSERT_EQ(verdicts.size(), 1u);
  EXPECT_EQ(verdicts[0].second.first_error_step(), -1);
  EXPECT_EQ(verdicts[0].second.genrm_server_id(), "b");
  EXPECT_EQ(dispatcher_->pending(), 0);
  EXPECT_EQ(dispatcher_->in_flight(), 0);
  EXPECT_EQ(Metric("fapo_genrm_attempts_total", {"requeued"}), 1);
  dispatcher_->Shutdown();
}

TEST_F(GenrmDispatcherTest, SinkMayResubmit) {
  auto dispatcher = GenrmDispatcher::Create(
      DefaultSchedulerOptions().genrm, &client_,
      [this](const std::string& id, v1::Verdict) {
        if (id == "t1") {
          ASSERT_THAT(dispatcher_->Submit(Request("t2")), IsOk());
        }
      });
  ASSERT_THAT(dispatcher, IsOk());
  dispatcher_ = *std::move(dispatcher);
  client_.SetAutoResponder(
      [](const GenrmServer&, const v1::ScoreRequest&)
          -> std::optional<absl::StatusOr<v1::Verdict>> { return Flawed(-1); });
  dispatcher_->AddServer(Server("a"));
  ASSERT_THAT(dispatcher_->Submit(Request("t1")), IsOk());
  EXPECT_EQ(client_.num_calls(), 2);
}

TEST_F(GenrmDispatcherTest, ShutdownCancelsEverythingAndSilencesSink) {
  Make();
  dispatcher_->AddServer(Server("a", 1));
  ASSERT_THAT(dispatcher_->Submit(Request("t1")), IsOk());
  ASSERT_THAT(dispatcher_->Submit(Request("t2")), IsOk());
  dispatcher_->Shutdown();
  EXPECT_EQ(client_.cancels(), 1);
  EXPECT_THAT(Verdicts(), IsEmpty());
  EXPECT_EQ(dispatcher_->pending(), 0);
  EXPECT_EQ(dispatcher_->waiting(), 0);
  EXPECT_EQ(dispatcher_->in_flight(), 0);
  dispatcher_->AddServer(Server("b"));
  EXPECT_EQ(client_.num_calls(), 1);
  dispatcher_->Shutdown();  // idempotent
}

TEST_F(GenrmDispatcherTest, ShutdownWaitsForOutstandingCallbacks) {
  Make();
  client_.set_complete_on_cancel(false);
  dispatcher_->AddServer(Server("a"));
  ASSERT_THAT(dispatcher_->Submit(Request("t1")), IsOk());
  std::atomic<bool> returned{false};
  std::thread shutdown([&] {
    dispatcher_->Shutdown();
    returned = true;
  });
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(returned.load());
  ASSERT_TRUE(client_.Complete(0, Flawed(1)));
  shutdown.join();
  EXPECT_TRUE(returned.load());
  EXPECT_THAT(Verdicts(), IsEmpty());
}

// A client that finishes calls on its own threads (or inline), with random
// outcomes, for the stress test.
class ThreadedClient final : public GenrmClient {
 public:
  explicit ThreadedClient(int threads) {
    for (int i = 0; i < threads; ++i) {
      workers_.emplace_back([this, i] { Work(i); });
    }
  }
  ~ThreadedClient() override {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    for (std::thread& worker : workers_) worker.join();
  }

  std::unique_ptr<GenrmCall> Score(const GenrmServer& server,
                                   const v1::ScoreRequest& request, absl::Time,
                                   Done done) override {
    auto call = std::make_shared<Call>();
    call->done = std::move(done);
    bool inline_ok = false;
    {
      absl::MutexLock lock(&mu_);
      inline_ok = (counter_++ % 5) == 0;
      if (!inline_ok) queue_.push_back(call);
    }
    if (inline_ok) Finish(*call, Flawed(-1));
    return std::make_unique<Handle>(call);
  }

 private:
  struct Call {
    std::atomic<bool> finished{false};
    Done done;
  };
  static void Finish(Call& call, absl::StatusOr<v1::Verdict> result) {
    if (call.finished.exchange(true)) return;
    Done done = std::move(call.done);
    done(std::move(result));
  }
  class Handle final : public GenrmCall {
   public:
    explicit Handle(std::shared_ptr<Call> call) : call_(std::move(call)) {}
    void Cancel() override { Finish(*call_, absl::CancelledError("cancel")); }

   private:
    std::shared_ptr<Call> call_;
  };

  void Work(int seed) {
    std::mt19937 rng(seed);
    while (true) {
      std::shared_ptr<Call> call;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stop_ || !queue_.empty();
        };
        mu_.Await(absl::Condition(&ready));
        if (queue_.empty()) return;
        // Not FIFO: results come back in any order.
        size_t pick = rng() % queue_.size();
        std::swap(queue_[pick], queue_.back());
        call = queue_.back();
        queue_.pop_back();
      }
      switch (rng() % 10) {
        case 0:
        case 1:
          Finish(*call, absl::UnavailableError("flaky"));
          break;
        case 2:
          Finish(*call, absl::DeadlineExceededError("slow"));
          break;
        default:
          Finish(*call, Flawed(static_cast<int>(rng() % 3) - 1));
      }
    }
  }

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t counter_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::shared_ptr<Call>> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> workers_;
};

TEST(GenrmDispatcherStressTest, ExactlyOneVerdictPerRequestUnderConcurrency) {
  constexpr int kSubmitters = 4;
  constexpr int kPerSubmitter = 3000;
  ThreadedClient client(3);
  absl::Mutex mu;
  std::map<std::string, int> delivered;  // guarded by mu
  std::unique_ptr<metrics::MetricsRegistry> registry =
      metrics::NewMetricsRegistry();
  GenrmDispatcherOptions options = DefaultSchedulerOptions().genrm;
  options.max_in_flight_per_server = 8;
  options.max_retries = 1;
  options.metrics = registry.get();
  auto created = GenrmDispatcher::Create(
      options, &client, [&](const std::string& id, v1::Verdict verdict) {
        absl::MutexLock lock(&mu);
        EXPECT_EQ(verdict.trajectory_id(), id);
        ++delivered[id];
      });
  ASSERT_THAT(created, IsOk());
  std::unique_ptr<GenrmDispatcher> dispatcher = *std::move(created);
  dispatcher->AddServer(Server("a", 8));
  dispatcher->AddServer(Server("b", 8));

  std::atomic<bool> done_submitting{false};
  std::vector<std::set<std::string>> cancelled(kSubmitters);
  std::vector<std::thread> threads;
  for (int t = 0; t < kSubmitters; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerSubmitter; ++i) {
        const std::string id = absl::StrCat("s", t, "-", i);
        ASSERT_THAT(dispatcher->Submit(Request(id)), IsOk());
        if (i % 7 == 3) {
          // Cancel an earlier one of ours: pending or already resolved.
          const std::string victim = absl::StrCat("s", t, "-", i - 2);
          if (dispatcher->Cancel(victim)) cancelled[t].insert(victim);
        }
      }
    });
  }
  // Servers come and go meanwhile.
  std::thread flapper([&] {
    int round = 0;
    while (!done_submitting.load()) {
      dispatcher->RemoveServer("b");
      dispatcher->AddServer(Server("c", 4));
      absl::SleepFor(absl::Microseconds(200));
      dispatcher->AddServer(GenrmServer{"b", absl::StrCat("b:", round++), 8});
      dispatcher->RemoveServer("c");
      absl::SleepFor(absl::Microseconds(200));
    }
  });
  for (std::thread& thread : threads) thread.join();
  done_submitting = true;
  flapper.join();

  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (dispatcher->pending() > 0 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(dispatcher->pending(), 0);
  dispatcher->Shutdown();

  absl::MutexLock lock(&mu);
  int expected = 0;
  for (int t = 0; t < kSubmitters; ++t) {
    for (int i = 0; i < kPerSubmitter; ++i) {
      const std::string id = absl::StrCat("s", t, "-", i);
      const bool was_cancelled = cancelled[t].count(id) > 0;
      auto it = delivered.find(id);
      const int count = it == delivered.end() ? 0 : it->second;
      ASSERT_EQ(count, was_cancelled ? 0 : 1) << id;
      if (!was_cancelled) ++expected;
    }
  }
  EXPECT_EQ(static_cast<int>(delivered.size()), expected);
  EXPECT_GT(expected, kSubmitters * kPerSubmitter * 3 / 4);
  // The paths under test were all taken.
  EXPECT_GT(MetricValue(*registry, "fapo_genrm_retries_total"), 0);
  EXPECT_GT(
      MetricValue(*registry, "fapo_genrm_gave_up_total", {"retries_exhausted"}),
      0);
  EXPECT_GT(MetricValue(*registry, "fapo_genrm_attempts_total", {"requeued"}),
            0);
  EXPECT_GT(MetricValue(*registry, "fapo_genrm_attempts_total", {"cancelled"}),
            0);
  EXPECT_EQ(MetricValue(*registry, "fapo_genrm_waiting"), 0);
}

}  // namespace
}  // namespace fapo::scheduler
