// genrm_server/openai: the `openai` GenRM backend. It asks an
// OpenAI-compatible /v1/chat/completions endpoint (vLLM or SGLang serving a
// GenRM such as FAPO-GenRM-4B) for a critique of each request, and reads the
// verdict out of the critique's \boxed{} answer.
//
//   openai_backend.h       OpenAiBackend and its options (this file)
//   openai_backend_test.cc tests against a local civetweb server that speaks
//                          the API, with scripted failures
//   fake_openai_server.h   (test only) that server, shared with the
//                          GenrmBackend contract test
//
// One request of a batch = one POST {base_url}/chat/completions with
//   {"model": M, "messages": [{"role": "user", "content": PROMPT}],
//    "temperature": T, "max_tokens": N[, "n": k when samples > 1]}
// where PROMPT is algorithm::BuildGenrmPrompt(problem, ground_truth, steps);
// the steps are the solution's lines for task "arith" (one trailing '\n'
// dropped, as tasks/arith/checker.h reads a response) and its paragraphs
// (algorithm::SplitParagraphs) for every other task. With an api_key_file,
// the request carries "Authorization: Bearer <key>".
//
// The verdict: status OK / UNPARSABLE / INVALID from algorithm::ParseVerdict
// of each choice's content, majority-voted (algorithm::MajorityVote) over the
// k choices; first_error_step, num_steps, num_samples (choices received),
// num_agreeing; critique = the first choice's content, truncated to
// max_critique_bytes. answer_correct is always true: only trajectories whose
// answer is correct are sent to a GenRM (a wrong answer takes its verdict
// without one, see scheduler/trajectory_queue.h), and this backend does not
// re-check answers.
//
// Errors, per request (the rest of the batch is unaffected):
//   - connection errors, timeouts (timeout_ms per attempt), HTTP 429 and 5xx
//     are retried up to max_retries times, after a backoff of
//     initial_backoff_ms * 2^attempt (capped at max_backoff_ms, with jitter)
//     or the server's Retry-After (seconds) when it sends one. When they run
//     out: DeadlineExceeded if the last attempt timed out, else Unavailable;
//     the message names the last cause.
//   - any other 4xx fails at once, with the server's error message:
//     InvalidArgument (400, 413, 422), Unauthenticated (401),
//     PermissionDenied (403), NotFound (404), FailedPrecondition (others).
//   - a 2xx response that is not a chat completion (bad JSON, no choices):
//     Internal, not retried.
//   - Cancelled: the backend was destroyed before the request finished.
//
// Threads: one worker thread drives every transfer through libcurl's multi
// interface (no thread per request); at most max_concurrency HTTP requests
// are in flight across all batches, the rest wait in FIFO order. `done` runs
// on the worker thread, or on the caller's for an empty batch and for a
// batch given after destruction began. ScoreBatch is thread-safe.
//
// Destruction aborts every transfer and completes every batch owed, with
// Cancelled for each request not yet finished, before it returns.
#ifndef FAPO_GENRM_SERVER_OPENAI_OPENAI_BACKEND_H_
#define FAPO_GENRM_SERVER_OPENAI_OPENAI_BACKEND_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "genrm_server/genrm_backend.h"

namespace fapo::genrm {

struct OpenAiBackendOptions {
  // From the job spec, filled by OpenAiOptionsFromSpec (backend_factory.h):
  // their defaults and ranges are the spec's (NOTE [one default] in
  // services/config/job_spec.h), so none are declared here. Create checks
  // only what the backend cannot work without.
  //
  // genrm.openai.base_url: the API root, "http://host:port/v1" (http:// or
  // https://; a trailing '/' is dropped). Required.
  std::string base_url;
  // genrm.openai.model: the served model's name, sent as "model". Required.
  std::string model;
  // genrm.openai.api_key_file: the API key (surrounding whitespace
  // trimmed), read once at Create; "" = no Authorization header.
  std::string api_key_file;
  // genrm.openai.max_concurrency: HTTP requests in flight at once, across
  // batches; >= 1.
  int max_concurrency = 0;
  // genrm.openai.timeout_ms: per attempt, connection included; >= 1.
  int64_t timeout_ms = 0;
  // genrm.openai.max_retries: retries after the first attempt (so at most
  // max_retries + 1 attempts); >= 0.
  int max_retries = 0;
  // genrm.model.samples: k, choices per request ("n"), majority-voted; >= 1.
  int samples = 0;
  // genrm.openai.temperature; >= 0 and finite.
  double temperature = 0;
  // genrm.openai.max_tokens: generation limit per choice; >= 1.
  int max_tokens = 0;
  // job.seed: the backoff jitter's.
  uint64_t seed = 0;

  // The backend's own tuning, not in the job spec.
  //
  // Backoff before retry a (from 0): initial_backoff_ms * 2^a, capped at
  // max_backoff_ms, then scaled by a uniform draw in [0.5, 1]. Defaults 200
  // and 10000 ms. initial >= 0, max >= initial.
  int64_t initial_backoff_ms = 200;
  int64_t max_backoff_ms = 10000;
  // A server's Retry-After is honoured up to this, ms. Default 60000. >= 0.
  int64_t max_retry_after_ms = 60000;
  // The critique kept in the verdict, bytes. Default 16384. >= 0.
  size_t max_critique_bytes = 16384;
};

// OK, or InvalidArgument naming the bad field.
absl::Status ValidateOpenAiBackendOptions(const OpenAiBackendOptions& options);

class OpenAiBackend : public GenrmBackend {
 public:
  // InvalidArgument for invalid options; NotFound / InvalidArgument when the
  // api_key_file cannot be read or holds only whitespace; Internal when
  // libcurl cannot be set up. Starts the worker thread.
  static absl::StatusOr<std::unique_ptr<OpenAiBackend>> Create(
      const OpenAiBackendOptions& options);

  ~OpenAiBackend() override;
  OpenAiBackend(const OpenAiBackend&) = delete;
  OpenAiBackend& operator=(const OpenAiBackend&) = delete;

  void ScoreBatch(std::vector<fapo::v1::ScoreRequest> requests,
                  BatchDone done) override;
  // "openai(<model>)".
  std::string name() const override;

 private:
  struct Batch;
  struct Call;
  class Worker;

  OpenAiBackend(OpenAiBackendOptions options, std::unique_ptr<Worker> worker);

  const OpenAiBackendOptions options_;

  absl::Mutex mu_;
  // Calls handed over by ScoreBatch, not yet taken by the worker.
  std::deque<std::unique_ptr<Call>> incoming_ ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;

  // Owns the libcurl multi handle; used by the worker thread, except for
  // Wakeup(), which any thread may call.
  std::unique_ptr<Worker> worker_;
  std::thread thread_;
};

}  // namespace fapo::genrm

#endif  // FAPO_GENRM_SERVER_OPENAI_OPENAI_BACKEND_H_
