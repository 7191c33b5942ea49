#include "genrm_server/dynamic_batcher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace fapo::genrm {
namespace {

void SetDuration(absl::Duration duration, google::protobuf::Duration* out) {
  if (duration < absl::ZeroDuration()) duration = absl::ZeroDuration();
  const int64_t nanos = absl::ToInt64Nanoseconds(duration);
  out->set_seconds(nanos / 1000000000);
  out->set_nanos(static_cast<int32_t>(nanos % 1000000000));
}

}  // namespace

absl::Status ValidateDynamicBatcherOptions(
    const DynamicBatcherOptions& options) {
  if (options.max_batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_batch_size must be >= 1, got ", options.max_batch_size));
  }
  if (options.max_batch_delay_ms < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_batch_delay_ms must be >= 0, got ", options.max_batch_delay_ms));
  }
  if (options.max_in_flight_batches < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_in_flight_batches must be >= 1, got ",
                     options.max_in_flight_batches));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<DynamicBatcher>> DynamicBatcher::Create(
    const DynamicBatcherOptions& options, std::unique_ptr<GenrmBackend> backend,
    Clock* clock) {
  if (absl::Status status = ValidateDynamicBatcherOptions(options);
      !status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("dynamic batcher: ", status.message()));
  }
  if (backend == nullptr) {
    return absl::InvalidArgumentError("dynamic batcher: no backend");
  }
  return std::unique_ptr<DynamicBatcher>(new DynamicBatcher(
      options, std::move(backend), clock ? clock : ::fapo::RealClock()));
}

DynamicBatcher::DynamicBatcher(const DynamicBatcherOptions& options,
                               std::unique_ptr<GenrmBackend> backend,
                               Clock* clock)
    : options_(options),
      max_batch_delay_(absl::Milliseconds(options.max_batch_delay_ms)),
      clock_(clock),
      backend_(std::move(backend)),
      dispatcher_([this] { DispatchLoop(); }) {}

DynamicBatcher::~DynamicBatcher() { Shutdown(); }

void DynamicBatcher::Score(fapo::v1::ScoreRequest request, Callback callback) {
  const absl::Time arrival_real = absl::Now();
  const absl::Time arrival_clock = clock_->Now();
  {
    absl::MutexLock lock(&mu_);
    if (accepting_) {
      waiting_.push_back(Pending{std::move(request), std::move(callback),
                                 arrival_real, arrival_clock});
      ++stats_.requests;
      return;
    }
  }
  callback(absl::UnavailableError(absl::StrCat(
      "GenRM server ", options_.genrm_server_id, " is shutting down")));
}

void DynamicBatcher::Shutdown() {
  absl::MutexLock shutdown_lock(&shutdown_mu_);
  {
    absl::MutexLock lock(&mu_);
    accepting_ = false;
  }
  // The dispatcher sends what waits, then exits.
  if (dispatcher_.joinable()) dispatcher_.join();
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](int* in_flight) { return *in_flight == 0; }, &in_flight_batches_));
  }
  backend_.reset();
}

size_t DynamicBatcher::waiting() const {
  absl::MutexLock lock(&mu_);
  return waiting_.size();
}

int DynamicBatcher::in_flight_batches() const {
  absl::MutexLock lock(&mu_);
  return in_flight_batches_;
}

DynamicBatcher::Stats DynamicBatcher::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void DynamicBatcher::DispatchLoop() {
  const size_t max_batch_size = static_cast<size_t>(options_.max_batch_size);
  // Only this thread removes from waiting_ and adds to in_flight_batches_,
  // so what the waits below establish stays true until the batch is formed.
  auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return (!waiting_.empty() &&
            in_flight_batches_ < options_.max_in_flight_batches) ||
           (!accepting_ && waiting_.empty());
  };
  auto full_or_stopping = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return waiting_.size() >= max_batch_size || !accepting_;
  };
  mu_.Lock();
  while (true) {
    mu_.Await(absl::Condition(&ready));
    if (waiting_.empty()) break;  // shutting down, nothing left to send
    if (!full_or_stopping()) {
      // Hold the batch open until it fills or its oldest request's delay
      // runs out; a full batch or Shutdown ends the wait early.
      mu_.AwaitWithDeadline(absl::Condition(&full_or_stopping),
                            waiting_.front().arrival_real + max_batch_delay_);
    }
    const size_t size = std::min(waiting_.size(), max_batch_size);
    std::vector<Pending> batch;
    batch.reserve(size);
    for (size_t i = 0; i < size; ++i) {
      batch.push_back(std::move(waiting_.front()));
      waiting_.pop_front();
    }
    ++in_flight_batches_;
    ++stats_.batches;
    if (size == max_batch_size) ++stats_.full_batches;
    stats_.max_in_flight_batches_seen =
        std::max(stats_.max_in_flight_batches_seen, in_flight_batches_);
    mu_.Unlock();
    SendBatch(std::move(batch));
    mu_.Lock();
  }
  mu_.Unlock();
}

void DynamicBatcher::SendBatch(std::vector<Pending> batch) {
  std::vector<fapo::v1::ScoreRequest> requests;
  requests.reserve(batch.size());
  for (Pending& pending : batch) {
    requests.push_back(std::move(pending.request));
  }
  // The batch's callbacks travel with the completion; std::function needs a
  // copyable capture, hence the shared_ptr.
  auto owned = std::make_shared<std::vector<Pending>>(std::move(batch));
  backend_->ScoreBatch(std::move(requests),
                       [this, owned](BatchResults results) {
                         CompleteBatch(std::move(*owned), std::move(results));
                       });
}

void DynamicBatcher::CompleteBatch(std::vector<Pending> batch,
                                   BatchResults results) {
  if (results.size() != batch.size()) {
    // A backend bug; fail the batch rather than misroute verdicts.
    const absl::Status error = absl::InternalError(
        absl::StrCat("GenRM backend ", backend_->name(), " returned ",
                     results.size(), " results for a batch of ", batch.size()));
    results.assign(batch.size(), error);
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    absl::StatusOr<fapo::v1::Verdict>& result = results[i];
    if (result.ok()) {
      result->set_genrm_server_id(options_.genrm_server_id);
      SetDuration(clock_->Now() - batch[i].arrival_clock,
                  result->mutable_latency());
    }
    batch[i].callback(std::move(result));
  }
  absl::MutexLock lock(&mu_);
  --in_flight_batches_;
}

}  // namespace fapo::genrm
