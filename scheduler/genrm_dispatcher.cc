#include "scheduler/genrm_dispatcher.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/logging/log.h"
#include "services/status/status_macros.h"

namespace fapo::scheduler {
namespace {

constexpr uint32_t kNil = std::numeric_limits<uint32_t>::max();
constexpr uint32_t kNoServer = std::numeric_limits<uint32_t>::max();
// Bounds the pool of recycled requests (NOTE [recycled requests]); beyond
// it, messages are freed.
constexpr size_t kMaxSpareRequests = 4096;

uint64_t MakeToken(uint32_t index, uint32_t generation) {
  return (static_cast<uint64_t>(index) << 32) | generation;
}
uint32_t TokenIndex(uint64_t token) {
  return static_cast<uint32_t>(token >> 32);
}
uint32_t TokenGeneration(uint64_t token) {
  return static_cast<uint32_t>(token & 0xffffffffu);
}

// NOTE [genrm-failures]: these codes say the request itself (or the
// server's configuration) is wrong; another server would answer the same,
// so retrying only burns GenRM time.
bool IsPermanent(absl::StatusCode code) {
  return code == absl::StatusCode::kInvalidArgument ||
         code == absl::StatusCode::kFailedPrecondition ||
         code == absl::StatusCode::kUnimplemented;
}

void Inc(metrics::Counter* counter) {
  if (counter != nullptr) counter->Increment();
}

// NOTE [inline completion]: a client may run `done` before Score returns,
// on the thread that called Score (the test fake and the benchmarks' no-op
// client always do).
// Run marks the send in progress here, and OnDone, seeing its own token on
// its own thread, parks the result in Run's frame without taking mu_:
// AfterScore, which takes mu_ anyway, then handles it, unless a cancel or
// requeue came meanwhile (they outrank the result, as on the locked path).
// That saves a lock round trip and a Verdict move per such call. Results
// from any other thread, or for another token, take the locked path
// (Slot::early_result).
struct InlineSend {
  const void* dispatcher = nullptr;
  uint64_t token = 0;
  std::optional<absl::StatusOr<v1::Verdict>>* result = nullptr;
};
thread_local InlineSend* t_inline_send = nullptr;

// NOTE [recycled requests]: the message the last Submit on this thread
// freed, handed to the next NewRequest on this thread without a lock (the
// scheduler fills and submits on one thread). Any dispatcher's will do: a
// spare is only storage.
thread_local std::unique_ptr<v1::ScoreRequest> t_spare_request;

}  // namespace

struct GenrmDispatcher::ServerState {
  // Shared with Score calls in progress, which read it outside the lock.
  std::shared_ptr<const GenrmServer> info;
  uint32_t serial = 0;  // unique per (worker_id, address) incarnation
  int cap = 1;
  int in_flight = 0;
  bool removed = false;
  metrics::Gauge* gauge = nullptr;
};

// One pending request and its current attempt.
//
// An attempt is "sending" from when it is chosen (under the lock) until the
// client's Score returns (outside it). While sending, nothing else may
// touch the attempt: a result that arrives meanwhile (the client completed
// inline) is parked in early_result, and a cancel or requeue in
// pending_detach, and AfterScore acts on them. This keeps `request` alive
// and unchanged for as long as Score may read it.
struct GenrmDispatcher::Slot {
  v1::ScoreRequest request;
  bool live = false;    // allocated (pending, or detaching after Cancel)
  bool in_map = false;  // by_id_ holds it
  uint64_t sequence = 0;
  absl::Time submitted_at;
  absl::Time waiting_since;
  bool sent_once = false;
  int failures = 0;
  absl::Status last_error;
  // Bumped whenever an attempt ends or the slot is released, so results
  // of earlier attempts can be told apart (tokens carry it).
  uint32_t generation = 0;
  bool attempt_active = false;
  bool sending = false;
  Detach pending_detach = Detach::kNone;
  std::optional<absl::StatusOr<v1::Verdict>> early_result;
  std::shared_ptr<ServerState> server;
  std::unique_ptr<GenrmCall> call;
  uint32_t avoid_serial = kNoServer;
  absl::InlinedVector<uint32_t, 4> tried;
  // Waiting line links.
  bool waiting = false;
  uint32_t prev = kNil;
  uint32_t next = kNil;
};

struct GenrmDispatcher::Actions {
  struct Send {
    uint64_t token;
    std::shared_ptr<const GenrmServer> server;
    const v1::ScoreRequest* request;
    absl::Time deadline;
  };
  struct Delivery {
    std::string trajectory_id;
    v1::Verdict verdict;
  };
  absl::InlinedVector<Send, 2> sends;
  absl::InlinedVector<std::unique_ptr<GenrmCall>, 2> cancels;
  absl::InlinedVector<std::unique_ptr<GenrmCall>, 2> finished_calls;
  absl::InlinedVector<Delivery, 1> deliveries;

  bool empty() const {
    return sends.empty() && cancels.empty() && finished_calls.empty() &&
           deliveries.empty();
  }
};

GenrmDispatcher::GenrmDispatcher(GenrmDispatcherOptions options,
                                 GenrmClient* client, VerdictSink sink)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : RealClock()),
      client_(client),
      sink_(std::move(sink)),
      waiting_head_(kNil),
      waiting_tail_(kNil) {}

GenrmDispatcher::~GenrmDispatcher() { Shutdown(); }

absl::StatusOr<std::unique_ptr<GenrmDispatcher>> GenrmDispatcher::Create(
    GenrmDispatcherOptions options, GenrmClient* client, VerdictSink sink) {
  if (options.max_in_flight_per_server <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("GenRM dispatcher max_in_flight_per_server must be > 0, "
                     "got ",
                     options.max_in_flight_per_server));
  }
  if (options.request_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("GenRM dispatcher request_timeout must be > 0, got ",
                     absl::FormatDuration(options.request_timeout)));
  }
  if (options.max_retries < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("GenRM dispatcher max_retries must be >= 0, got ",
                     options.max_retries));
  }
  if (client == nullptr) {
    return absl::InvalidArgumentError("GenRM dispatcher needs a client");
  }
  if (!sink) {
    return absl::InvalidArgumentError("GenRM dispatcher needs a verdict sink");
  }
  std::unique_ptr<GenrmDispatcher> dispatcher(
      new GenrmDispatcher(std::move(options), client, std::move(sink)));
  RETURN_IF_ERROR(dispatcher->InitMetrics());
  return dispatcher;
}

absl::Status GenrmDispatcher::InitMetrics() {
  metrics::MetricsRegistry* registry = options_.metrics;
  if (registry == nullptr) return absl::OkStatus();
  ASSIGN_OR_RETURN(in_flight_family_,
                   registry->AddGauge("fapo_genrm_in_flight",
                                      "GenRM Score calls in flight, by server.",
                                      {"server"}));
  ASSIGN_OR_RETURN(metrics::GaugeFamily * waiting,
                   registry->AddGauge("fapo_genrm_waiting",
                                      "Trajectories waiting for room on a "
                                      "GenRM server.",
                                      {}));
  waiting_gauge_ = &waiting->WithLabels({});
  const std::vector<double> buckets =
      metrics::ExponentialBuckets(0.001, 2.0, 18);  // 1 ms .. ~131 s
  ASSIGN_OR_RETURN(
      metrics::HistogramFamily * dispatch_latency,
      registry->AddHistogram("fapo_genrm_dispatch_latency_seconds",
                             "From submission to the first Score call.",
                             buckets, {}));
  dispatch_latency_ = &dispatch_latency->WithLabels({});
  ASSIGN_OR_RETURN(
      metrics::HistogramFamily * verdict_latency,
      registry->AddHistogram("fapo_genrm_verdict_latency_seconds",
                             "From submission to the verdict, retries "
                             "included.",
                             buckets, {}));
  verdict_latency_ = &verdict_latency->WithLabels({});
  ASSIGN_OR_RETURN(
      metrics::CounterFamily * attempts,
      registry->AddCounter("fapo_genrm_attempts_total",
                           "GenRM Score attempts, by how they ended.",
                           {"outcome"}));
  attempts_ok_ = &attempts->WithLabels({{"outcome", "ok"}});
  attempts_error_ = &attempts->WithLabels({{"outcome", "error"}});
  attempts_permanent_ = &attempts->WithLabels({{"outcome", "permanent_error"}});
  attempts_requeued_ = &attempts->WithLabels({{"outcome", "requeued"}});
  attempts_cancelled_ = &attempts->WithLabels({{"outcome", "cancelled"}});
  ASSIGN_OR_RETURN(metrics::CounterFamily * retries,
                   registry->AddCounter("fapo_genrm_retries_total",
                                        "GenRM attempts retried after an "
                                        "error.",
                                        {}));
  retries_ = &retries->WithLabels({});
  ASSIGN_OR_RETURN(
      metrics::CounterFamily * gave_up,
      registry->AddCounter("fapo_genrm_gave_up_total",
                           "Trajectories that got no GenRM verdict (scored "
                           "as not flawed), by reason.",
                           {"reason"}));
  gave_up_retries_ = &gave_up->WithLabels({{"reason", "retries_exhausted"}});
  gave_up_permanent_ = &gave_up->WithLabels({{"reason", "permanent_error"}});
  ASSIGN_OR_RETURN(metrics::CounterFamily * late,
                   registry->AddCounter("fapo_genrm_late_results_total",
                                        "GenRM results ignored because their "
                                        "attempt no longer counted.",
                                        {}));
  late_results_ = &late->WithLabels({});
  return absl::OkStatus();
}

// --- slots and the waiting line ---------------------------------------------

uint32_t GenrmDispatcher::AllocSlotLocked() {
  uint32_t index;
  if (!free_slots_.empty()) {
    index = free_slots_.back();
    free_slots_.pop_back();
  } else {
    index = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  slots_[index].live = true;
  return index;
}

void GenrmDispatcher::ReleaseSlotLocked(uint32_t index) {
  Slot& slot = slots_[index];
  if (slot.in_map) {
    by_id_.erase(slot.request.trajectory_id());
    slot.in_map = false;
  }
  slot.live = false;
  slot.sent_once = false;
  slot.failures = 0;
  slot.last_error = absl::OkStatus();
  ++slot.generation;
  slot.pending_detach = Detach::kNone;
  slot.early_result.reset();
  slot.server.reset();
  slot.avoid_serial = kNoServer;
  slot.tried.clear();
  free_slots_.push_back(index);
}

void GenrmDispatcher::PushWaitingLocked(uint32_t index, bool front,
                                        absl::Time now) {
  Slot& slot = slots_[index];
  slot.waiting = true;
  slot.waiting_since = now;
  if (front) {
    slot.prev = kNil;
    slot.next = waiting_head_;
    (waiting_head_ != kNil ? slots_[waiting_head_].prev : waiting_tail_) =
        index;
    waiting_head_ = index;
  } else {
    slot.next = kNil;
    slot.prev = waiting_tail_;
    (waiting_tail_ != kNil ? slots_[waiting_tail_].next : waiting_head_) =
        index;
    waiting_tail_ = index;
  }
  ++waiting_count_;
  if (waiting_gauge_ != nullptr) waiting_gauge_->Increment();
}

void GenrmDispatcher::UnlinkWaitingLocked(uint32_t index) {
  Slot& slot = slots_[index];
  (slot.prev != kNil ? slots_[slot.prev].next : waiting_head_) = slot.next;
  (slot.next != kNil ? slots_[slot.next].prev : waiting_tail_) = slot.prev;
  slot.prev = slot.next = kNil;
  slot.waiting = false;
  --waiting_count_;
  if (waiting_gauge_ != nullptr) waiting_gauge_->Decrement();
}

// --- dispatch ---------------------------------------------------------------

const std::shared_ptr<GenrmDispatcher::ServerState>*
GenrmDispatcher::ChooseServerLocked(const Slot& slot) {
  // A linear scan: fleets are tens of servers, and this stays cheaper than
  // keeping a heap ordered under every in-flight change.
  const bool avoid = servers_.size() > 1 && slot.avoid_serial != kNoServer;
  const std::shared_ptr<ServerState>* chosen = nullptr;
  ServerState* best = nullptr;
  bool best_tried = false;
  for (const std::shared_ptr<ServerState>& candidate : servers_) {
    ServerState* server = candidate.get();
    if (server->in_flight >= server->cap) continue;
    if (avoid && server->serial == slot.avoid_serial) continue;
    const bool tried = std::find(slot.tried.begin(), slot.tried.end(),
                                 server->serial) != slot.tried.end();
    if (best != nullptr) {
      if (tried != best_tried) {
        if (tried) continue;
      } else {
        // Load as a fraction of the cap, compared without division.
        const int64_t lhs = int64_t{server->in_flight} * best->cap;
        const int64_t rhs = int64_t{best->in_flight} * server->cap;
        if (lhs > rhs) continue;
        if (lhs == rhs && server->in_flight >= best->in_flight) continue;
      }
    }
    chosen = &candidate;
    best = server;
    best_tried = tried;
  }
  return chosen;
}

void GenrmDispatcher::PumpLocked(Actions& actions) {
  if (shutdown_ || waiting_count_ == 0 || free_places_ <= 0) return;
  PumpLocked(actions, clock_->Now());
}

void GenrmDispatcher::PumpLocked(Actions& actions, absl::Time now) {
  if (shutdown_ || waiting_count_ == 0 || free_places_ <= 0) return;
  const absl::Time deadline = now + options_.request_timeout;
  uint32_t index = waiting_head_;
  while (index != kNil && free_places_ > 0) {
    Slot& slot = slots_[index];
    const uint32_t next = slot.next;
    const std::shared_ptr<ServerState>* chosen = ChooseServerLocked(slot);
    if (chosen != nullptr) {
      ServerState* server = chosen->get();
      UnlinkWaitingLocked(index);
      ++server->in_flight;
      --free_places_;
      if (server->gauge != nullptr) server->gauge->Increment();
      ++in_flight_count_;
      slot.server = *chosen;
      if (std::find(slot.tried.begin(), slot.tried.end(), server->serial) ==
          slot.tried.end()) {
        slot.tried.push_back(server->serial);
      }
      slot.attempt_active = true;
      slot.sending = true;
      if (!slot.sent_once) {
        slot.sent_once = true;
        if (dispatch_latency_ != nullptr) {
          dispatch_latency_->Observe(
              absl::ToDoubleSeconds(now - slot.submitted_at));
        }
      }
      ++outstanding_done_;
      actions.sends.push_back(Actions::Send{MakeToken(index, slot.generation),
                                            server->info, &slot.request,
                                            deadline});
    }
    index = next;
  }
}

void GenrmDispatcher::EndAttemptLocked(Slot& slot) {
  ServerState* server = slot.server.get();
  --server->in_flight;
  if (!server->removed && server->in_flight < server->cap) ++free_places_;
  if (server->gauge != nullptr && !server->removed) server->gauge->Decrement();
  --in_flight_count_;
  slot.attempt_active = false;
  ++slot.generation;
}

void GenrmDispatcher::DetachLocked(uint32_t index, Detach how,
                                   Actions& actions) {
  Slot& slot = slots_[index];
  if (slot.waiting) {
    UnlinkWaitingLocked(index);
    if (how != Detach::kRequeue) ReleaseSlotLocked(index);
    return;
  }
  if (!slot.attempt_active) return;
  if (slot.sending) {
    // A cancel or shutdown outranks a requeue.
    if (slot.pending_detach == Detach::kNone || how != Detach::kRequeue) {
      slot.pending_detach = how;
    }
    return;
  }
  if (slot.call != nullptr) actions.cancels.push_back(std::move(slot.call));
  EndAttemptLocked(slot);
  slot.server.reset();
  if (how == Detach::kRequeue) {
    Inc(attempts_requeued_);
    PushWaitingLocked(index, /*front=*/true, clock_->Now());
  } else {
    Inc(attempts_cancelled_);
    ReleaseSlotLocked(index);
  }
}

void GenrmDispatcher::HandleResultLocked(uint32_t index,
                                         absl::StatusOr<v1::Verdict>&& result,
                                         Actions& actions) {
  Slot& slot = slots_[index];
  if (slot.call != nullptr) {
    actions.finished_calls.push_back(std::move(slot.call));
  }
  EndAttemptLocked(slot);
  std::shared_ptr<ServerState> server = std::move(slot.server);
  const std::string& worker_id = server->info->worker_id;
  if (result.ok()) {
    Inc(attempts_ok_);
    v1::Verdict& verdict = *result;
    if (verdict.genrm_server_id().empty()) {
      verdict.set_genrm_server_id(worker_id);
    }
    ResolveLocked(index, std::move(verdict), actions);
  } else if (IsPermanent(result.status().code())) {
    Inc(attempts_permanent_);
    Inc(gave_up_permanent_);
    v1::Verdict verdict;
    verdict.set_status(v1::VERDICT_STATUS_UNPARSABLE);
    verdict.set_answer_correct(true);
    verdict.set_first_error_step(-1);
    verdict.set_genrm_server_id(worker_id);
    verdict.set_critique(absl::StrCat("GenRM server ", worker_id,
                                      " failed: ", result.status().ToString()));
    ResolveLocked(index, std::move(verdict), actions);
  } else {
    Inc(attempts_error_);
    ++slot.failures;
    slot.last_error = result.status();
    if (slot.failures > options_.max_retries) {
      Inc(gave_up_retries_);
      v1::Verdict verdict;
      verdict.set_status(v1::VERDICT_STATUS_TIMEOUT);
      verdict.set_answer_correct(true);
      verdict.set_first_error_step(-1);
      verdict.set_genrm_server_id(worker_id);
      verdict.set_critique(
          absl::StrCat("no GenRM verdict after ", slot.failures,
                       " attempts; last error from ", worker_id, ": ",
                       slot.last_error.ToString()));
      ResolveLocked(index, std::move(verdict), actions);
    } else {
      Inc(retries_);
      slot.avoid_serial = server->serial;
      PushWaitingLocked(index, /*front=*/true, clock_->Now());
    }
  }
  PumpLocked(actions);
}

void GenrmDispatcher::ResolveLocked(uint32_t index, v1::Verdict&& verdict,
                                    Actions& actions) {
  Slot& slot = slots_[index];
  if (verdict_latency_ != nullptr) {
    verdict_latency_->Observe(
        absl::ToDoubleSeconds(clock_->Now() - slot.submitted_at));
  }
  if (slot.in_map) {
    by_id_.erase(slot.request.trajectory_id());
    slot.in_map = false;
  }
  Actions::Delivery& delivery = actions.deliveries.emplace_back();
  delivery.trajectory_id = std::move(*slot.request.mutable_trajectory_id());
  if (verdict.trajectory_id() != delivery.trajectory_id) {
    verdict.set_trajectory_id(delivery.trajectory_id);
  }
  delivery.verdict = std::move(verdict);
  ReleaseSlotLocked(index);
}

void GenrmDispatcher::RecomputeFreeLocked() {
  free_places_ = 0;
  for (const std::shared_ptr<ServerState>& server : servers_) {
    free_places_ += std::max(0, server->cap - server->in_flight);
  }
}

void GenrmDispatcher::RemoveServerLocked(ServerState* server,
                                         Actions& actions) {
  server->removed = true;
  if (server->gauge != nullptr) server->gauge->Set(0);
  servers_.erase(std::find_if(servers_.begin(), servers_.end(),
                              [server](const std::shared_ptr<ServerState>& s) {
                                return s.get() == server;
                              }));
  RecomputeFreeLocked();
  // Requeue at the front in submission order: push the newest first.
  std::vector<uint32_t> affected;
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    const Slot& slot = slots_[i];
    if (slot.live && slot.attempt_active && slot.server.get() == server) {
      affected.push_back(i);
    }
  }
  std::sort(affected.begin(), affected.end(), [this](uint32_t a, uint32_t b) {
    return slots_[a].sequence > slots_[b].sequence;
  });
  for (uint32_t index : affected) {
    DetachLocked(index, Detach::kRequeue, actions);
  }
}

// --- running actions outside the lock ---------------------------------------

void GenrmDispatcher::Run(Actions& actions) {
  // Sends first: their inline completions append more work.
  for (size_t i = 0; i < actions.sends.size(); ++i) {
    Actions::Send send = std::move(actions.sends[i]);
    const uint64_t token = send.token;
    std::optional<absl::StatusOr<v1::Verdict>> inline_result;
    InlineSend marker{this, token, &inline_result};
    InlineSend* const outer = t_inline_send;  // a sink may Submit: nesting
    t_inline_send = &marker;
    std::unique_ptr<GenrmCall> call =
        client_->Score(*send.server, *send.request, send.deadline,
                       [this, token](absl::StatusOr<v1::Verdict>&& result) {
                         OnDone(token, std::move(result));
                       });
    t_inline_send = outer;
    AfterScore(token, std::move(call), inline_result, actions);
  }
  for (std::unique_ptr<GenrmCall>& call : actions.cancels) call->Cancel();
  for (Actions::Delivery& delivery : actions.deliveries) {
    sink_(delivery.trajectory_id, std::move(delivery.verdict));
  }
  actions.sends.clear();
  actions.cancels.clear();
  actions.finished_calls.clear();
  actions.deliveries.clear();
  // Last touch of `this`: Shutdown may return once runners_ is 0. An
  // atomic rather than one more lock per submission (Shutdown polls).
  runners_.fetch_sub(1, std::memory_order_release);
}

void GenrmDispatcher::AfterScore(
    uint64_t token, std::unique_ptr<GenrmCall> call,
    std::optional<absl::StatusOr<v1::Verdict>>& inline_result,
    Actions& actions) {
  absl::MutexLock lock(&mu_);
  const uint32_t index = TokenIndex(token);
  Slot& slot = slots_[index];
  // Nothing ends an attempt while it is sending (see Slot), so the token is
  // still current.
  slot.sending = false;
  slot.call = std::move(call);
  if (inline_result.has_value()) {
    // What OnDone would have done under the lock (NOTE [inline
    // completion]); the attempt was sending, so the result counts.
    --outstanding_done_;
    if (slot.pending_detach == Detach::kNone) {
      HandleResultLocked(index, *std::move(inline_result), actions);
      return;
    }
  }
  if (slot.pending_detach != Detach::kNone) {
    const Detach how = slot.pending_detach;
    slot.pending_detach = Detach::kNone;
    slot.early_result.reset();
    DetachLocked(index, how, actions);
    if (how == Detach::kRequeue) PumpLocked(actions);
  } else if (slot.early_result.has_value()) {
    // Handled in place, not moved out first (a Verdict move is a
    // construct-and-swap). Safe because HandleResultLocked reads `result`
    // only before ResolveLocked, whose ReleaseSlotLocked destroys it.
    HandleResultLocked(index, *std::move(slot.early_result), actions);
    slot.early_result.reset();
  }
}

void GenrmDispatcher::OnDone(uint64_t token,
                             absl::StatusOr<v1::Verdict>&& result) {
  InlineSend* const inline_send = t_inline_send;
  if (inline_send != nullptr && inline_send->dispatcher == this &&
      inline_send->token == token && !inline_send->result->has_value()) {
    inline_send->result->emplace(std::move(result));
    return;
  }
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    --outstanding_done_;
    const uint32_t index = TokenIndex(token);
    Slot& slot = slots_[index];
    if (slot.generation != TokenGeneration(token) || !slot.attempt_active) {
      // Our own Cancel produces CANCELLED; anything else arrived too late.
      if (result.ok() ||
          result.status().code() != absl::StatusCode::kCancelled) {
        Inc(late_results_);
      }
      return;
    }
    if (slot.sending) {
      slot.early_result = std::move(result);
      return;
    }
    HandleResultLocked(index, std::move(result), actions);
    if (actions.empty()) return;
    ++runners_;
  }
  Run(actions);
}

// --- public API -------------------------------------------------------------

void GenrmDispatcher::AddServer(GenrmServer server) {
  if (server.worker_id.empty()) {
    FAPO_LOG(ERROR) << "GenRM dispatcher: ignoring a server with an empty "
                       "worker_id (address '"
                    << server.address << "')";
    return;
  }
  const int cap =
      std::max(1, std::min(server.capacity, options_.max_in_flight_per_server));
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    ServerState* existing = nullptr;
    for (const std::shared_ptr<ServerState>& s : servers_) {
      if (s->info->worker_id == server.worker_id) existing = s.get();
    }
    if (existing != nullptr && existing->info->address != server.address) {
      // A new process behind the same id: its predecessor's calls are lost.
      RemoveServerLocked(existing, actions);
      existing = nullptr;
    }
    if (existing != nullptr) {
      existing->info = std::make_shared<const GenrmServer>(std::move(server));
      existing->cap = cap;
      RecomputeFreeLocked();
    } else {
      auto state = std::make_shared<ServerState>();
      state->serial = next_server_serial_++;
      state->cap = cap;
      if (in_flight_family_ != nullptr) {
        state->gauge =
            &in_flight_family_->WithLabels({{"server", server.worker_id}});
        state->gauge->Set(0);
      }
      state->info = std::make_shared<const GenrmServer>(std::move(server));
      servers_.push_back(std::move(state));
      RecomputeFreeLocked();
    }
    PumpLocked(actions);
    if (actions.empty()) return;
    ++runners_;
  }
  Run(actions);
}

void GenrmDispatcher::RemoveServer(absl::string_view worker_id) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    ServerState* found = nullptr;
    for (const std::shared_ptr<ServerState>& s : servers_) {
      if (s->info->worker_id == worker_id) found = s.get();
    }
    if (found == nullptr) return;
    RemoveServerLocked(found, actions);
    PumpLocked(actions);
    if (actions.empty()) return;
    ++runners_;
  }
  Run(actions);
}

absl::Status GenrmDispatcher::Submit(v1::ScoreRequest request) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(SubmitLocked(request, actions));
    if (actions.empty()) return absl::OkStatus();
    ++runners_;
  }
  Run(actions);
  return absl::OkStatus();
}

// NOTE [recycled requests]: building a fresh ScoreRequest costs one
// allocation per string field plus the buffers (the 1 KB solution, the
// problem), and freeing it as many. A cleared message keeps its strings'
// buffers, so NewRequest hands out messages that carried earlier requests:
// once the pool has warmed up, filling one is a few copies and no
// allocation. Submit swaps the filled message into its slot (pointer
// swaps) and keeps the slot's previous message as the next spare.
std::unique_ptr<v1::ScoreRequest> GenrmDispatcher::NewRequest() {
  std::unique_ptr<v1::ScoreRequest> request = std::move(t_spare_request);
  if (request == nullptr) {
    absl::MutexLock lock(&mu_);
    if (!spare_requests_.empty()) {
      request = std::move(spare_requests_.back());
      spare_requests_.pop_back();
    }
  }
  if (request == nullptr) return std::make_unique<v1::ScoreRequest>();
  request->Clear();  // keeps the strings' capacity
  return request;
}

absl::Status GenrmDispatcher::Submit(
    std::unique_ptr<v1::ScoreRequest> request) {
  if (request == nullptr) {
    return absl::InvalidArgumentError("GenRM request is null");
  }
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(SubmitLocked(*request, actions));
    // `request` now holds what the slot held before: the next spare.
    if (t_spare_request == nullptr) {
      t_spare_request = std::move(request);
    } else if (spare_requests_.size() < kMaxSpareRequests) {
      spare_requests_.push_back(std::move(request));
    }
    if (actions.empty()) return absl::OkStatus();
    ++runners_;
  }
  Run(actions);
  return absl::OkStatus();
}

absl::Status GenrmDispatcher::SubmitLocked(v1::ScoreRequest& request,
                                           Actions& actions) {
  if (request.trajectory_id().empty()) {
    return absl::InvalidArgumentError("GenRM request needs a trajectory_id");
  }
  if (shutdown_) {
    return absl::FailedPreconditionError(
        absl::StrCat("GenRM dispatcher is shut down; cannot score trajectory '",
                     request.trajectory_id(), "'"));
  }
  if (by_id_.contains(request.trajectory_id())) {
    return absl::AlreadyExistsError(
        absl::StrCat("trajectory '", request.trajectory_id(),
                     "' is already waiting for a GenRM verdict"));
  }
  const absl::Time now = clock_->Now();
  const uint32_t index = AllocSlotLocked();
  Slot& slot = slots_[index];
  slot.request.Swap(&request);
  slot.sequence = next_sequence_++;
  slot.submitted_at = now;
  slot.in_map = true;
  by_id_.emplace(slot.request.trajectory_id(), index);
  PushWaitingLocked(index, /*front=*/false, now);
  PumpLocked(actions, now);
  return absl::OkStatus();
}

bool GenrmDispatcher::Cancel(absl::string_view trajectory_id) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    auto it = by_id_.find(trajectory_id);
    if (it == by_id_.end()) return false;
    const uint32_t index = it->second;
    by_id_.erase(it);
    slots_[index].in_map = false;
    DetachLocked(index, Detach::kCancel, actions);
    PumpLocked(actions);
    if (actions.empty()) return true;
    ++runners_;
  }
  Run(actions);
  return true;
}

void GenrmDispatcher::Shutdown() {
  Actions actions;
  bool run = false;
  {
    absl::MutexLock lock(&mu_);
    if (!shutdown_) {
      shutdown_ = true;
      by_id_.clear();
      for (uint32_t i = 0; i < slots_.size(); ++i) {
        Slot& slot = slots_[i];
        if (!slot.live) continue;
        slot.in_map = false;
        DetachLocked(i, Detach::kShutdown, actions);
      }
      run = !actions.empty();
      if (run) ++runners_;
    }
  }
  if (run) Run(actions);
  absl::MutexLock lock(&mu_);
  auto quiet = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return outstanding_done_ == 0 &&
           runners_.load(std::memory_order_acquire) == 0;
  };
  // A runner leaves without taking mu_, which is what wakes an Await: so
  // look again every millisecond.
  while (
      !mu_.AwaitWithTimeout(absl::Condition(&quiet), absl::Milliseconds(1))) {
  }
}

// --- introspection ----------------------------------------------------------

int64_t GenrmDispatcher::pending() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(by_id_.size());
}

int64_t GenrmDispatcher::waiting() const {
  absl::MutexLock lock(&mu_);
  return waiting_count_;
}

int64_t GenrmDispatcher::in_flight() const {
  absl::MutexLock lock(&mu_);
  return in_flight_count_;
}

int GenrmDispatcher::in_flight(absl::string_view worker_id) const {
  absl::MutexLock lock(&mu_);
  for (const std::shared_ptr<ServerState>& s : servers_) {
    if (s->info->worker_id == worker_id) return s->in_flight;
  }
  return 0;
}

std::vector<GenrmServer> GenrmDispatcher::servers() const {
  absl::MutexLock lock(&mu_);
  std::vector<GenrmServer> result;
  result.reserve(servers_.size());
  for (const std::shared_ptr<ServerState>& s : servers_) {
    result.push_back(*s->info);
  }
  return result;
}

absl::Time GenrmDispatcher::oldest_waiting_since() const {
  absl::MutexLock lock(&mu_);
  absl::Time oldest = absl::InfiniteFuture();
  for (uint32_t index = waiting_head_; index != kNil;
       index = slots_[index].next) {
    oldest = std::min(oldest, slots_[index].waiting_since);
  }
  return oldest;
}

}  // namespace fapo::scheduler
