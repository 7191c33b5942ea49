// Stage 4 over real gRPC on loopback: a fapo-scheduler process, two
// fapo-genrm-server processes (the rule checker behind a 300 ms latency, so
// requests are in flight) and a scripted rollout worker in this process (a
// real fapo.v1.Rollout service that registers with the scheduler). One
// GenRM server is killed with SIGKILL while it holds requests: every
// trajectory must still end scored exactly once, with the verdict the rule
// checker gives.
#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fapo/v1/rollout.grpc.pb.h"
#include "fapo/v1/scheduler.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/rpc/channel.h"
#include "services/rpc/server.h"
#include "services/rpc/worker_lease.h"
#include "services/status/status_matchers.h"
#include "tasks/arith/problem.h"
#include "tasks/arith/solution.h"
#include "tests/support/eventually.h"
#include "tests/support/http_client.h"
#include "tests/support/service_process.h"
#include "tests/support/subprocess.h"

namespace fapo {
namespace {

using ::fapo::testing::Eventually;

using ::fapo::testing::BinaryPath;
using ::fapo::testing::IsOk;
using ::fapo::testing::SourcePath;
using ::fapo::testing::Subprocess;
using ::testing::HasSubstr;

constexpr int kGroupSize = 4;
constexpr int kGroupsPerStep = 16;
// max_staleness 1 and no trainer: the scheduler admits two steps' worth.
constexpr int kTrajectories = 2 * kGroupsPerStep * kGroupSize;

// The quickstart's arith options (configs/quickstart.yaml).
tasks::arith::ArithOptions QuickstartArith() {
  tasks::arith::ArithOptions options;
  return options;
}

// Sample i of a group: 0 and 3 sound, 1 a flawed positive (the answer line
// repeated: an extra step, right answer), 2 wrong.
std::string Response(const std::string& prompt, int index) {
  auto problem = tasks::arith::ParsePrompt(prompt);
  if (!problem.ok()) return "unparsable prompt";
  auto solution = tasks::arith::WriteSolution(*problem, QuickstartArith());
  if (!solution.ok()) return "overflow";
  switch (index % 4) {
    case 1: {
      const size_t last = solution->rfind('\n');
      return absl::StrCat(*solution, "\n", solution->substr(last + 1));
    }
    case 2:
      return absl::StrCat(solution->substr(0, solution->rfind('\n')), "\n#x");
    default:
      return *solution;
  }
}

// Streams the scripted samples of one group, one Write at a time.
class GroupWriter final : public grpc::ServerWriteReactor<v1::Trajectory> {
 public:
  explicit GroupWriter(const v1::GenerateRequest& request) {
    for (int i = 0; i < request.num_samples(); ++i) {
      v1::Trajectory t;
      t.set_trajectory_id(absl::StrCat(request.group_id(), "/", i));
      t.set_group_id(request.group_id());
      t.set_sample_index(i);
      t.set_prompt_id(request.prompt().prompt_id());
      t.set_response_text(Response(request.prompt().text(), i));
      t.add_response_token_ids(1);
      t.set_finish_reason(v1::FINISH_REASON_STOP);
      t.set_worker_id("scripted-rollout");
      samples_.push_back(std::move(t));
    }
    Next();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
      return;
    }
    Next();
  }
  void OnDone() override { delete this; }

 private:
  void Next() {
    if (next_ == samples_.size()) {
      Finish(grpc::Status::OK);
      return;
    }
    StartWrite(&samples_[next_++]);
  }
  std::vector<v1::Trajectory> samples_;
  size_t next_ = 0;
};

class ScriptedRollout final : public v1::Rollout::CallbackService {
 public:
  grpc::ServerWriteReactor<v1::Trajectory>* Generate(
      grpc::CallbackServerContext*,
      const v1::GenerateRequest* request) override {
    absl::MutexLock lock(&mu_);
    ++groups_;
    return new GroupWriter(*request);
  }
  int groups() {
    absl::MutexLock lock(&mu_);
    return groups_;
  }

 private:
  absl::Mutex mu_;
  int groups_ ABSL_GUARDED_BY(mu_) = 0;
};

class SchedulerLoopbackTest : public ::testing::Test {
 protected:
  std::vector<std::string> CommonFlags() {
    return {"--config",
            SourcePath("configs/quickstart.yaml"),
            "--set",
            absl::StrCat("rollout.group_size=", kGroupSize),
            "--set",
            absl::StrCat("rollout.prompts_per_step=", kGroupsPerStep),
            "--set",
            "scheduler.max_staleness=1",
            "--set",
            "scheduler.heartbeat_interval_ms=200",
            "--set",
            "scheduler.worker_timeout_ms=1500",
            "--set",
            "scheduler.max_consecutive_failures=1000",
            "--set",
            "genrm.backend=latency",
            "--set",
            "genrm.latency.inner=rule",
            "--set",
            "genrm.latency.distribution=constant",
            "--set",
            "genrm.latency.mean_ms=300",
            "--set",
            "genrm.max_in_flight_per_server=8",
            "--set",
            "genrm.request_timeout_ms=10000",
            "--set",
            "metrics.enabled=false",
            "--set",
            "job.output_dir=" + dir_.path() + "/run",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--drain-timeout-ms",
            "1000"};
  }

  std::unique_ptr<Subprocess> Start(const std::string& binary,
                                    const std::string& name,
                                    std::vector<std::string> extra,
                                    nlohmann::json* ready) {
    std::vector<std::string> argv = {BinaryPath(binary)};
    std::vector<std::string> common = CommonFlags();
    argv.insert(argv.end(), common.begin(), common.end());
    argv.insert(argv.end(), extra.begin(), extra.end());
    logs_.push_back(dir_.path() + "/" + name + ".log");
    absl::StatusOr<testing::StartedService> started =
        testing::StartService(argv, dir_.path(), name);
    EXPECT_THAT(started, IsOk());
    if (!started.ok()) return nullptr;
    *ready = started->ready;
    return std::move(started->process);
  }

  v1::JobStatus Status() {
    v1::JobStatus status;
    auto context = rpc::NewContext(absl::Seconds(5));
    grpc::Status result = scheduler_stub_->GetJobStatus(
        context.get(), v1::GetJobStatusRequest(), &status);
    EXPECT_TRUE(result.ok()) << result.error_message();
    return status;
  }

  int InFlight(const v1::JobStatus& status, const std::string& worker_id) {
    for (const v1::WorkerStatus& worker : status.workers()) {
      if (worker.info().worker_id() == worker_id) return worker.in_flight();
    }
    return -1;
  }

  std::string Logs() {
    std::string out;
    for (const std::string& log : logs_) {
      out += absl::StrCat("==== ", log, "\n", testing::TailOfFile(log), "\n");
    }
    return out;
  }

  testing::TempDir dir_{"fapo-scheduler-loopback-"};
  std::vector<std::string> logs_;
  std::unique_ptr<v1::Scheduler::Stub> scheduler_stub_;
};

TEST_F(SchedulerLoopbackTest, EveryTrajectoryIsScoredOnceWhenAGenrmServerDies) {
  ASSERT_THAT(dir_.status(), IsOk());
  nlohmann::json ready;
  // Later --set wins: the scheduler serves /metrics on a free port.
  auto scheduler =
      Start("fapo-scheduler", "scheduler",
            {"--set", "metrics.enabled=true", "--metrics-port", "0"}, &ready);
  ASSERT_NE(scheduler, nullptr);
  const std::string scheduler_address = ready["grpc_address"];
  const std::string metrics_url = ready["metrics_url"];
  auto channel = rpc::MakeChannel(scheduler_address, {});
  ASSERT_THAT(channel, IsOk());
  scheduler_stub_ = v1::Scheduler::NewStub(*channel);

  nlohmann::json ready_a, ready_b;
  auto genrm_a = Start("fapo-genrm-server", "genrm-a",
                       {"--scheduler", scheduler_address}, &ready_a);
  auto genrm_b = Start("fapo-genrm-server", "genrm-b",
                       {"--scheduler", scheduler_address}, &ready_b);
  ASSERT_NE(genrm_a, nullptr);
  ASSERT_NE(genrm_b, nullptr);

  // The scripted rollout worker: a real Rollout service in this process.
  ScriptedRollout rollout;
  rpc::ServerOptions server_options;
  server_options.host = "127.0.0.1";
  auto rollout_server = rpc::RpcServer::Start(
      server_options, {{&rollout, v1::Rollout::service_full_name()}});
  ASSERT_THAT(rollout_server, IsOk());
  rpc::WorkerLeaseOptions lease_options;
  lease_options.scheduler_address = scheduler_address;
  lease_options.worker.set_worker_id("scripted-rollout");
  lease_options.worker.set_role(v1::WORKER_ROLE_ROLLOUT);
  lease_options.worker.set_address((*rollout_server)->address());
  lease_options.worker.set_capacity(4);
  auto lease = rpc::WorkerLease::Start(lease_options);
  ASSERT_THAT(lease, IsOk());

  // Kill genrm-a while it holds requests.
  ASSERT_TRUE(Eventually([&] { return InFlight(Status(), "genrm-a") > 0; },
                         absl::Seconds(30)))
      << Logs();
  genrm_a->Signal(SIGKILL);
  ASSERT_THAT(genrm_a->Wait(absl::Seconds(10)), IsOk());

  ASSERT_TRUE(Eventually(
      [&] {
        return Status().trajectories_by_state().at("scored") == kTrajectories;
      },
      absl::Seconds(60)))
      << Status().DebugString() << Logs();
  // Nothing more arrives: the staleness budget is used up without a trainer.
  absl::SleepFor(absl::Milliseconds(500));
  v1::JobStatus status = Status();
  EXPECT_EQ(status.state(), v1::JOB_STATE_RUNNING) << status.error();
  EXPECT_EQ(status.trajectories_by_state().at("scored"), kTrajectories);
  EXPECT_EQ(status.trajectories_by_state().at("scoring"), 0);
  EXPECT_EQ(status.trajectories_by_state().at("dropped"), 0);
  EXPECT_EQ(rollout.groups(), kTrajectories / kGroupSize);
  // One verdict per trajectory, each the rule checker's.
  auto counter = [&](const std::string& name) -> int64_t {
    auto it = status.counters().find(name);
    return it == status.counters().end() ? 0 : it->second;
  };
  EXPECT_EQ(counter("scheduler.verdicts.sound"), kTrajectories / 2);
  EXPECT_EQ(counter("scheduler.verdicts.flawed"), kTrajectories / 4);
  EXPECT_EQ(counter("scheduler.verdicts.skipped"), kTrajectories / 4);
  EXPECT_EQ(counter("scheduler.verdicts.timeout"), 0);
  EXPECT_EQ(counter("scheduler.verdicts.unparsable"), 0);
  EXPECT_EQ(counter("scheduler.verdicts.discarded"), 0);
  bool a_dead = false;
  for (const v1::WorkerStatus& worker : status.workers()) {
    if (worker.info().worker_id() == "genrm-a") {
      a_dead = worker.state() == v1::WORKER_STATE_DEAD;
    }
  }
  EXPECT_TRUE(a_dead) << status.DebugString();

  // The scheduler's /metrics tells the same story (the README's list).
  absl::StatusOr<std::string> metrics = testing::FetchBody(metrics_url);
  ASSERT_THAT(metrics, IsOk());
  for (const std::string& line : std::vector<std::string>{
           absl::StrCat("fapo_queue_trajectories{state=\"scored\"} ",
                        kTrajectories),
           absl::StrCat("fapo_genrm_verdicts_total{outcome=\"flawed\"} ",
                        kTrajectories / 4),
           absl::StrCat("fapo_genrm_verdicts_total{outcome=\"skipped\"} ",
                        kTrajectories / 4),
           "fapo_workers{role=\"genrm\",state=\"dead\"} 1",
           "fapo_workers{role=\"rollout\",state=\"alive\"} 1",
           "fapo_genrm_in_flight{server=\"genrm-b\"} 0",
           "fapo_genrm_waiting 0",
       }) {
    EXPECT_THAT(*metrics, HasSubstr("\n" + line + "\n")) << line;
  }
  for (const char* family :
       {"fapo_genrm_dispatch_latency_seconds_bucket",
        "fapo_genrm_verdict_latency_seconds_bucket",
        "fapo_trajectory_staleness_bucket", "fapo_flawed_positive_ratio",
        "fapo_batch_rollout_share", "fapo_policy_version",
        "fapo_worker_deaths_total", "fapo_consecutive_failures"}) {
    EXPECT_THAT(*metrics, HasSubstr(family)) << family;
  }

  // StopJob: the job stops, the workers see it and exit on their own.
  {
    v1::StopJobRequest request;
    request.set_reason("test over");
    v1::StopJobResponse response;
    auto context = rpc::NewContext(absl::Seconds(5));
    ASSERT_TRUE(
        scheduler_stub_->StopJob(context.get(), request, &response).ok());
    EXPECT_NE(response.job_state(), v1::JOB_STATE_RUNNING);
  }
  EXPECT_THAT(genrm_b->Wait(absl::Seconds(20)), testing::IsOkAndHolds(0))
      << Logs();
  EXPECT_THAT(scheduler->Wait(absl::Seconds(20)), testing::IsOkAndHolds(0))
      << Logs();
  (*lease)->Stop();
}

}  // namespace
}  // namespace fapo
