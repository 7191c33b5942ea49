#include "genrm_server/openai/openai_backend.h"

#include <curl/curl.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <unordered_map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "algorithm/genrm_prompt.h"
#include "algorithm/verdict.h"
#include "genrm_server/genrm_text.h"
#include "nlohmann/json.hpp"
#include "services/status/status_macros.h"

namespace fapo::genrm {

namespace {

using ::nlohmann::json;

// A response body larger than this is abandoned (a chat completion with
// max_tokens of text is far smaller; this only bounds a misbehaving server).
constexpr size_t kMaxResponseBytes = size_t{64} << 20;
// How much of a server's error text goes into a Status message.
constexpr size_t kMaxServerMessageBytes = 1024;

// The server's own words for an error: OpenAI's {"error": {"message": ...}},
// vLLM's {"message": ...} or FastAPI's {"detail": ...}; else the raw body.
std::string ServerMessage(const std::string& body) {
  const json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object()) {
    auto it = parsed.find("error");
    if (it != parsed.end() && it->is_object()) {
      auto message = it->find("message");
      if (message != it->end() && message->is_string()) {
        return TruncateUtf8(message->get<std::string>(),
                            kMaxServerMessageBytes);
      }
    }
    if (it != parsed.end() && it->is_string()) {
      return TruncateUtf8(it->get<std::string>(), kMaxServerMessageBytes);
    }
    for (const char* key : {"message", "detail"}) {
      auto field = parsed.find(key);
      if (field != parsed.end() && field->is_string()) {
        return TruncateUtf8(field->get<std::string>(), kMaxServerMessageBytes);
      }
    }
  }
  return TruncateUtf8(body, kMaxServerMessageBytes);
}

absl::StatusCode CodeForHttpStatus(long http_status) {
  switch (http_status) {
    case 400:
    case 413:
    case 422:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    default:
      return absl::StatusCode::kFailedPrecondition;
  }
}

// NOTE [openai retries]: only failures that another attempt may cure are
// retried: the connection could not be made or broke, the attempt timed
// out, or the server said so (429, 5xx). Anything else (a bad URL, a TLS
// certificate problem, a 4xx) would fail the same way again.
bool IsRetryableCurlCode(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

absl::StatusOr<std::string> ReadApiKey(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(
        "openai backend: cannot read api_key_file \"", path, "\""));
  }
  std::stringstream contents;
  contents << in.rdbuf();
  std::string key(absl::StripAsciiWhitespace(contents.str()));
  if (key.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "openai backend: api_key_file \"", path, "\" holds no key"));
  }
  if (key.find_first_of("\r\n") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("openai backend: api_key_file \"", path,
                     "\" holds more than one line"));
  }
  return key;
}

absl::Status InitCurlOnce() {
  static std::once_flag once;
  static CURLcode result = CURLE_OK;
  std::call_once(once, [] { result = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (result != CURLE_OK) {
    return absl::InternalError(absl::StrCat(
        "openai backend: curl_global_init: ", curl_easy_strerror(result)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateOpenAiBackendOptions(const OpenAiBackendOptions& options) {
  auto invalid = [](auto&&... parts) {
    return absl::InvalidArgumentError(
        absl::StrCat("openai backend: ", parts...));
  };
  if (!absl::StartsWith(options.base_url, "http://") &&
      !absl::StartsWith(options.base_url, "https://")) {
    return invalid("base_url must start with http:// or https://, got \"",
                   options.base_url, "\"");
  }
  const size_t scheme_end = options.base_url.find("://") + 3;
  if (options.base_url.size() <= scheme_end ||
      options.base_url[scheme_end] == '/') {
    return invalid("base_url \"", options.base_url, "\" has no host");
  }
  if (options.base_url.find_first_of(" \t\r\n") != std::string::npos) {
    return invalid("base_url \"", options.base_url, "\" contains whitespace");
  }
  if (options.model.empty()) return invalid("model is required");
  if (options.max_concurrency < 1) {
    return invalid("max_concurrency must be >= 1, got ",
                   options.max_concurrency);
  }
  if (options.timeout_ms < 1) {
    return invalid("timeout_ms must be >= 1, got ", options.timeout_ms);
  }
  if (options.max_retries < 0) {
    return invalid("max_retries must be >= 0, got ", options.max_retries);
  }
  if (options.initial_backoff_ms < 0 ||
      options.max_backoff_ms < options.initial_backoff_ms) {
    return invalid("need 0 <= initial_backoff_ms <= max_backoff_ms, got ",
                   options.initial_backoff_ms, " and ", options.max_backoff_ms);
  }
  if (options.max_retry_after_ms < 0) {
    return invalid("max_retry_after_ms must be >= 0, got ",
                   options.max_retry_after_ms);
  }
  if (options.samples < 1) {
    return invalid("samples must be >= 1, got ", options.samples);
  }
  if (!std::isfinite(options.temperature) || options.temperature < 0) {
    return invalid("temperature must be finite and >= 0, got ",
                   options.temperature);
  }
  if (options.max_tokens < 1) {
    return invalid("max_tokens must be >= 1, got ", options.max_tokens);
  }
  return absl::OkStatus();
}

// A batch's results, filled in by its calls (on the worker thread only, once
// handed over).
struct OpenAiBackend::Batch {
  BatchResults results;
  size_t remaining = 0;
  BatchDone done;
};

// One request of a batch, across its attempts.
struct OpenAiBackend::Call {
  std::shared_ptr<Batch> batch;
  size_t index = 0;  // in the batch
  std::string request_id;
  std::string trajectory_id;
  int num_steps = 0;
  std::string body;  // the JSON request body
  int attempts = 0;  // finished attempts
  absl::Time not_before = absl::InfinitePast();

  // The attempt in flight.
  CURL* easy = nullptr;
  std::string response;
  std::optional<int64_t> retry_after_ms;
};

// Everything the worker thread owns: the multi handle, the calls waiting for
// a slot or a backoff, and the ones in flight.
class OpenAiBackend::Worker {
 public:
  struct Completed {
    BatchDone done;
    BatchResults results;
  };

  static absl::StatusOr<std::unique_ptr<Worker>> Create(
      const OpenAiBackendOptions& options, const std::string& api_key) {
    CURLM* multi = curl_multi_init();
    if (multi == nullptr) {
      return absl::InternalError("openai backend: curl_multi_init failed");
    }
    auto worker = std::unique_ptr<Worker>(new Worker(options, multi));
    // "Expect:" stops libcurl from waiting for a 100-continue on large
    // bodies, a round trip that servers like vLLM do not need.
    for (std::string header :
         {std::string("Content-Type: application/json"),
          std::string("Accept: application/json"), std::string("Expect:"),
          api_key.empty() ? std::string()
                          : absl::StrCat("Authorization: Bearer ", api_key)}) {
      if (header.empty()) continue;
      curl_slist* appended =
          curl_slist_append(worker->headers_, header.c_str());
      if (appended == nullptr) {
        return absl::InternalError("openai backend: curl_slist_append failed");
      }
      worker->headers_ = appended;
    }
    return worker;
  }

  ~Worker() {
    // The run loop has already removed and freed every easy handle.
    curl_multi_cleanup(multi_);
    curl_slist_free_all(headers_);
  }

  // Any thread: makes a curl_multi_poll in progress (or the next one) return.
  void Wakeup() { curl_multi_wakeup(multi_); }

  void Run(OpenAiBackend& owner) {
    std::vector<Completed> completed;
    while (true) {
      {
        absl::MutexLock lock(&owner.mu_);
        if (owner.shutting_down_) break;
        while (!owner.incoming_.empty()) {
          waiting_.push_back(std::move(owner.incoming_.front()));
          owner.incoming_.pop_front();
        }
      }
      StartDueCalls(absl::Now(), completed);
      int running = 0;
      curl_multi_perform(multi_, &running);
      int left = 0;
      while (CURLMsg* message = curl_multi_info_read(multi_, &left)) {
        if (message->msg != CURLMSG_DONE) continue;
        FinishAttempt(message->easy_handle, message->data.result, completed);
      }
      // Callbacks run without any lock held (they may call ScoreBatch).
      const bool progressed = !completed.empty();
      for (Completed& batch : completed) batch.done(std::move(batch.results));
      completed.clear();
      if (progressed) continue;
      curl_multi_poll(multi_, nullptr, 0, PollTimeoutMs(absl::Now()), nullptr);
    }
    Cancel(owner, completed);
    for (Completed& batch : completed) batch.done(std::move(batch.results));
  }

 private:
  Worker(const OpenAiBackendOptions& options, CURLM* multi)
      : options_(options),
        url_(absl::StrCat(absl::StripSuffix(options.base_url, "/"),
                          "/chat/completions")),
        multi_(multi),
        rng_(options.seed) {}

  static size_t OnBody(char* data, size_t size, size_t count, void* user) {
    Call* call = static_cast<Call*>(user);
    const size_t bytes = size * count;
    if (call->response.size() + bytes > kMaxResponseBytes) return 0;
    call->response.append(data, bytes);
    return bytes;
  }

  static size_t OnHeader(char* data, size_t size, size_t count, void* user) {
    Call* call = static_cast<Call*>(user);
    const size_t bytes = size * count;
    absl::string_view line(data, bytes);
    // A new response (a redirect or a 100 Continue) resets what was seen.
    if (absl::StartsWith(line, "HTTP/")) call->retry_after_ms.reset();
    constexpr absl::string_view kRetryAfter = "retry-after:";
    if (line.size() > kRetryAfter.size() &&
        absl::StartsWithIgnoreCase(line, kRetryAfter)) {
      int64_t seconds = 0;
      // Only the delta-seconds form; an HTTP-date falls back to backoff.
      if (absl::SimpleAtoi(
              absl::StripAsciiWhitespace(line.substr(kRetryAfter.size())),
              &seconds) &&
          seconds >= 0) {
        call->retry_after_ms = seconds * 1000;
      }
    }
    return bytes;
  }

  void StartDueCalls(absl::Time now, std::vector<Completed>& completed) {
    // Taken out first: a start that fails puts its call back in waiting_.
    std::vector<std::unique_ptr<Call>> due;
    const size_t free_slots =
        static_cast<size_t>(options_.max_concurrency) - in_flight_.size();
    for (auto it = waiting_.begin();
         it != waiting_.end() && due.size() < free_slots;) {
      if ((*it)->not_before > now) {
        ++it;
        continue;
      }
      due.push_back(std::move(*it));
      it = waiting_.erase(it);
    }
    for (auto& call : due) Start(std::move(call), completed);
  }

  void Start(std::unique_ptr<Call> call, std::vector<Completed>& completed) {
    CURL* easy = curl_easy_init();
    call->response.clear();
    call->retry_after_ms.reset();
    if (easy == nullptr) {
      // Out of memory in libcurl: counts as a failed attempt so that the
      // retry policy bounds it.
      FailOrRetry(std::move(call),
                  absl::UnavailableError("curl_easy_init failed"), true,
                  completed);
      return;
    }
    call->easy = easy;
    curl_easy_setopt(easy, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, call->body.data());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(call->body.size()));
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Worker::OnBody);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, call.get());
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &Worker::OnHeader);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, call.get());
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(options_.timeout_ms));
    // Signals are process-wide; a multithreaded process must not use them
    // for DNS timeouts.
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_multi_add_handle(multi_, easy);
    in_flight_.emplace(easy, std::move(call));
  }

  void FinishAttempt(CURL* easy, CURLcode code,
                     std::vector<Completed>& completed) {
    auto it = in_flight_.find(easy);
    if (it == in_flight_.end()) return;
    std::unique_ptr<Call> call = std::move(it->second);
    in_flight_.erase(it);
    long http_status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &http_status);
    curl_multi_remove_handle(multi_, easy);
    curl_easy_cleanup(easy);
    call->easy = nullptr;

    if (code != CURLE_OK) {
      const std::string what = curl_easy_strerror(code);
      if (code == CURLE_OPERATION_TIMEDOUT) {
        FailOrRetry(std::move(call),
                    absl::DeadlineExceededError(
                        absl::StrCat("no response within timeout_ms ",
                                     options_.timeout_ms, " (", what, ")")),
                    true, completed);
      } else {
        FailOrRetry(std::move(call),
                    absl::UnavailableError(absl::StrCat(
                        "HTTP transfer to ", url_, " failed: ", what)),
                    IsRetryableCurlCode(code), completed);
      }
      return;
    }
    if (http_status == 429 || http_status >= 500) {
      FailOrRetry(
          std::move(call),
          absl::UnavailableError(absl::StrCat("HTTP ", http_status, ": ",
                                              ServerMessage(call->response))),
          true, completed);
      return;
    }
    if (http_status < 200 || http_status >= 300) {
      FailOrRetry(std::move(call),
                  absl::Status(CodeForHttpStatus(http_status),
                               absl::StrCat("HTTP ", http_status, ": ",
                                            ServerMessage(call->response))),
                  false, completed);
      return;
    }
    absl::StatusOr<fapo::v1::Verdict> verdict = ParseCompletion(*call);
    if (!verdict.ok()) {
      verdict = fapo::Annotate(
          verdict.status(),
          absl::StrCat("openai backend: request ", call->request_id));
    }
    Complete(std::move(call), std::move(verdict), completed);
  }

  absl::StatusOr<fapo::v1::Verdict> ParseCompletion(const Call& call) const {
    const json parsed =
        json::parse(call.response, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded() || !parsed.is_object()) {
      return absl::InternalError(
          absl::StrCat("response is not a JSON object: \"",
                       TruncateUtf8(call.response, 200), "\""));
    }
    auto choices = parsed.find("choices");
    if (choices == parsed.end() || !choices->is_array() || choices->empty()) {
      return absl::InternalError(absl::StrCat("response has no choices: \"",
                                              TruncateUtf8(call.response, 200),
                                              "\""));
    }
    std::vector<std::string> samples;
    for (const json& choice : *choices) {
      std::string content;
      if (choice.is_object()) {
        auto message = choice.find("message");
        if (message != choice.end() && message->is_object()) {
          auto text = message->find("content");
          // A null content (nothing generated) reads as unparsable.
          if (text != message->end() && text->is_string()) {
            content = text->get<std::string>();
          } else if (text != message->end() && !text->is_null()) {
            return absl::InternalError("a choice's content is not a string");
          }
        } else {
          return absl::InternalError("a choice has no message object");
        }
      } else {
        return absl::InternalError("a choice is not an object");
      }
      samples.push_back(std::move(content));
    }
    // answer_correct is true: see the header.
    return VerdictFromSamples(call.trajectory_id, call.num_steps, samples,
                              options_.max_critique_bytes);
  }

  void FailOrRetry(std::unique_ptr<Call> call, absl::Status cause,
                   bool retryable, std::vector<Completed>& completed) {
    ++call->attempts;
    if (retryable && call->attempts <= options_.max_retries) {
      call->not_before = absl::Now() + RetryDelay(*call);
      waiting_.push_back(std::move(call));
      return;
    }
    const std::string context =
        retryable
            ? absl::StrCat("openai backend: request ", call->request_id,
                           ": failed after ", call->attempts, " attempts; last")
            : absl::StrCat("openai backend: request ", call->request_id);
    // Retries exhausted: DeadlineExceeded when the last attempt timed out,
    // Unavailable for every other retryable cause (see the header).
    Complete(std::move(call), fapo::Annotate(cause, context), completed);
  }

  absl::Duration RetryDelay(const Call& call) {
    if (call.retry_after_ms.has_value()) {
      return absl::Milliseconds(
          std::min(*call.retry_after_ms, options_.max_retry_after_ms));
    }
    // initial * 2^(attempts - 1), capped; the shift is bounded so that it
    // cannot overflow before the cap applies.
    const int doublings = std::min(call.attempts - 1, 30);
    const double base_ms =
        std::min(static_cast<double>(options_.initial_backoff_ms) *
                     static_cast<double>(int64_t{1} << doublings),
                 static_cast<double>(options_.max_backoff_ms));
    // Jitter spreads the retries of a burst that failed together.
    std::uniform_real_distribution<double> jitter(0.5, 1.0);
    return absl::Milliseconds(base_ms * jitter(rng_));
  }

  void Complete(std::unique_ptr<Call> call,
                absl::StatusOr<fapo::v1::Verdict> result,
                std::vector<Completed>& completed) {
    Batch& batch = *call->batch;
    batch.results[call->index] = std::move(result);
    if (--batch.remaining == 0) {
      completed.push_back({std::move(batch.done), std::move(batch.results)});
    }
  }

  int PollTimeoutMs(absl::Time now) const {
    int64_t timeout_ms = 1000;
    long curl_timeout_ms = -1;
    curl_multi_timeout(multi_, &curl_timeout_ms);
    if (curl_timeout_ms >= 0) {
      timeout_ms = std::min<int64_t>(timeout_ms, curl_timeout_ms);
    }
    if (in_flight_.size() < static_cast<size_t>(options_.max_concurrency)) {
      for (const auto& call : waiting_) {
        const int64_t due_ms = absl::ToInt64Milliseconds(
            absl::Ceil(call->not_before - now, absl::Milliseconds(1)));
        timeout_ms =
            std::min<int64_t>(timeout_ms, std::max<int64_t>(due_ms, 0));
      }
    }
    return static_cast<int>(timeout_ms);
  }

  // Shutdown: every call owed, in flight or waiting or just handed over,
  // completes with Cancelled.
  void Cancel(OpenAiBackend& owner, std::vector<Completed>& completed) {
    {
      absl::MutexLock lock(&owner.mu_);
      while (!owner.incoming_.empty()) {
        waiting_.push_back(std::move(owner.incoming_.front()));
        owner.incoming_.pop_front();
      }
    }
    const absl::Status cancelled = absl::CancelledError(
        "openai backend destroyed before the request finished");
    for (auto& [easy, call] : in_flight_) {
      curl_multi_remove_handle(multi_, easy);
      curl_easy_cleanup(easy);
      call->easy = nullptr;
      Complete(std::move(call), cancelled, completed);
    }
    in_flight_.clear();
    for (auto& call : waiting_) Complete(std::move(call), cancelled, completed);
    waiting_.clear();
  }

  const OpenAiBackendOptions options_;
  const std::string url_;
  CURLM* const multi_;
  curl_slist* headers_ = nullptr;
  std::mt19937_64 rng_;
  // Calls not in flight, FIFO: new ones, and retries (each not before its
  // backoff ends).
  std::deque<std::unique_ptr<Call>> waiting_;
  std::unordered_map<CURL*, std::unique_ptr<Call>> in_flight_;
};

absl::StatusOr<std::unique_ptr<OpenAiBackend>> OpenAiBackend::Create(
    const OpenAiBackendOptions& options) {
  RETURN_IF_ERROR(ValidateOpenAiBackendOptions(options));
  std::string api_key;
  if (!options.api_key_file.empty()) {
    ASSIGN_OR_RETURN(api_key, ReadApiKey(options.api_key_file));
  }
  RETURN_IF_ERROR(InitCurlOnce());
  ASSIGN_OR_RETURN(std::unique_ptr<Worker> worker,
                   Worker::Create(options, api_key));
  return std::unique_ptr<OpenAiBackend>(
      new OpenAiBackend(options, std::move(worker)));
}

OpenAiBackend::OpenAiBackend(OpenAiBackendOptions options,
                             std::unique_ptr<Worker> worker)
    : options_(std::move(options)), worker_(std::move(worker)) {
  thread_ = std::thread([this] { worker_->Run(*this); });
}

OpenAiBackend::~OpenAiBackend() {
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
  }
  worker_->Wakeup();
  thread_.join();
}

std::string OpenAiBackend::name() const {
  return absl::StrCat("openai(", options_.model, ")");
}

void OpenAiBackend::ScoreBatch(std::vector<fapo::v1::ScoreRequest> requests,
                               BatchDone done) {
  if (requests.empty()) {
    done({});
    return;
  }
  auto batch = std::make_shared<Batch>();
  batch->results.assign(requests.size(),
                        absl::UnknownError("openai backend: not scored"));
  batch->remaining = requests.size();
  batch->done = std::move(done);

  // The prompts and bodies are built here, on the caller's thread, to keep
  // the worker thread for I/O.
  std::deque<std::unique_ptr<Call>> calls;
  for (size_t i = 0; i < requests.size(); ++i) {
    const fapo::v1::ScoreRequest& request = requests[i];
    auto call = std::make_unique<Call>();
    call->batch = batch;
    call->index = i;
    call->request_id = request.request_id();
    call->trajectory_id = request.trajectory_id();
    const std::vector<std::string> steps = GenrmSteps(request);
    call->num_steps = static_cast<int>(steps.size());
    json body = {
        {"model", options_.model},
        {"messages",
         json::array({{{"role", "user"},
                       {"content", algorithm::BuildGenrmPrompt(
                                       request.problem(),
                                       request.ground_truth(), steps)}}})},
        {"temperature", options_.temperature},
        {"max_tokens", options_.max_tokens},
    };
    if (options_.samples > 1) body["n"] = options_.samples;
    // Invalid UTF-8 in a solution must not throw: replace it.
    call->body = body.dump(-1, ' ', false, json::error_handler_t::replace);
    calls.push_back(std::move(call));
  }

  bool accepted = false;
  {
    absl::MutexLock lock(&mu_);
    if (!shutting_down_) {
      for (auto& call : calls) incoming_.push_back(std::move(call));
      accepted = true;
    }
  }
  if (accepted) {
    worker_->Wakeup();
    return;
  }
  // Destruction has begun (a `done` called ScoreBatch while the backend was
  // cancelling): nothing will run this batch.
  BatchResults results(requests.size(),
                       absl::CancelledError("openai backend is shutting down"));
  BatchDone batch_done = std::move(batch->done);
  batch_done(std::move(results));
}

}  // namespace fapo::genrm
