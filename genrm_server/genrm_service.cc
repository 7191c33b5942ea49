#include "genrm_server/genrm_service.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "services/rpc/status_conversion.h"
#include "services/status/status_macros.h"

namespace fapo::genrm {
namespace {

constexpr char kBatchSizeName[] = "fapo_genrm_server_batch_size";
constexpr char kBatchLatencyName[] = "fapo_genrm_server_batch_latency_seconds";

// 1 ms .. ~65 s: a rule verdict takes microseconds, a 4B model's minutes.
std::vector<double> LatencyBuckets() {
  return metrics::ExponentialBuckets(0.001, 2, 17);
}

class InstrumentedBackend : public GenrmBackend {
 public:
  InstrumentedBackend(std::unique_ptr<GenrmBackend> inner,
                      metrics::Histogram* batch_size,
                      metrics::Histogram* batch_latency)
      : inner_(std::move(inner)),
        batch_size_(batch_size),
        batch_latency_(batch_latency) {}

  void ScoreBatch(std::vector<fapo::v1::ScoreRequest> requests,
                  BatchDone done) override {
    batch_size_->Observe(static_cast<double>(requests.size()));
    const absl::Time start = absl::Now();
    inner_->ScoreBatch(
        std::move(requests),
        [this, start, done = std::move(done)](BatchResults results) {
          batch_latency_->Observe(absl::ToDoubleSeconds(absl::Now() - start));
          done(std::move(results));
        });
  }
  std::string name() const override { return inner_->name(); }

 private:
  // Destroyed first (members go in reverse order): the inner backend's
  // destructor still runs owed callbacks, which use the histograms (owned
  // by the registry, so they outlive us anyway).
  std::unique_ptr<GenrmBackend> inner_;
  metrics::Histogram* const batch_size_;
  metrics::Histogram* const batch_latency_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<GenrmBackend>> InstrumentBackend(
    std::unique_ptr<GenrmBackend> inner, metrics::MetricsRegistry* registry) {
  if (inner == nullptr) {
    return absl::InvalidArgumentError("InstrumentBackend: null backend");
  }
  if (registry == nullptr) return inner;
  ASSIGN_OR_RETURN(
      metrics::HistogramFamily * sizes,
      registry->AddHistogram(kBatchSizeName,
                             "Requests per batch sent to the GenRM backend.",
                             metrics::ExponentialBuckets(1, 2, 13), {}));
  ASSIGN_OR_RETURN(
      metrics::HistogramFamily * latencies,
      registry->AddHistogram(kBatchLatencyName,
                             "Time the GenRM backend took per batch.",
                             LatencyBuckets(), {}));
  return std::unique_ptr<GenrmBackend>(new InstrumentedBackend(
      std::move(inner), &sizes->WithLabels({}), &latencies->WithLabels({})));
}

struct GenrmService::Metrics {
  metrics::CounterFamily* requests = nullptr;
  metrics::Histogram* latency = nullptr;
  metrics::Gauge* in_flight = nullptr;
};

// One Score call. NOTE [score call ownership]: the call may be finished by
// the batcher's callback (the verdict) or by OnCancel, on different threads;
// `claimed` decides which one. The winner alone touches the response and
// calls Finish; the loser does nothing. gRPC keeps the reactor (and the
// response) alive until OnDone, which follows Finish, so the winner's
// pointers are valid; the batcher's callback holds only the shared Call, so
// a verdict arriving after OnDone touches nothing freed.
class GenrmService::ScoreReactor : public grpc::ServerUnaryReactor {
 public:
  ScoreReactor(GenrmService* service, fapo::v1::ScoreResponse* response)
      : call_(std::make_shared<Call>()) {
    call_->service = service;
    call_->reactor = this;
    call_->response = response;
    call_->start = absl::Now();
  }

  // Validates and hands the request to the batcher. May finish the call
  // before returning (an invalid request, a draining batcher).
  void Start(const fapo::v1::ScoreRequest& request) {
    absl::Status invalid;
    if (request.trajectory_id().empty()) {
      invalid = absl::InvalidArgumentError("Score: trajectory_id is empty");
    } else if (request.task().empty()) {
      invalid =
          absl::InvalidArgumentError("Score: task is empty (trajectory_id '" +
                                     request.trajectory_id() + "')");
    }
    if (!invalid.ok()) {
      FinishIfFirst(call_, invalid);
      return;
    }
    std::shared_ptr<Call> call = call_;
    call->service->batcher_->Score(
        request, [call](absl::StatusOr<fapo::v1::Verdict> verdict) {
          if (!verdict.ok()) {
            FinishIfFirst(call, verdict.status());
            return;
          }
          if (call->claimed.exchange(true)) return;  // cancelled first
          *call->response->mutable_verdict() = *std::move(verdict);
          Complete(*call, absl::OkStatus());
        });
  }

  void OnCancel() override {
    FinishIfFirst(call_, absl::CancelledError("Score: call cancelled"));
  }
  void OnDone() override { delete this; }

 private:
  struct Call {
    GenrmService* service = nullptr;
    ScoreReactor* reactor = nullptr;
    fapo::v1::ScoreResponse* response = nullptr;
    absl::Time start;
    std::atomic<bool> claimed{false};
  };

  static void FinishIfFirst(const std::shared_ptr<Call>& call,
                            const absl::Status& status) {
    if (call->claimed.exchange(true)) return;
    Complete(*call, status);
  }
  // Only the claimant gets here, once.
  static void Complete(Call& call, const absl::Status& status) {
    call.service->Record(status.code(),
                         absl::ToDoubleSeconds(absl::Now() - call.start));
    call.reactor->Finish(rpc::ToGrpcStatus(status));
  }

  std::shared_ptr<Call> call_;
};

absl::StatusOr<std::unique_ptr<GenrmService>> GenrmService::Create(
    DynamicBatcher* batcher, metrics::MetricsRegistry* registry) {
  if (batcher == nullptr) {
    return absl::InvalidArgumentError("GenrmService: null batcher");
  }
  std::unique_ptr<Metrics> metrics;
  if (registry != nullptr) {
    metrics = std::make_unique<Metrics>();
    ASSIGN_OR_RETURN(
        metrics->requests,
        registry->AddCounter("fapo_genrm_server_requests_total",
                             "Score calls finished, by gRPC status code.",
                             {"code"}));
    // Exported at 0 from the start (Prometheus's advice for known label
    // values): a server that has answered nothing yet still shows a rate.
    metrics->requests->WithLabels({{"code", "OK"}});
    ASSIGN_OR_RETURN(
        metrics::HistogramFamily * latency,
        registry->AddHistogram("fapo_genrm_server_request_latency_seconds",
                               "Score calls: time from arrival to the answer.",
                               LatencyBuckets(), {}));
    metrics->latency = &latency->WithLabels({});
    ASSIGN_OR_RETURN(
        metrics::GaugeFamily * in_flight,
        registry->AddGauge("fapo_genrm_server_in_flight",
                           "Score calls accepted and not yet answered.", {}));
    metrics->in_flight = &in_flight->WithLabels({});
  }
  return std::unique_ptr<GenrmService>(
      new GenrmService(batcher, std::move(metrics)));
}

GenrmService::GenrmService(DynamicBatcher* batcher,
                           std::unique_ptr<Metrics> metrics)
    : batcher_(batcher), metrics_(std::move(metrics)) {}

GenrmService::~GenrmService() = default;

grpc::ServerUnaryReactor* GenrmService::Score(
    grpc::CallbackServerContext* context, const fapo::v1::ScoreRequest* request,
    fapo::v1::ScoreResponse* response) {
  const int now_in_flight = in_flight_.fetch_add(1) + 1;
  if (metrics_ != nullptr) metrics_->in_flight->Set(now_in_flight);
  auto* reactor = new ScoreReactor(this, response);
  reactor->Start(*request);
  return reactor;
}

void GenrmService::Record(absl::StatusCode code, double latency_seconds) {
  const int now_in_flight = in_flight_.fetch_sub(1) - 1;
  finished_.fetch_add(1);
  if (metrics_ == nullptr) return;
  metrics_->in_flight->Set(now_in_flight);
  metrics_->latency->Observe(latency_seconds);
  metrics_->requests->WithLabels({{"code", absl::StatusCodeToString(code)}})
      .Increment(1);
}

}  // namespace fapo::genrm
