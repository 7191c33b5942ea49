#include "scheduler/worker_registry.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "services/status/status_macros.h"

namespace fapo::scheduler {
namespace {

constexpr v1::WorkerRole kRoles[] = {
    v1::WORKER_ROLE_ROLLOUT, v1::WORKER_ROLE_GENRM, v1::WORKER_ROLE_TRAINER};

absl::string_view RoleName(v1::WorkerRole role) {
  switch (role) {
    case v1::WORKER_ROLE_ROLLOUT:
      return "rollout";
    case v1::WORKER_ROLE_GENRM:
      return "genrm";
    case v1::WORKER_ROLE_TRAINER:
      return "trainer";
    default:
      return "unspecified";
  }
}

bool ValidRole(int role) {
  return role == v1::WORKER_ROLE_ROLLOUT || role == v1::WORKER_ROLE_GENRM ||
         role == v1::WORKER_ROLE_TRAINER;
}

}  // namespace

WorkerRegistry::WorkerRegistry(WorkerRegistryOptions options)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : RealClock()) {}

WorkerRegistry::~WorkerRegistry() {
  // Gauges may outlive us in a shared registry: take our share back out.
  absl::MutexLock lock(&mu_);
  for (const auto& [id, record] : records_) CountLocked(record, -1);
}

absl::StatusOr<std::unique_ptr<WorkerRegistry>> WorkerRegistry::Create(
    WorkerRegistryOptions options) {
  if (options.heartbeat_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker registry heartbeat_interval must be > 0, got ",
                     absl::FormatDuration(options.heartbeat_interval)));
  }
  if (options.worker_timeout <= options.heartbeat_interval) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker registry worker_timeout (",
                     absl::FormatDuration(options.worker_timeout),
                     ") must be longer than heartbeat_interval (",
                     absl::FormatDuration(options.heartbeat_interval), ")"));
  }
  std::unique_ptr<WorkerRegistry> registry(
      new WorkerRegistry(std::move(options)));
  RETURN_IF_ERROR(registry->InitMetrics());
  return registry;
}

absl::Status WorkerRegistry::InitMetrics() {
  metrics::MetricsRegistry* registry = options_.metrics;
  if (registry == nullptr) return absl::OkStatus();
  ASSIGN_OR_RETURN(metrics::GaugeFamily * workers,
                   registry->AddGauge("fapo_workers",
                                      "Workers known to the scheduler, by "
                                      "role and liveness.",
                                      {"role", "state"}));
  ASSIGN_OR_RETURN(metrics::CounterFamily * deaths,
                   registry->AddCounter("fapo_worker_deaths_total",
                                        "Workers declared dead after missing "
                                        "their heartbeats, by role.",
                                        {"role"}));
  ASSIGN_OR_RETURN(
      metrics::GaugeFamily * age,
      registry->AddGauge("fapo_worker_heartbeat_age_max_seconds",
                         "Age of the oldest last heartbeat among alive "
                         "workers, by role (updated by each sweep).",
                         {"role"}));
  for (v1::WorkerRole role : kRoles) {
    const std::string role_name(RoleName(role));
    workers_[role][v1::WORKER_STATE_ALIVE] =
        &workers->WithLabels({{"role", role_name}, {"state", "alive"}});
    workers_[role][v1::WORKER_STATE_DEAD] =
        &workers->WithLabels({{"role", role_name}, {"state", "dead"}});
    deaths_[role] = &deaths->WithLabels({{"role", role_name}});
    heartbeat_age_[role] = &age->WithLabels({{"role", role_name}});
  }
  return absl::OkStatus();
}

void WorkerRegistry::CountLocked(const Record& record, int delta) {
  metrics::Gauge* gauge = workers_[record.info.role()][record.state];
  if (gauge != nullptr) gauge->Increment(delta);
}

void WorkerRegistry::SetListener(Listener listener) {
  {
    absl::MutexLock lock(&mu_);
    listener_ = std::move(listener);
  }
  Deliver();
}

absl::Status WorkerRegistry::Register(v1::WorkerInfo info) {
  if (info.worker_id().empty()) {
    return absl::InvalidArgumentError("worker.worker_id must not be empty");
  }
  if (info.address().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "worker.address must not be empty (worker '", info.worker_id(), "')"));
  }
  if (!ValidRole(info.role())) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker.role must be ROLLOUT, GENRM or TRAINER (worker '",
                     info.worker_id(), "', got ", info.role(), ")"));
  }
  if (info.capacity() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker.capacity must be > 0 (worker '", info.worker_id(),
                     "', got ", info.capacity(), ")"));
  }
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    auto it = records_.find(info.worker_id());
    if (it == records_.end()) {
      Record& record = records_[info.worker_id()];
      record.info = std::move(info);
      record.last_heartbeat = now;
      CountLocked(record, +1);
      events_.push_back({record.info, v1::WORKER_STATE_ALIVE});
    } else {
      Record& record = it->second;
      const bool changed = record.state != v1::WORKER_STATE_ALIVE ||
                           record.info.role() != info.role() ||
                           record.info.address() != info.address() ||
                           record.info.capacity() != info.capacity();
      if (record.state == v1::WORKER_STATE_ALIVE &&
          record.info.role() != info.role()) {
        // Whoever tracked it in its old role must let go first.
        events_.push_back({record.info, v1::WORKER_STATE_DEAD});
      }
      CountLocked(record, -1);
      record.info = std::move(info);
      record.state = v1::WORKER_STATE_ALIVE;
      record.in_flight = 0;
      record.last_heartbeat = now;
      CountLocked(record, +1);
      if (changed) events_.push_back({record.info, v1::WORKER_STATE_ALIVE});
    }
  }
  Deliver();
  return absl::OkStatus();
}

bool WorkerRegistry::Heartbeat(absl::string_view worker_id, int32_t in_flight,
                               int64_t policy_version) {
  absl::MutexLock lock(&mu_);
  auto it = records_.find(worker_id);
  if (it == records_.end() || it->second.state != v1::WORKER_STATE_ALIVE) {
    return false;
  }
  Record& record = it->second;
  record.last_heartbeat = clock_->Now();
  record.in_flight = in_flight;
  record.info.set_policy_version(policy_version);
  return true;
}

std::vector<v1::WorkerInfo> WorkerRegistry::Sweep() {
  std::vector<v1::WorkerInfo> dead;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    absl::Duration oldest[4] = {};
    for (auto& [id, record] : records_) {
      if (record.state != v1::WORKER_STATE_ALIVE) continue;
      const absl::Duration silence = now - record.last_heartbeat;
      if (silence > options_.worker_timeout) {
        CountLocked(record, -1);
        record.state = v1::WORKER_STATE_DEAD;
        record.in_flight = 0;
        CountLocked(record, +1);
        if (deaths_[record.info.role()] != nullptr) {
          deaths_[record.info.role()]->Increment();
        }
        dead.push_back(record.info);
        events_.push_back({record.info, v1::WORKER_STATE_DEAD});
      } else {
        oldest[record.info.role()] =
            std::max(oldest[record.info.role()], silence);
      }
    }
    for (v1::WorkerRole role : kRoles) {
      if (heartbeat_age_[role] != nullptr) {
        heartbeat_age_[role]->Set(absl::ToDoubleSeconds(oldest[role]));
      }
    }
  }
  Deliver();
  return dead;  // records_ is ordered, so this is sorted by worker_id
}

bool WorkerRegistry::NotePolicyVersion(absl::string_view worker_id,
                                       int64_t policy_version) {
  absl::MutexLock lock(&mu_);
  auto it = records_.find(worker_id);
  if (it == records_.end() || it->second.state != v1::WORKER_STATE_ALIVE) {
    return false;
  }
  v1::WorkerInfo& info = it->second.info;
  if (policy_version > info.policy_version()) {
    info.set_policy_version(policy_version);
  }
  return true;
}

bool WorkerRegistry::Remove(absl::string_view worker_id) {
  {
    absl::MutexLock lock(&mu_);
    auto it = records_.find(worker_id);
    if (it == records_.end()) return false;
    CountLocked(it->second, -1);
    if (it->second.state == v1::WORKER_STATE_ALIVE) {
      events_.push_back({std::move(it->second.info), v1::WORKER_STATE_DEAD});
    }
    records_.erase(it);
  }
  Deliver();
  return true;
}

std::vector<v1::WorkerInfo> WorkerRegistry::Alive(v1::WorkerRole role) const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::WorkerInfo> alive;
  for (const auto& [id, record] : records_) {
    if (record.state == v1::WORKER_STATE_ALIVE && record.info.role() == role) {
      alive.push_back(record.info);
    }
  }
  return alive;
}

int WorkerRegistry::AliveCount(v1::WorkerRole role) const {
  absl::MutexLock lock(&mu_);
  int count = 0;
  for (const auto& [id, record] : records_) {
    if (record.state == v1::WORKER_STATE_ALIVE && record.info.role() == role) {
      ++count;
    }
  }
  return count;
}

std::vector<v1::WorkerStatus> WorkerRegistry::Statuses() const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::WorkerStatus> statuses;
  statuses.reserve(records_.size());
  for (const auto& [id, record] : records_) {
    v1::WorkerStatus& status = statuses.emplace_back();
    *status.mutable_info() = record.info;
    status.set_state(record.state);
    status.set_in_flight(record.in_flight);
    const int64_t micros = absl::ToUnixMicros(record.last_heartbeat);
    *status.mutable_last_heartbeat() =
        google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(micros);
  }
  return statuses;
}

// Only one thread delivers at a time, popping events in the order they were
// queued (under mu_), so the listener sees every worker's changes in order
// even when Register and Sweep race on different threads.
void WorkerRegistry::Deliver() {
  absl::MutexLock lock(&mu_);
  if (delivering_) return;
  delivering_ = true;
  while (!events_.empty()) {
    Event event = std::move(events_.front());
    events_.pop_front();
    Listener listener = listener_;
    if (!listener) continue;
    mu_.Unlock();
    listener(event.info, event.state);
    mu_.Lock();
  }
  delivering_ = false;
}

}  // namespace fapo::scheduler
