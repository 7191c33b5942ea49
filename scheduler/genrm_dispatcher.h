// scheduler/genrm_dispatcher.h: sends every correct trajectory to a GenRM
// server at once and delivers exactly one verdict for it: the least-loaded
// server, bounded in-flight per server, a deadline, bounded retries (step 5
// of the life of a trajectory in docs/architecture.md).
//
//   Submit ──► least-loaded server with room ──Score──► verdict ──► sink
//      │            ▲  (none: wait FIFO)             │ error
//      └─► waiting ─┘◄── retry on another server ◄───┘ (bounded)
//
// Dispatch. Each server's cap is min(its capacity, max_in_flight_per_server).
// A request goes to the server with room that is least loaded: lowest
// in_flight / cap, then fewest in flight, then the order servers were
// added. Retries prefer servers not yet tried for that request. With no
// room anywhere, requests wait in FIFO order and go out as calls finish or
// servers join (a retry that must avoid the only server with room is
// overtaken by requests that may use it).
//
// Cost: Submit and each completion are O(number of servers) under one
// mutex, with no allocation in steady state (slots are pooled, the waiting
// line is intrusive, and a request filled from NewRequest reuses an
// earlier one's storage); RemoveServer is O(pending).
//
// Failures (NOTE [genrm-failures]). An attempt that ends with an error is
// retried, on another server whenever more than one exists (it waits for
// one rather than go back to the server that just failed), at most
// max_retries times after the first attempt. Then the sink gets a Verdict
// with status VERDICT_STATUS_TIMEOUT, answer_correct = true and
// first_error_step = -1 (not flawed). INVALID_ARGUMENT, FAILED_PRECONDITION
// and UNIMPLEMENTED are permanent: no retry, the sink gets
// VERDICT_STATUS_UNPARSABLE with the error in `critique`. Both are counted.
// A server that is removed (dead, gone, or re-registered at a new address)
// has its calls cancelled and its requests put at the front of the waiting
// line: that is not the request's fault and costs it no retry. A result
// that arrives for an attempt that no longer counts (cancelled, requeued,
// resolved) is dropped and counted.
//
// Time: each attempt's deadline is clock.Now() + request_timeout; the
// client enforces it (the gRPC client in real time, so a FakeClock only
// moves the stamps, and tests finish calls with DEADLINE_EXCEEDED by hand).
//
// Thread-safety: every method is thread-safe. The client's Score, Cancel
// and the sink are always called with no dispatcher lock held, so a sink
// may call Submit or Cancel. The sink may run on any thread: the one that
// called Submit, AddServer or RemoveServer, or the client's callback thread.
// Shutdown must not be called from the sink or from a client callback.
#ifndef FAPO_SCHEDULER_GENRM_DISPATCHER_H_
#define FAPO_SCHEDULER_GENRM_DISPATCHER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fapo/v1/common.pb.h"
#include "fapo/v1/genrm.pb.h"
#include "scheduler/clients/genrm_client.h"
#include "services/clock/clock.h"
#include "services/metrics/metrics_registry.h"

namespace fapo::scheduler {

struct GenrmDispatcherOptions {
  // From the job spec, with no default here (NOTE [one default]:
  // SchedulerOptionsFromSpec fills them).
  //
  // genrm.max_in_flight_per_server: calls in flight per server at most
  // (also bounded by the server's own capacity); > 0.
  int max_in_flight_per_server = 0;
  // genrm.request_timeout_ms: deadline of each attempt, from when it is
  // sent; > 0.
  absl::Duration request_timeout;
  // genrm.max_retries: retries after the first attempt; >= 0.
  int max_retries = 0;
  // Not owned; null = RealClock().
  Clock* clock = nullptr;
  // Not owned; null = no metrics. Registers fapo_genrm_in_flight{server},
  // fapo_genrm_waiting, fapo_genrm_dispatch_latency_seconds,
  // fapo_genrm_verdict_latency_seconds, fapo_genrm_attempts_total{outcome}
  // (ok, error, permanent_error, requeued, cancelled),
  // fapo_genrm_retries_total, fapo_genrm_gave_up_total{reason}
  // (retries_exhausted, permanent_error) and fapo_genrm_late_results_total.
  metrics::MetricsRegistry* metrics = nullptr;
};

class GenrmDispatcher {
 public:
  // Called exactly once per submitted request that is not cancelled (and
  // not dropped by Shutdown), with no dispatcher lock held.
  // The verdict is passed by rvalue reference so it is moved once, by the
  // sink, rather than at every hand-over (a lambda taking it by value works
  // too).
  using VerdictSink = std::function<void(const std::string& trajectory_id,
                                         v1::Verdict&& verdict)>;

  // InvalidArgument for bad options, a null client or an empty sink. The
  // client is not owned and must outlive the dispatcher.
  static absl::StatusOr<std::unique_ptr<GenrmDispatcher>> Create(
      GenrmDispatcherOptions options, GenrmClient* client, VerdictSink sink);

  GenrmDispatcher(const GenrmDispatcher&) = delete;
  GenrmDispatcher& operator=(const GenrmDispatcher&) = delete;
  ~GenrmDispatcher();  // Shutdown()

  // Adds a server, or updates a known one (same worker_id). A new address
  // means a new process: the old one's calls are requeued as by
  // RemoveServer. A capacity change takes effect for new dispatches.
  // Capacity <= 0 counts as 1. An empty worker_id is ignored (logged).
  void AddServer(GenrmServer server);

  // Forgets a server (dead or deregistered): its calls are cancelled and
  // their requests go to the front of the waiting line, in submission
  // order, without counting a failed attempt. Unknown ids are ignored.
  void RemoveServer(absl::string_view worker_id);

  // Queues `request` for scoring, keyed by request.trajectory_id().
  // Errors: InvalidArgument (empty trajectory_id), AlreadyExists (that id
  // is pending), FailedPrecondition (after Shutdown).
  absl::Status Submit(v1::ScoreRequest request);

  // An empty request to fill and pass to Submit below: a recycled message
  // whose strings keep their capacity from earlier requests, so a steady
  // stream of submissions allocates nothing for its requests (the
  // scheduler's hot path; NOTE [recycled requests] in the .cc). Never null.
  std::unique_ptr<v1::ScoreRequest> NewRequest();
  // As Submit(request); the message goes back to the pool.
  absl::Status Submit(std::unique_ptr<v1::ScoreRequest> request);

  // Drops a pending request (its group was dropped): cancels its call or
  // takes it out of the waiting line. Its sink is never called. Unknown ids
  // (never submitted, resolved, cancelled) are ignored. Returns whether it
  // was pending.
  bool Cancel(absl::string_view trajectory_id);

  // Cancels every call and drops every request without a verdict, waits
  // for the client's outstanding callbacks and any sink call in progress.
  // After it returns the sink is never called again, and Submit fails.
  // Idempotent.
  void Shutdown();

  // Introspection (a consistent snapshot each).
  int64_t pending() const;  // submitted, no verdict yet
  int64_t waiting() const;  // pending, not sent to a server
  int64_t in_flight() const;
  int in_flight(absl::string_view worker_id) const;  // 0 when unknown
  std::vector<GenrmServer> servers() const;          // in the order added
  // When the request waiting longest entered the waiting line
  // (absl::InfiniteFuture() when none waits): the scheduler fails the job
  // when there has been no GenRM capacity for too long. O(waiting).
  absl::Time oldest_waiting_since() const;

 private:
  struct ServerState;
  struct Slot;
  struct Actions;
  enum class Detach { kNone, kCancel, kRequeue, kShutdown };

  GenrmDispatcher(GenrmDispatcherOptions options, GenrmClient* client,
                  VerdictSink sink);
  absl::Status InitMetrics();
  // Takes a new request into a slot by swapping: `request` is left with
  // the slot's previous message (NOTE [recycled requests]).
  absl::Status SubmitLocked(v1::ScoreRequest& request, Actions& actions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  uint32_t AllocSlotLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseSlotLocked(uint32_t index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PushWaitingLocked(uint32_t index, bool front, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UnlinkWaitingLocked(uint32_t index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const std::shared_ptr<ServerState>* ChooseServerLocked(const Slot& slot)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PumpLocked(Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // With the time already read by the caller.
  void PumpLocked(Actions& actions, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndAttemptLocked(Slot& slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DetachLocked(uint32_t index, Detach how, Actions& actions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Results and verdicts go by rvalue reference: a Verdict is a message
  // with strings, and each by-value hop is a construct-and-swap.
  void HandleResultLocked(uint32_t index, absl::StatusOr<v1::Verdict>&& result,
                          Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ResolveLocked(uint32_t index, v1::Verdict&& verdict, Actions& actions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveServerLocked(ServerState* server, Actions& actions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecomputeFreeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Runs what the locked helpers decided, with mu_ released: Score calls
  // (and what their inline completions lead to), cancels, sink calls.
  void Run(Actions& actions) ABSL_LOCKS_EXCLUDED(mu_);
  void OnDone(uint64_t token, absl::StatusOr<v1::Verdict>&& result)
      ABSL_LOCKS_EXCLUDED(mu_);
  // `inline_result`: what `done` delivered on this thread while Score ran
  // (NOTE [inline completion]), or empty.
  void AfterScore(uint64_t token, std::unique_ptr<GenrmCall> call,
                  std::optional<absl::StatusOr<v1::Verdict>>& inline_result,
                  Actions& actions) ABSL_LOCKS_EXCLUDED(mu_);

  const GenrmDispatcherOptions options_;
  Clock* const clock_;
  GenrmClient* const client_;
  const VerdictSink sink_;

  // Metrics; null when options.metrics is null.
  metrics::GaugeFamily* in_flight_family_ = nullptr;
  metrics::Gauge* waiting_gauge_ = nullptr;
  metrics::Histogram* dispatch_latency_ = nullptr;
  metrics::Histogram* verdict_latency_ = nullptr;
  metrics::Counter* attempts_ok_ = nullptr;
  metrics::Counter* attempts_error_ = nullptr;
  metrics::Counter* attempts_permanent_ = nullptr;
  metrics::Counter* attempts_requeued_ = nullptr;
  metrics::Counter* attempts_cancelled_ = nullptr;
  metrics::Counter* retries_ = nullptr;
  metrics::Counter* gave_up_retries_ = nullptr;
  metrics::Counter* gave_up_permanent_ = nullptr;
  metrics::Counter* late_results_ = nullptr;

  mutable absl::Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  // Live servers in the order added.
  std::vector<std::shared_ptr<ServerState>> servers_ ABSL_GUARDED_BY(mu_);
  uint32_t next_server_serial_ ABSL_GUARDED_BY(mu_) = 0;
  // Sum over servers of free places (cap - in_flight, when positive).
  int64_t free_places_ ABSL_GUARDED_BY(mu_) = 0;
  // Request slots; std::deque keeps addresses stable as it grows. Freed
  // slots are reused (free_slots_), never given back.
  std::deque<Slot> slots_ ABSL_GUARDED_BY(mu_);
  std::vector<uint32_t> free_slots_ ABSL_GUARDED_BY(mu_);
  // Cleared-to-be requests for NewRequest, holding the storage of earlier
  // ones (NOTE [recycled requests]); at most kMaxSpareRequests.
  std::vector<std::unique_ptr<v1::ScoreRequest>> spare_requests_
      ABSL_GUARDED_BY(mu_);
  // Pending requests by trajectory_id; keys view the slot's request.
  absl::flat_hash_map<absl::string_view, uint32_t> by_id_ ABSL_GUARDED_BY(mu_);
  // The waiting line: an intrusive list through the slots.
  uint32_t waiting_head_ ABSL_GUARDED_BY(mu_);
  uint32_t waiting_tail_ ABSL_GUARDED_BY(mu_);
  int64_t waiting_count_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t in_flight_count_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  // Score calls made whose `done` has not run, and threads running Actions
  // (Score calls, cancels, sink calls): Shutdown waits for both to be 0.
  // runners_ is raised under mu_ and lowered without it (Run).
  int64_t outstanding_done_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<int64_t> runners_{0};
};

}  // namespace fapo::scheduler

#endif  // FAPO_SCHEDULER_GENRM_DISPATCHER_H_
