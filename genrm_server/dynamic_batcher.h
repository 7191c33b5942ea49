// DynamicBatcher: takes ScoreRequests one at a time and hands them to a
// GenrmBackend in batches, so that a batching backend (model, openai) sees
// full batches under load and a lone request still goes out quickly.
//
// Flush rule: a batch leaves when max_batch_size requests wait, or when the
// oldest waiting request has waited max_batch_delay_ms, whichever is first,
// provided fewer than max_in_flight_batches batches are at the backend;
// otherwise requests wait (in arrival order) for a batch to complete. At
// most max_batch_size requests go in one batch; batches keep arrival order.
//
// Each callback gets its own request's verdict, or its error; a verdict gets
// genrm_server_id set to the configured id and latency set to the time from
// Score() to the callback (measured on the injected Clock).
//
// Shutdown DRAINS: it refuses new requests (their callbacks get
// Unavailable, so a caller retries on another server), flushes what waits
// without waiting for the delay (still within the in-flight cap), waits for
// every callback, then destroys the backend. The destructor calls Shutdown.
//
// Thread-safe. Callbacks run on the backend's completion thread (for the
// rule backend: the batcher's own dispatch thread), never under the
// batcher's lock; they may call Score() but must not call Shutdown() or
// destroy the batcher.
#ifndef FAPO_GENRM_SERVER_DYNAMIC_BATCHER_H_
#define FAPO_GENRM_SERVER_DYNAMIC_BATCHER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "genrm_server/genrm_backend.h"

namespace fapo::genrm {

struct DynamicBatcherOptions {
  // genrm.max_batch_size: most requests per batch (B); >= 1. No default
  // here (NOTE [one default]: BatcherOptionsFromSpec fills it).
  int max_batch_size = 0;
  // genrm.max_batch_delay_ms: longest the oldest waiting request waits for
  // a batch to fill (T), ms; >= 0 (0: flush whatever waits at once).
  int max_batch_delay_ms = 0;
  // Batches at the backend at once; not in the job spec. Default 4
  // (BatcherOptionsFromSpec lowers it when genrm.max_in_flight_per_server
  // cannot fill that many). >= 1.
  int max_in_flight_batches = 4;
  // Written into every verdict's genrm_server_id. Default "".
  std::string genrm_server_id;
};

// OK, or InvalidArgument naming the bad field.
absl::Status ValidateDynamicBatcherOptions(
    const DynamicBatcherOptions& options);

class DynamicBatcher {
 public:
  using Callback = std::function<void(absl::StatusOr<fapo::v1::Verdict>)>;

  // Counters since Create (for tests, benchmarks and metrics).
  struct Stats {
    int64_t requests = 0;      // accepted by Score()
    int64_t batches = 0;       // sent to the backend
    int64_t full_batches = 0;  // of max_batch_size requests
    int max_in_flight_batches_seen = 0;
  };

  // InvalidArgument for invalid options or a null backend. The batcher owns
  // the backend. `clock` (not owned, must outlive the batcher; null: the
  // real clock) times the latency field; the flush delay runs on real time.
  static absl::StatusOr<std::unique_ptr<DynamicBatcher>> Create(
      const DynamicBatcherOptions& options,
      std::unique_ptr<GenrmBackend> backend, Clock* clock = nullptr);

  ~DynamicBatcher();
  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  // Queues `request`; `callback` runs exactly once with its verdict or
  // error. After Shutdown: callback(Unavailable) at once, on this thread.
  void Score(fapo::v1::ScoreRequest request, Callback callback);

  // Drains and stops (see the file comment). Idempotent; blocks until every
  // accepted request's callback has run.
  void Shutdown();

  // Requests waiting for a batch, and batches at the backend.
  size_t waiting() const;
  int in_flight_batches() const;
  Stats stats() const;

  const DynamicBatcherOptions& options() const { return options_; }

 private:
  struct Pending {
    fapo::v1::ScoreRequest request;
    Callback callback;
    absl::Time arrival_real;   // for the flush delay
    absl::Time arrival_clock;  // for the latency field
  };

  DynamicBatcher(const DynamicBatcherOptions& options,
                 std::unique_ptr<GenrmBackend> backend, Clock* clock);

  void DispatchLoop();
  // Sends one batch to the backend (called without mu_ held).
  void SendBatch(std::vector<Pending> batch);
  void CompleteBatch(std::vector<Pending> batch, BatchResults results);

  const DynamicBatcherOptions options_;
  const absl::Duration max_batch_delay_;
  Clock* const clock_;
  std::unique_ptr<GenrmBackend> backend_;

  absl::Mutex shutdown_mu_;  // serializes Shutdown calls; taken before mu_
  mutable absl::Mutex mu_;
  std::deque<Pending> waiting_ ABSL_GUARDED_BY(mu_);
  int in_flight_batches_ ABSL_GUARDED_BY(mu_) = 0;
  bool accepting_ ABSL_GUARDED_BY(mu_) = true;
  Stats stats_ ABSL_GUARDED_BY(mu_);
  std::thread dispatcher_;  // started last, in the constructor
};

}  // namespace fapo::genrm

#endif  // FAPO_GENRM_SERVER_DYNAMIC_BATCHER_H_
