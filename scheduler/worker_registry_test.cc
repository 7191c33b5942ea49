#include "scheduler/worker_registry.h"

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
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

v1::WorkerInfo Worker(const std::string& id,
                      v1::WorkerRole role = v1::WORKER_ROLE_GENRM,
                      int capacity = 8) {
  v1::WorkerInfo info;
  info.set_worker_id(id);
  info.set_role(role);
  info.set_address(absl::StrCat(id, ":50051"));
  info.set_capacity(capacity);
  return info;
}

std::vector<std::string> Ids(const std::vector<v1::WorkerInfo>& infos) {
  std::vector<std::string> ids;
  for (const v1::WorkerInfo& info : infos) ids.push_back(info.worker_id());
  return ids;
}

double MetricValue(metrics::MetricsRegistry& registry, const std::string& name,
                   const std::vector<std::string>& label_values) {
  return metrics::testing::Read(registry, name, label_values).value_or(-1);
}

class WorkerRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WorkerRegistryOptions options;
    options.heartbeat_interval = absl::Seconds(1);
    options.worker_timeout = absl::Seconds(5);
    options.clock = &clock_;
    options.metrics = metrics_.get();
    auto registry = WorkerRegistry::Create(options);
    ASSERT_THAT(registry, IsOk());
    registry_ = *std::move(registry);
    registry_->SetListener(
        [this](const v1::WorkerInfo& info, v1::WorkerState state) {
          absl::MutexLock lock(&mu_);
          events_.push_back(absl::StrCat(
              info.worker_id(),
              state == v1::WORKER_STATE_ALIVE ? ":alive" : ":dead"));
        });
  }

  std::vector<std::string> Events() {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> events = std::move(events_);
    events_.clear();
    return events;
  }

  FakeClock clock_;
  std::unique_ptr<metrics::MetricsRegistry> metrics_ =
      metrics::NewMetricsRegistry();
  std::unique_ptr<WorkerRegistry> registry_;
  absl::Mutex mu_;
  std::vector<std::string> events_ ABSL_GUARDED_BY(mu_);
};

TEST(WorkerRegistryCreateTest, RejectsBadTimes) {
  WorkerRegistryOptions options;
  options.heartbeat_interval = absl::ZeroDuration();
  EXPECT_THAT(WorkerRegistry::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("heartbeat_interval")));
  options.heartbeat_interval = absl::Seconds(2);
  options.worker_timeout = absl::Seconds(2);
  EXPECT_THAT(WorkerRegistry::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("worker_timeout")));
  options.worker_timeout = absl::Seconds(3);
  EXPECT_THAT(WorkerRegistry::Create(options), IsOk());
}

TEST_F(WorkerRegistryTest, RegisterValidatesNamingTheField) {
  v1::WorkerInfo info = Worker("w");
  info.clear_worker_id();
  EXPECT_THAT(
      registry_->Register(info),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("worker_id")));
  info = Worker("w");
  info.clear_address();
  EXPECT_THAT(
      registry_->Register(info),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("address")));
  info = Worker("w", v1::WORKER_ROLE_UNSPECIFIED);
  EXPECT_THAT(registry_->Register(info),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("role")));
  info = Worker("w", v1::WORKER_ROLE_GENRM, 0);
  EXPECT_THAT(
      registry_->Register(info),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("capacity")));
  EXPECT_THAT(registry_->Statuses(), IsEmpty());
  EXPECT_THAT(Events(), IsEmpty());
}

TEST_F(WorkerRegistryTest, RegisterHeartbeatAndAliveByRole) {
  ASSERT_THAT(registry_->Register(Worker("g2")), IsOk());
  ASSERT_THAT(registry_->Register(Worker("g1")), IsOk());
  ASSERT_THAT(registry_->Register(Worker("r1", v1::WORKER_ROLE_ROLLOUT)),
              IsOk());
  EXPECT_THAT(Events(), ElementsAre("g2:alive", "g1:alive", "r1:alive"));
  EXPECT_THAT(Ids(registry_->Alive(v1::WORKER_ROLE_GENRM)),
              ElementsAre("g1", "g2"));
  EXPECT_EQ(registry_->AliveCount(v1::WORKER_ROLE_GENRM), 2);
  EXPECT_EQ(registry_->AliveCount(v1::WORKER_ROLE_ROLLOUT), 1);
  EXPECT_EQ(registry_->AliveCount(v1::WORKER_ROLE_TRAINER), 0);
  EXPECT_EQ(MetricValue(*metrics_, "fapo_workers", {"genrm", "alive"}), 2);

  EXPECT_TRUE(registry_->Heartbeat("g1", 3, 7));
  EXPECT_FALSE(registry_->Heartbeat("nobody", 0, 0));
  std::vector<v1::WorkerStatus> statuses = registry_->Statuses();
  ASSERT_EQ(statuses.size(), 3u);
  EXPECT_EQ(statuses[0].info().worker_id(), "g1");
  EXPECT_EQ(statuses[0].in_flight(), 3);
  EXPECT_EQ(statuses[0].info().policy_version(), 7);
  EXPECT_EQ(statuses[0].state(), v1::WORKER_STATE_ALIVE);
  EXPECT_EQ(statuses[0].last_heartbeat().seconds(),
            absl::ToUnixSeconds(clock_.Now()));
}

TEST_F(WorkerRegistryTest, SilentWorkersDieByTheClock) {
  ASSERT_THAT(registry_->Register(Worker("a")), IsOk());
  ASSERT_THAT(registry_->Register(Worker("b")), IsOk());
  Events();
  clock_.Advance(absl::Seconds(3));
  EXPECT_TRUE(registry_->Heartbeat("b", 0, 0));
  clock_.Advance(absl::Seconds(2));  // a silent for exactly 5 s: not yet
  EXPECT_THAT(registry_->Sweep(), IsEmpty());
  clock_.Advance(absl::Milliseconds(1));
  EXPECT_THAT(Ids(registry_->Sweep()), ElementsAre("a"));
  EXPECT_THAT(Events(), ElementsAre("a:dead"));
  EXPECT_THAT(Ids(registry_->Alive(v1::WORKER_ROLE_GENRM)), ElementsAre("b"));
  EXPECT_FALSE(registry_->Heartbeat("a", 0, 0));  // must register again
  EXPECT_THAT(registry_->Sweep(), IsEmpty());     // dies once
  EXPECT_EQ(MetricValue(*metrics_, "fapo_worker_deaths_total", {"genrm"}), 1);
  EXPECT_EQ(MetricValue(*metrics_, "fapo_workers", {"genrm", "dead"}), 1);
  EXPECT_EQ(MetricValue(*metrics_, "fapo_workers", {"genrm", "alive"}), 1);
  EXPECT_DOUBLE_EQ(
      MetricValue(*metrics_, "fapo_worker_heartbeat_age_max_seconds",
                  {"genrm"}),
      2.001);
  std::vector<v1::WorkerStatus> statuses = registry_->Statuses();
  ASSERT_EQ(statuses.size(), 2u);
  EXPECT_EQ(statuses[0].state(), v1::WORKER_STATE_DEAD);
}

TEST_F(WorkerRegistryTest, ReRegisterRevivesAndReportsChanges) {
  ASSERT_THAT(registry_->Register(Worker("a")), IsOk());
  clock_.Advance(absl::Seconds(6));
  registry_->Sweep();
  EXPECT_THAT(Events(), ElementsAre("a:alive", "a:dead"));
  ASSERT_THAT(registry_->Register(Worker("a")), IsOk());
  EXPECT_THAT(Events(), ElementsAre("a:alive"));
  EXPECT_TRUE(registry_->Heartbeat("a", 0, 0));
  EXPECT_EQ(registry_->AliveCount(v1::WORKER_ROLE_GENRM), 1);
  EXPECT_EQ(MetricValue(*metrics_, "fapo_workers", {"genrm", "dead"}), 0);

  // Same address and capacity: nothing to report, but the clock restarts.
  clock_.Advance(absl::Seconds(4));
  ASSERT_THAT(registry_->Register(Worker("a")), IsOk());
  EXPECT_THAT(Events(), IsEmpty());
  clock_.Advance(absl::Seconds(4));
  EXPECT_THAT(registry_->Sweep(), IsEmpty());
  // A new capacity (or address) is reported.
  ASSERT_THAT(registry_->Register(Worker("a", v1::WORKER_ROLE_GENRM, 16)),
              IsOk());
  EXPECT_THAT(Events(), ElementsAre("a:alive"));
  EXPECT_EQ(registry_->Alive(v1::WORKER_ROLE_GENRM)[0].capacity(), 16);
}

TEST_F(WorkerRegistryTest, RoleChangeReportsDeadInOldRoleThenAlive) {
  std::vector<std::string> seen;
  registry_->SetListener(
      [&seen](const v1::WorkerInfo& info, v1::WorkerState state) {
        seen.push_back(
            absl::StrCat(info.worker_id(), ":", info.role(), ":",
                         state == v1::WORKER_STATE_ALIVE ? "alive" : "dead"));
      });
  ASSERT_THAT(registry_->Register(Worker("a", v1::WORKER_ROLE_GENRM)), IsOk());
  ASSERT_THAT(registry_->Register(Worker("a", v1::WORKER_ROLE_ROLLOUT)),
              IsOk());
  EXPECT_THAT(seen, ElementsAre("a:2:alive", "a:2:dead", "a:1:alive"));
  EXPECT_EQ(registry_->AliveCount(v1::WORKER_ROLE_GENRM), 0);
  EXPECT_EQ(registry_->AliveCount(v1::WORKER_ROLE_ROLLOUT), 1);
  EXPECT_EQ(MetricValue(*metrics_, "fapo_workers", {"genrm", "alive"}), 0);
  EXPECT_EQ(MetricValue(*metrics_, "fapo_workers", {"rollout", "alive"}), 1);
}

TEST_F(WorkerRegistryTest, RemoveReportsDeadAndForgets) {
  ASSERT_THAT(registry_->Register(Worker("a")), IsOk());
  Events();
  EXPECT_TRUE(registry_->Remove("a"));
  EXPECT_FALSE(registry_->Remove("a"));
  EXPECT_THAT(Events(), ElementsAre("a:dead"));
  EXPECT_THAT(registry_->Statuses(), IsEmpty());
  EXPECT_FALSE(registry_->Heartbeat("a", 0, 0));
  EXPECT_EQ(MetricValue(*metrics_, "fapo_worker_deaths_total", {"genrm"}), 0);
  EXPECT_EQ(MetricValue(*metrics_, "fapo_workers", {"genrm", "alive"}), 0);
}

TEST_F(WorkerRegistryTest, ListenerMayCallBackIntoTheRegistry) {
  std::vector<int> alive_counts;
  registry_->SetListener([&](const v1::WorkerInfo& info, v1::WorkerState) {
    alive_counts.push_back(registry_->AliveCount(v1::WORKER_ROLE_GENRM));
    if (info.worker_id() == "a") {
      EXPECT_THAT(registry_->Register(Worker("b")), IsOk());
    }
  });
  ASSERT_THAT(registry_->Register(Worker("a")), IsOk());
  EXPECT_THAT(alive_counts, ElementsAre(1, 2));
}

TEST_F(WorkerRegistryTest, ConcurrentEventsArriveInOrderPerWorker) {
  std::vector<std::string> events;  // guarded by mu_
  registry_->SetListener(
      [this, &events](const v1::WorkerInfo& info, v1::WorkerState state) {
        // A slow listener widens the window in which another thread could
        // deliver a later event first.
        if (state == v1::WORKER_STATE_ALIVE) {
          absl::SleepFor(absl::Microseconds(20));
        }
        absl::MutexLock lock(&mu_);
        events.push_back(
            absl::StrCat(info.worker_id(),
                         state == v1::WORKER_STATE_ALIVE ? ":alive" : ":dead"));
      });
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < 200; ++i) {
        const std::string id = absl::StrCat("w", t);
        EXPECT_THAT(
            registry_->Register(Worker(id, v1::WORKER_ROLE_GENRM, 1 + i % 2)),
            IsOk());
        registry_->Remove(id);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  // Every worker's events alternate alive, dead, and end dead.
  std::map<std::string, std::string> last;
  absl::MutexLock lock(&mu_);
  for (const std::string& event : events) {
    const std::string id = event.substr(0, event.find(':'));
    const std::string state = event.substr(event.find(':') + 1);
    EXPECT_NE(last[id], state) << event;
    last[id] = state;
  }
  for (const auto& [id, state] : last) EXPECT_EQ(state, "dead") << id;
  EXPECT_EQ(last.size(), 4u);
}

}  // namespace
}  // namespace fapo::scheduler
