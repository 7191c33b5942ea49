// genrm_server: the GenRM service's logic, without gRPC (docs/style.md, practice
// 5). A request is judged by a backend; the server puts a DynamicBatcher in
// front of it.
//
//   genrm_backend.h      GenrmBackend, the interface every backend implements
//                        (this file), and the Clock the batcher stamps with
//   rule_backend.h       `rule`: the exact step checker of tasks/arith
//   latency_backend.h    `latency`: wraps a backend and adds a sampled delay
//                        without using CPU (a TimerQueue thread), to emulate
//                        a remote GenRM pool
//   timer_queue.h        one thread running callbacks at deadlines
//   dynamic_batcher.h    per-request Score() in front of a backend: batches
//                        of up to B requests or T ms, bounded in flight
//   fake_genrm_backend.h (test only) a backend that holds batches until the
//                        test completes them, and a FakeClock
//   genrm_backend_contract.h (test only) the contract below as a gtest suite
//   backend_factory.h    the job spec's genrm section -> backend + batcher
//                        options
//   genrm_service.h      the gRPC adapter (fapo.v1.GenRM) over the batcher,
//                        and the server's metrics
//
//   openai/              `openai`: an OpenAI-compatible /v1/chat/completions
//                        endpoint (vLLM, SGLang serving a GenRM)
//   model/               `model`: a causal LM from engine/ (LibTorch)
//
// The binary is apps/genrm_server_main.cc (fapo-genrm-server).
#ifndef FAPO_GENRM_SERVER_GENRM_BACKEND_H_
#define FAPO_GENRM_SERVER_GENRM_BACKEND_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fapo/v1/common.pb.h"
#include "fapo/v1/genrm.pb.h"
#include "services/clock/clock.h"

namespace fapo::genrm {

// One result per request of a batch, in the batch's order. An error is that
// request's alone (an unknown task, an unparsable problem); the other
// requests of the batch are unaffected.
using BatchResults = std::vector<absl::StatusOr<fapo::v1::Verdict>>;
using BatchDone = std::function<void(BatchResults)>;

// Judges batches of ScoreRequests. Implementations: rule, latency, model,
// openai.
//
// Contract (checked for every implementation by genrm_backend_contract_test):
//   - ScoreBatch is asynchronous: `done` runs exactly once, with exactly
//     requests.size() results in the requests' order, on any thread (maybe
//     the caller's, before ScoreBatch returns; maybe a backend thread). An
//     empty batch gets an empty result.
//   - A verdict carries trajectory_id, answer_correct, first_error_step,
//     num_steps and status; latency and genrm_server_id are left to the
//     caller (the DynamicBatcher stamps them).
//   - ScoreBatch is thread-safe; `done` is called without any lock of the
//     backend held, so it may call ScoreBatch again.
//   - Destruction: every `done` owed runs before the destructor returns
//     (work that cannot finish completes with Cancelled). Do not destroy a
//     backend from inside one of its own `done` callbacks.
class GenrmBackend {
 public:
  virtual ~GenrmBackend() = default;

  virtual void ScoreBatch(std::vector<fapo::v1::ScoreRequest> requests,
                          BatchDone done) = 0;

  // For logs and metrics labels: "rule", "latency(rule)", ...
  virtual std::string name() const = 0;
};

// The time source for latency stamps is fapo::Clock (services/clock).
using ::fapo::Clock;

}  // namespace fapo::genrm

#endif  // FAPO_GENRM_SERVER_GENRM_BACKEND_H_
