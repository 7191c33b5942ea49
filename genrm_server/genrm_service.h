// GenrmService: the thin gRPC adapter for fapo.v1.GenRM (docs/style.md, practice
// 5) over a DynamicBatcher, plus the metrics a GenRM server exports.
//
// Score (callback API, never blocks a reactor thread):
//   - INVALID_ARGUMENT when trajectory_id or task is empty (the batcher is
//     not called);
//   - otherwise the request goes to the batcher, and the call finishes from
//     the batcher's callback with the verdict, or with the batcher's error
//     converted by rpc::ToGrpcStatus (UNAVAILABLE once the batcher drains,
//     INVALID_ARGUMENT for an unknown task, ...).
//   - Cancellation (the client's deadline passed, the client went away, the
//     server shuts down): the call finishes at once with CANCELLED; the
//     verdict that arrives later is dropped. Exactly one of the two finishes
//     the call, and nothing touches the call after it finished, so a
//     late verdict is safe.
//
// Metrics (registered at Create; registry may be null = no metrics):
//   fapo_genrm_server_requests_total{code}     calls finished, by status code
//                                               ("OK", "INVALID_ARGUMENT", ...)
//   fapo_genrm_server_request_latency_seconds  Score received -> finished
//   fapo_genrm_server_in_flight                calls accepted, not finished
//   fapo_genrm_server_batch_size               requests per backend batch
//   fapo_genrm_server_batch_latency_seconds    backend time per batch
// The two batch metrics come from InstrumentBackend, which wraps the backend
// before the batcher gets it (the batcher's batches are invisible here).
//
// Thread-safe. The batcher (not owned) must outlive the service; shut the
// server down before the service is destroyed.
#ifndef FAPO_GENRM_SERVER_GENRM_SERVICE_H_
#define FAPO_GENRM_SERVER_GENRM_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "fapo/v1/genrm.grpc.pb.h"
#include "genrm_server/dynamic_batcher.h"
#include "genrm_server/genrm_backend.h"
#include "services/metrics/metrics_registry.h"

namespace fapo::genrm {

// Wraps `inner` so that every batch's size and backend latency is observed
// in fapo_genrm_server_batch_size / _batch_latency_seconds. A null registry
// returns `inner` unchanged. Errors: the registry rejects the definitions
// (a different metric already holds the name). The wrapper forwards the
// GenrmBackend contract unchanged; its name() is the inner one's.
absl::StatusOr<std::unique_ptr<GenrmBackend>> InstrumentBackend(
    std::unique_ptr<GenrmBackend> inner, metrics::MetricsRegistry* registry);

class GenrmService final : public fapo::v1::GenRM::CallbackService {
 public:
  // InvalidArgument for a null batcher; the registry's error when a metric
  // cannot be registered.
  static absl::StatusOr<std::unique_ptr<GenrmService>> Create(
      DynamicBatcher* batcher, metrics::MetricsRegistry* registry);

  ~GenrmService() override;
  GenrmService(const GenrmService&) = delete;
  GenrmService& operator=(const GenrmService&) = delete;

  grpc::ServerUnaryReactor* Score(grpc::CallbackServerContext* context,
                                  const fapo::v1::ScoreRequest* request,
                                  fapo::v1::ScoreResponse* response) override;

  // Calls accepted and not yet finished (what a worker lease reports).
  int in_flight() const { return in_flight_.load(); }
  // Calls finished so far, whatever their status.
  int64_t finished() const { return finished_.load(); }

 private:
  struct Metrics;
  class ScoreReactor;

  GenrmService(DynamicBatcher* batcher, std::unique_ptr<Metrics> metrics);

  // Counts a finished call (status code, latency) and drops in_flight.
  void Record(absl::StatusCode code, double latency_seconds);

  DynamicBatcher* const batcher_;
  const std::unique_ptr<Metrics> metrics_;  // null: no registry
  std::atomic<int> in_flight_{0};
  std::atomic<int64_t> finished_{0};
};

}  // namespace fapo::genrm

#endif  // FAPO_GENRM_SERVER_GENRM_SERVICE_H_
