// The whole job over loopback gRPC, every service its own process: a
// scheduler, two data-parallel trainer ranks (Gloo over loopback, NOTE
// [trainer ranks] in trainer/comm/rank_group.h), two rollout workers and two
// GenRM servers (rule) train the embedded tiny policy for a few steps. The
// policy versions advance on every worker, checkpoints and metrics.jsonl
// are written, every trajectory is accounted for (generated = trained +
// dropped with a reason + still held), and every process exits 0 once the
// job has succeeded.
#include <algorithm>
#include <fstream>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fapo/v1/scheduler.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/rpc/channel.h"
#include "services/status/status_matchers.h"
#include "tests/support/eventually.h"
#include "tests/support/http_client.h"
#include "tests/support/service_process.h"
#include "tests/support/subprocess.h"

namespace fapo {
namespace {

using ::fapo::testing::BinaryPath;
using ::fapo::testing::Eventually;
using ::fapo::testing::IsOk;
using ::fapo::testing::IsOkAndHolds;
using ::fapo::testing::SourcePath;
using ::fapo::testing::Subprocess;

constexpr int kSteps = 5;
constexpr int kTrainerRanks = 2;

class EndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_THAT(dir_.status(), IsOk());
    model_dir_ = dir_.path() + "/tiny-policy";
    run_dir_ = dir_.path() + "/run";
    auto made = testing::RunCommand(
        {BinaryPath("fapo"), "init-model", "--out", model_dir_, "--seed", "1"},
        absl::Seconds(60));
    ASSERT_THAT(made, IsOk());
    ASSERT_EQ(made->exit_code, 0) << made->stderr_text;
  }

  std::vector<std::string> Flags() {
    return {"--config",
            SourcePath("configs/quickstart.yaml"),
            "--set",
            "policy.model_dir=" + model_dir_,
            "--set",
            "job.output_dir=" + run_dir_,
            "--set",
            absl::StrCat("job.steps=", kSteps),
            "--set",
            absl::StrCat("trainer.ranks=", kTrainerRanks),
            "--set",
            "rollout.group_size=4",
            "--set",
            "rollout.prompts_per_step=4",
            "--set",
            "rollout.max_new_tokens=16",
            "--set",
            "trainer.micro_batch_size=8",
            "--set",
            "trainer.checkpoint_every=2",
            "--set",
            "scheduler.heartbeat_interval_ms=200",
            "--set",
            "scheduler.worker_timeout_ms=3000",
            "--set",
            "metrics.enabled=true",  // scraped for the dashboard
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--drain-timeout-ms",
            "2000"};
  }

  std::vector<std::string> Argv(const std::string& binary,
                                std::vector<std::string> extra) {
    std::vector<std::string> argv = {BinaryPath(binary)};
    std::vector<std::string> common = Flags();
    argv.insert(argv.end(), common.begin(), common.end());
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  std::unique_ptr<Subprocess> Start(const std::string& binary,
                                    const std::string& name,
                                    std::vector<std::string> extra,
                                    nlohmann::json* ready) {
    std::vector<std::string> argv = Argv(binary, std::move(extra));
    logs_.push_back(dir_.path() + "/" + name + ".log");
    absl::StatusOr<testing::StartedService> started =
        testing::StartService(argv, dir_.path(), name);
    EXPECT_THAT(started, IsOk());
    if (!started.ok()) return nullptr;
    *ready = started->ready;
    metrics_urls_.push_back(started->ready.value("metrics_url", ""));
    return std::move(started->process);
  }

  // The metric families the services at `urls` export now ("# TYPE"
  // lines), added to `families`. Returns whether every scrape answered.
  bool ScrapeFamilies(const std::vector<std::string>& urls,
                      std::set<std::string>& families) {
    bool all = true;
    for (const std::string& url : urls) {
      absl::StatusOr<std::string> text = testing::FetchBody(url);
      if (!text.ok()) {
        all = false;
        continue;
      }
      for (absl::string_view line : absl::StrSplit(*text, '\n')) {
        if (!absl::ConsumePrefix(&line, "# TYPE ")) continue;
        families.emplace(line.substr(0, line.find(' ')));
      }
    }
    return all;
  }

  v1::JobStatus Status() {
    v1::JobStatus status;
    auto context = rpc::NewContext(absl::Seconds(5));
    grpc::Status result =
        stub_->GetJobStatus(context.get(), v1::GetJobStatusRequest(), &status);
    if (!result.ok())
      status.set_error("GetJobStatus: " + result.error_message());
    return status;
  }

  std::string Logs() {
    std::string out;
    for (const std::string& log : logs_) {
      out += absl::StrCat("==== ", log, "\n", testing::TailOfFile(log), "\n");
    }
    return out;
  }

  testing::TempDir dir_{"fapo-end-to-end-"};
  std::string model_dir_;
  std::string run_dir_;
  std::vector<std::string> logs_;
  std::vector<std::string> metrics_urls_;
  std::unique_ptr<v1::Scheduler::Stub> stub_;
};

// The fapo_* metric names a PromQL expression reads: label matchers and
// by/without/on/ignoring lists (where label names such as fapo_job stand)
// are cut out first; _bucket/_sum/_count name the histogram's family.
std::set<std::string> MetricsIn(std::string expr) {
  static const std::regex kLabels(R"(\{[^}]*\})");
  static const std::regex kGrouping(
      R"(\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\))");
  static const std::regex kName(R"(\bfapo_[a-z0-9_]+)");
  static const std::regex kHistogramPart(R"(_(bucket|sum|count)$)");
  expr = std::regex_replace(expr, kLabels, " ");
  expr = std::regex_replace(expr, kGrouping, " ");
  std::set<std::string> names;
  for (auto it = std::sregex_iterator(expr.begin(), expr.end(), kName);
       it != std::sregex_iterator(); ++it) {
    names.insert(std::regex_replace(it->str(), kHistogramPart, ""));
  }
  return names;
}

TEST_F(EndToEndTest, TrainsForItsStepsAndAccountsForEveryTrajectory) {
  nlohmann::json ready;
  auto scheduler = Start("fapo-scheduler", "scheduler", {}, &ready);
  ASSERT_NE(scheduler, nullptr);
  const std::string address = ready["grpc_address"];
  auto channel = rpc::MakeChannel(address, {});
  ASSERT_THAT(channel, IsOk());
  stub_ = v1::Scheduler::NewStub(*channel);

  std::vector<std::unique_ptr<Subprocess>> workers;
  const std::vector<std::string> scheduler_flag = {"--scheduler", address};
  // The trainer ranks start together, as a launcher starts them: each is
  // ready only once all have joined. Rank 0 registers; rank 1 ignores
  // --scheduler.
  absl::StatusOr<int> rendezvous_port = testing::FreeLoopbackPort();
  ASSERT_THAT(rendezvous_port, IsOk());
  std::vector<testing::ServiceLaunch> trainer_ranks;
  for (int rank = 0; rank < kTrainerRanks; ++rank) {
    const std::string name = absl::StrCat("trainer-", rank);
    logs_.push_back(dir_.path() + "/" + name + ".log");
    trainer_ranks.push_back(
        {name,
         Argv("fapo-trainer", {"--rank", absl::StrCat(rank), "--rendezvous",
                               absl::StrCat("127.0.0.1:", *rendezvous_port),
                               "--scheduler", address})});
  }
  absl::StatusOr<std::vector<testing::StartedService>> trainers =
      testing::StartServices(std::move(trainer_ranks), dir_.path());
  ASSERT_THAT(trainers, IsOk());
  for (testing::StartedService& trainer : *trainers) {
    metrics_urls_.push_back(trainer.ready.value("metrics_url", ""));
    workers.push_back(std::move(trainer.process));
  }
  // The metric families the Grafana dashboard may read: scraped while the
  // job cannot be over (NOTE [dashboard metrics] below).
  std::set<std::string> exported;
  for (const std::string name : {"genrm-a", "genrm-b"}) {
    nlohmann::json worker_ready;
    workers.push_back(
        Start("fapo-genrm-server", name, scheduler_flag, &worker_ready));
    ASSERT_NE(workers.back(), nullptr) << name;
  }
  // Before any rollout worker nothing can be generated, so the scheduler,
  // the trainer ranks and the GenRM servers are all up.
  ASSERT_TRUE(ScrapeFamilies(metrics_urls_, exported));
  // The rollout workers start together: the tiny job can be over within a
  // second of the first one joining, before a second started after it
  // would have registered (it then waits a minute for the scheduler that
  // left).
  std::vector<testing::ServiceLaunch> rollouts;
  for (const std::string name : {"rollout-a", "rollout-b"}) {
    logs_.push_back(dir_.path() + "/" + name + ".log");
    rollouts.push_back({name, Argv("fapo-rollout-worker", scheduler_flag)});
  }
  absl::StatusOr<std::vector<testing::StartedService>> started_rollouts =
      testing::StartServices(std::move(rollouts), dir_.path());
  ASSERT_THAT(started_rollouts, IsOk());
  std::vector<std::string> rollout_urls;
  for (testing::StartedService& rollout : *started_rollouts) {
    rollout_urls.push_back(rollout.ready.value("metrics_url", ""));
    workers.push_back(std::move(rollout.process));
  }
  // Their own families, unless the job was already over and they left.
  const bool rollouts_scraped = ScrapeFamilies(rollout_urls, exported);

  // NOTE [dashboard metrics]: every series the Grafana dashboard
  // (deploy/grafana) reads is exported by some service: a renamed metric
  // breaks the dashboard here, not on a user's screen. The workers leave
  // as soon as the job is over, so the families were scraped as they
  // started (above). Series that only appear with their first event (a
  // drop, a regenerated group, a dead worker, a finished sample) are
  // listed instead.
  {
    const std::set<std::string> after_first_event = {
        "fapo_queue_dropped_total", "fapo_groups_regenerated_total",
        "fapo_worker_deaths_total", "fapo_rollout_worker_trajectories_total"};
    std::ifstream file(SourcePath("deploy/grafana/fapo-job.json"));
    nlohmann::json dashboard = nlohmann::json::parse(file, nullptr, false);
    ASSERT_FALSE(dashboard.is_discarded()) << "fapo-job.json does not parse";
    int expressions = 0;
    for (const nlohmann::json& panel : dashboard["panels"]) {
      if (!panel.contains("targets")) continue;
      for (const nlohmann::json& target : panel["targets"]) {
        const std::string expr = target["expr"];
        ++expressions;
        for (const std::string& name : MetricsIn(expr)) {
          if (!rollouts_scraped &&
              absl::StartsWith(name, "fapo_rollout_worker_")) {
            continue;
          }
          EXPECT_TRUE(exported.count(name) == 1 ||
                      after_first_event.count(name) == 1)
              << panel["title"] << ": " << name << " is exported by no "
              << "service (" << expr << ")";
        }
      }
    }
    EXPECT_GE(expressions, 20);
  }

  // The first status that shows the end: the workers leave right after
  // (each learns it from its next heartbeat), so a later one may miss them.
  v1::JobStatus status;
  ASSERT_TRUE(Eventually(
      [&] {
        status = Status();
        return status.state() == v1::JOB_STATE_SUCCEEDED ||
               status.state() == v1::JOB_STATE_FAILED;
      },
      absl::Seconds(240), absl::Milliseconds(50)))
      << Status().DebugString() << Logs();
  ASSERT_EQ(status.state(), v1::JOB_STATE_SUCCEEDED)
      << status.error() << Logs();
  EXPECT_EQ(status.step(), kSteps);
  EXPECT_EQ(status.policy_version(), kSteps);

  // Generated = trained + dropped (with a reason) + still held.
  const auto& by_state = status.trajectories_by_state();
  const int64_t held = by_state.at("generated") + by_state.at("scoring") +
                       by_state.at("scored") + by_state.at("batched");
  EXPECT_EQ(status.counters().at("queue.added"),
            by_state.at("trained") + by_state.at("dropped") + held)
      << status.DebugString();
  // Every drop was counted under its reason (queue.dropped.<reason>).
  int64_t dropped_with_reason = 0;
  for (const auto& [key, value] : status.counters()) {
    if (absl::StartsWith(key, "queue.dropped.")) dropped_with_reason += value;
  }
  EXPECT_EQ(dropped_with_reason, by_state.at("dropped"))
      << status.DebugString();
  EXPECT_EQ(by_state.at("trained"), kSteps * 4 * 4);

  // The rollout workers moved to newer weights. Each UpdateWeights answer
  // was checked by the scheduler (weight_sync_failures below); a worker
  // swaps the weights in before its next group, so the version its
  // heartbeats report lags when it had no group left to generate: at least
  // one of them must report an advanced version.
  int rollout_workers = 0;
  int64_t newest = 0;
  for (const v1::WorkerStatus& worker : status.workers()) {
    if (worker.info().role() == v1::WORKER_ROLE_ROLLOUT) {
      ++rollout_workers;
      newest = std::max(newest, worker.info().policy_version());
    }
  }
  EXPECT_EQ(rollout_workers, 2);
  EXPECT_GE(newest, 1) << status.DebugString();

  // One metrics line per step, with both ranks' trajectories.
  std::ifstream metrics(run_dir_ + "/metrics.jsonl");
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(metrics, line);) {
    lines.push_back(nlohmann::json::parse(line));
  }
  ASSERT_EQ(lines.size(), static_cast<size_t>(kSteps));
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i]["step"], static_cast<int>(i) + 1);
    EXPECT_EQ(lines[i]["policy_version"], static_cast<int>(i) + 1);
    EXPECT_EQ(lines[i]["weight_sync_failures"], 0) << lines[i].dump();
    EXPECT_EQ(lines[i]["num_trajectories"], 16);
  }
  // Checkpoints (rank 0's) at steps 2, 4 and the last, with the
  // scheduler's snapshot inside.
  for (int step : {2, 4, kSteps}) {
    std::ifstream snapshot(absl::StrCat(run_dir_, "/checkpoints/step-", step,
                                        "/scheduler_snapshot.bin"));
    EXPECT_TRUE(snapshot.good()) << "checkpoint of step " << step;
  }

  // Everyone sees the job is over and exits cleanly.
  for (auto& worker : workers) {
    EXPECT_THAT(worker->Wait(absl::Seconds(30)), IsOkAndHolds(0)) << Logs();
  }
  EXPECT_THAT(scheduler->Wait(absl::Seconds(30)), IsOkAndHolds(0)) << Logs();
}

}  // namespace
}  // namespace fapo
