// OpenAiBackend against a local server that speaks /v1/chat/completions
// (civetweb on 127.0.0.1, port 0), scripted per request: verdicts, retries,
// Retry-After, timeouts, refused connections, the concurrency cap, and
// cancellation on destruction.
#include "genrm_server/openai/openai_backend.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "algorithm/genrm_prompt.h"
#include "genrm_server/openai/fake_openai_server.h"
#include "genrm_server/options_from_spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/status/status_matchers.h"

namespace fapo::genrm {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::nlohmann::json;
using ::testing::HasSubstr;
using ::testing::SizeIs;

class OpenAiBackendTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // libcurl honours proxy variables; the fake server is local.
    for (const char* name : {"http_proxy", "HTTP_PROXY", "https_proxy",
                             "HTTPS_PROXY", "all_proxy", "ALL_PROXY"}) {
      unsetenv(name);
    }
    server_ = new FakeOpenAiServer();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  // The shared server, answering with `script` for this test.
  FakeOpenAiServer& Serve(FakeOpenAiServer::Script script) {
    server_->Reset(std::move(script));
    return *server_;
  }

  static FakeOpenAiServer* server_;
};

FakeOpenAiServer* OpenAiBackendTest::server_ = nullptr;

// A local port where nothing listens: bound, never listened on, closed.
int UnusedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  close(fd);
  return port;
}

// The user message of a recorded request.
std::string PromptOf(const json& request) {
  return request["messages"][0]["content"].get<std::string>();
}

// An arith request of 4 steps (lines); `marker` goes into the problem text
// so that a script can tell requests apart.
fapo::v1::ScoreRequest Request(int i, const std::string& marker = "") {
  fapo::v1::ScoreRequest request;
  request.set_request_id(absl::StrCat("r", i));
  request.set_trajectory_id(absl::StrCat("t", i));
  request.set_task("arith");
  request.set_problem(absl::StrCat("3+7*4-2", marker));
  request.set_ground_truth("8");
  request.set_solution("3+7=0\n0*4=0\n0-2=8\n#8\n");
  return request;
}

// The job spec's defaults (NOTE [one default]), pointed at `server`.
OpenAiBackendOptions Options(const FakeOpenAiServer& server) {
  OpenAiBackendOptions options = OpenAiOptionsFromSpec(config::JobSpec());
  options.base_url = server.base_url();
  options.model = "fapo-genrm-4b";
  options.timeout_ms = 5000;
  options.max_retries = 2;
  options.initial_backoff_ms = 10;
  options.max_backoff_ms = 40;
  return options;
}

std::unique_ptr<OpenAiBackend> Make(const OpenAiBackendOptions& options) {
  auto backend = OpenAiBackend::Create(options);
  EXPECT_THAT(backend, IsOk());
  return backend.ok() ? *std::move(backend) : nullptr;
}

BatchResults ScoreAndWait(GenrmBackend& backend,
                          std::vector<fapo::v1::ScoreRequest> requests) {
  absl::Notification done;
  BatchResults out;
  std::atomic<int> calls{0};
  backend.ScoreBatch(std::move(requests), [&](BatchResults results) {
    out = std::move(results);
    calls.fetch_add(1);
    done.Notify();
  });
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(15)));
  EXPECT_EQ(calls.load(), 1);
  return out;
}

std::string WriteTempFile(const std::string& name, const std::string& text) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/", name);
  std::ofstream(path) << text;
  return path;
}

TEST_F(OpenAiBackendTest, SendsTheGenrmPromptModelSamplingAndBearerToken) {
  FakeOpenAiServer& server = Serve([](int, const json&) {
    return Completion({"Step 2 is wrong. \\boxed{2}"});
  });
  OpenAiBackendOptions options = Options(server);
  options.api_key_file = WriteTempFile("openai_key", "  sk-test-key \n");
  options.temperature = 0.5;
  options.max_tokens = 123;
  auto backend = Make(options);
  ASSERT_NE(backend, nullptr);
  EXPECT_EQ(backend->name(), "openai(fapo-genrm-4b)");

  const fapo::v1::ScoreRequest request = Request(0);
  const BatchResults results = ScoreAndWait(*backend, {request});
  ASSERT_THAT(results, SizeIs(1));
  ASSERT_THAT(results[0], IsOk());
  const fapo::v1::Verdict& verdict = *results[0];
  EXPECT_EQ(verdict.trajectory_id(), "t0");
  EXPECT_TRUE(verdict.answer_correct());
  EXPECT_EQ(verdict.status(), fapo::v1::VERDICT_STATUS_OK);
  EXPECT_EQ(verdict.first_error_step(), 2);
  EXPECT_EQ(verdict.num_steps(), 4);
  EXPECT_EQ(verdict.critique(), "Step 2 is wrong. \\boxed{2}");
  EXPECT_EQ(verdict.num_samples(), 1);
  EXPECT_EQ(verdict.num_agreeing(), 1);
  EXPECT_FALSE(verdict.has_latency());
  EXPECT_EQ(verdict.genrm_server_id(), "");

  ASSERT_EQ(server.calls(), 1);
  const json sent = server.requests()[0];
  EXPECT_EQ(sent["model"], "fapo-genrm-4b");
  EXPECT_EQ(sent["messages"].size(), 1u);
  EXPECT_EQ(sent["messages"][0]["role"], "user");
  // Arith steps are the solution's lines (the trailing newline dropped).
  const std::vector<std::string> lines = {"3+7=0", "0*4=0", "0-2=8", "#8"};
  EXPECT_EQ(PromptOf(sent), algorithm::BuildGenrmPrompt("3+7*4-2", "8", lines));
  EXPECT_EQ(sent["temperature"], 0.5);
  EXPECT_EQ(sent["max_tokens"], 123);
  EXPECT_FALSE(sent.contains("n"));
  EXPECT_EQ(server.authorizations()[0], "Bearer sk-test-key");
}

TEST_F(OpenAiBackendTest, OtherTasksAreSplitIntoParagraphsAndNoKeyNoHeader) {
  FakeOpenAiServer& server =
      Serve([](int, const json&) { return Completion({"\\boxed{-1}"}); });
  auto backend = Make(Options(server));
  ASSERT_NE(backend, nullptr);
  fapo::v1::ScoreRequest request = Request(0);
  request.set_task("math");
  request.set_problem("What is 1+1?");
  request.set_ground_truth("2");
  request.set_solution("First, 1+1.\nIt is 2.\n\n\nSo \\boxed{2}.");
  const BatchResults results = ScoreAndWait(*backend, {request});
  ASSERT_THAT(results[0], IsOk());
  EXPECT_EQ(results[0]->num_steps(), 2);
  EXPECT_EQ(results[0]->first_error_step(), -1);
  ASSERT_EQ(server.calls(), 1);
  EXPECT_EQ(
      PromptOf(server.requests()[0]),
      algorithm::BuildGenrmPrompt(
          "What is 1+1?", "2", algorithm::SplitParagraphs(request.solution())));
  EXPECT_EQ(server.authorizations()[0], "");
}

TEST_F(OpenAiBackendTest, ParsesVerdictsFromTheBoxedAnswer) {
  // The reply depends on the marker in the problem, not on arrival order.
  FakeOpenAiServer& server = Serve([](int, const json& request) {
    const std::string prompt = PromptOf(request);
    if (absl::StrContains(prompt, "#case-step")) {
      return Completion({"\\boxed{2}"});
    }
    if (absl::StrContains(prompt, "#case-sound")) {
      return Completion({"All good. \\boxed{-1}"});
    }
    if (absl::StrContains(prompt, "#case-junk")) {
      return Completion({"I cannot tell."});
    }
    return Completion({"\\boxed{7}"});  // 4 steps: out of range
  });
  auto backend = Make(Options(server));
  ASSERT_NE(backend, nullptr);
  const BatchResults results = ScoreAndWait(
      *backend, {Request(0, "#case-step"), Request(1, "#case-sound"),
                 Request(2, "#case-junk"), Request(3, "#case-range")});
  ASSERT_THAT(results, SizeIs(4));
  for (const auto& result : results) ASSERT_THAT(result, IsOk());
  EXPECT_EQ(results[0]->status(), fapo::v1::VERDICT_STATUS_OK);
  EXPECT_EQ(results[0]->first_error_step(), 2);
  EXPECT_EQ(results[1]->status(), fapo::v1::VERDICT_STATUS_OK);
  EXPECT_EQ(results[1]->first_error_step(), -1);
  EXPECT_EQ(results[2]->status(), fapo::v1::VERDICT_STATUS_UNPARSABLE);
  EXPECT_EQ(results[2]->first_error_step(), -1);
  EXPECT_EQ(results[2]->num_agreeing(), 0);
  EXPECT_EQ(results[3]->status(), fapo::v1::VERDICT_STATUS_INVALID);
  EXPECT_EQ(results[3]->first_error_step(), -1);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(results[i]->trajectory_id(), absl::StrCat("t", i));
  }
}

TEST_F(OpenAiBackendTest, MajorityVoteOverSamples) {
  FakeOpenAiServer& server = Serve([](int, const json& request) {
    if (request.value("n", 1) != 3) return Error(400, "expected n=3");
    return Completion({"first \\boxed{0}", "\\boxed{1}", "then \\boxed{1}"});
  });
  OpenAiBackendOptions options = Options(server);
  options.samples = 3;
  options.temperature = 1.0;
  options.max_critique_bytes = 5;
  auto backend = Make(options);
  ASSERT_NE(backend, nullptr);
  const BatchResults results = ScoreAndWait(*backend, {Request(0)});
  ASSERT_THAT(results[0], IsOk());
  EXPECT_EQ(results[0]->status(), fapo::v1::VERDICT_STATUS_OK);
  EXPECT_EQ(results[0]->first_error_step(), 1);
  EXPECT_EQ(results[0]->num_samples(), 3);
  EXPECT_EQ(results[0]->num_agreeing(), 2);
  // The first choice's text, truncated to max_critique_bytes.
  EXPECT_EQ(results[0]->critique(), "first");
  EXPECT_EQ(server.requests()[0]["n"], 3);
}

TEST_F(OpenAiBackendTest, RetriesA503ThenSucceeds) {
  FakeOpenAiServer& server = Serve([](int call, const json&) {
    return call == 0 ? Error(503, "overloaded") : Completion({"\\boxed{1}"});
  });
  auto backend = Make(Options(server));
  ASSERT_NE(backend, nullptr);
  const BatchResults results = ScoreAndWait(*backend, {Request(0)});
  ASSERT_THAT(results[0], IsOk());
  EXPECT_EQ(results[0]->first_error_step(), 1);
  EXPECT_EQ(server.calls(), 2);
}

TEST_F(OpenAiBackendTest, RetriesA429AfterItsRetryAfter) {
  FakeOpenAiServer& server = Serve([](int call, const json&) {
    if (call == 0) {
      Reply reply = Error(429, "slow down");
      reply.headers.push_back({"Retry-After", "1"});
      return reply;
    }
    return Completion({"\\boxed{0}"});
  });
  auto backend = Make(Options(server));  // backoff alone would be <= 40 ms
  ASSERT_NE(backend, nullptr);
  const absl::Time start = absl::Now();
  const BatchResults results = ScoreAndWait(*backend, {Request(0)});
  const absl::Duration elapsed = absl::Now() - start;
  ASSERT_THAT(results[0], IsOk());
  EXPECT_EQ(server.calls(), 2);
  EXPECT_GE(elapsed, absl::Milliseconds(950));
  EXPECT_LT(elapsed, absl::Seconds(5));
}

TEST_F(OpenAiBackendTest,
       PersistentServerErrorsAreUnavailableWithTheLastCause) {
  FakeOpenAiServer& server = Serve([](int call, const json&) {
    return Error(call < 2 ? 502 : 503, absl::StrCat("engine down ", call));
  });
  auto backend = Make(Options(server));
  ASSERT_NE(backend, nullptr);
  const BatchResults results = ScoreAndWait(*backend, {Request(0)});
  EXPECT_THAT(results[0],
              StatusIs(absl::StatusCode::kUnavailable,
                       ::testing::AllOf(HasSubstr("after 3 attempts"),
                                        HasSubstr("HTTP 503: engine down 2"))));
  EXPECT_EQ(server.calls(), 3);
}

TEST_F(OpenAiBackendTest, DoneMayScoreAnotherBatch) {
  FakeOpenAiServer& server =
      Serve([](int, const json&) { return Completion({"\\boxed{0}"}); });
  auto backend = Make(Options(server));
  ASSERT_NE(backend, nullptr);
  absl::Notification second_done;
  BatchResults second;
  backend->ScoreBatch({Request(0)}, [&](BatchResults first) {
    EXPECT_THAT(first, SizeIs(1));
    backend->ScoreBatch({Request(1)}, [&](BatchResults results) {
      second = std::move(results);
      second_done.Notify();
    });
  });
  ASSERT_TRUE(second_done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_THAT(second, SizeIs(1));
  ASSERT_THAT(second[0], IsOk());
  EXPECT_EQ(second[0]->trajectory_id(), "t1");
}

TEST_F(OpenAiBackendTest, DoesNotRetryA400AndKeepsTheServersMessage) {
  FakeOpenAiServer& server = Serve([](int, const json&) {
    return Error(400, "This model's maximum context length is 4096 tokens");
  });
  auto backend = Make(Options(server));
  ASSERT_NE(backend, nullptr);
  const BatchResults results = ScoreAndWait(*backend, {Request(0)});
  EXPECT_THAT(results[0],
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("maximum context length is 4096 tokens")));
  EXPECT_EQ(server.calls(), 1);
}

TEST_F(OpenAiBackendTest, TimesOutRetriesThenFailsWithDeadlineExceeded) {
  FakeOpenAiServer& server = Serve([](int, const json&) {
    Reply reply = Completion({"\\boxed{0}"});
    reply.delay = absl::Seconds(10);
    return reply;
  });
  OpenAiBackendOptions options = Options(server);
  options.timeout_ms = 150;
  options.max_retries = 2;
  auto backend = Make(options);
  ASSERT_NE(backend, nullptr);
  const absl::Time start = absl::Now();
  const BatchResults results = ScoreAndWait(*backend, {Request(0)});
  EXPECT_THAT(results[0], StatusIs(absl::StatusCode::kDeadlineExceeded,
                                   HasSubstr("after 3 attempts")));
  EXPECT_EQ(server.calls(), 3);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(3 * 150));
}

TEST_F(OpenAiBackendTest, ConnectionRefusedIsUnavailableAfterRetries) {
  const int port = UnusedPort();
  ASSERT_NE(port, 0);
  const std::string base_url = absl::StrCat("http://127.0.0.1:", port, "/v1");
  OpenAiBackendOptions options = OpenAiOptionsFromSpec(config::JobSpec());
  options.base_url = base_url;
  options.model = "m";
  options.max_retries = 2;
  options.initial_backoff_ms = 5;
  options.max_backoff_ms = 10;
  auto backend = Make(options);
  ASSERT_NE(backend, nullptr);
  const BatchResults results = ScoreAndWait(*backend, {Request(0)});
  EXPECT_THAT(results[0], StatusIs(absl::StatusCode::kUnavailable,
                                   HasSubstr("after 3 attempts")));
}

TEST_F(OpenAiBackendTest, NeverExceedsMaxConcurrencyAcrossBatches) {
  FakeOpenAiServer& server = Serve([](int, const json&) {
    Reply reply = Completion({"\\boxed{-1}"});
    reply.delay = absl::Milliseconds(40);
    return reply;
  });
  OpenAiBackendOptions options = Options(server);
  options.max_concurrency = 3;
  auto backend = Make(options);
  ASSERT_NE(backend, nullptr);
  absl::Notification first_done;
  BatchResults first;
  std::vector<fapo::v1::ScoreRequest> batch;
  for (int i = 0; i < 6; ++i) batch.push_back(Request(i));
  backend->ScoreBatch(batch, [&](BatchResults results) {
    first = std::move(results);
    first_done.Notify();
  });
  for (auto& request : batch) request.set_trajectory_id("second");
  const BatchResults second = ScoreAndWait(*backend, batch);
  ASSERT_TRUE(first_done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_THAT(first, SizeIs(6));
  ASSERT_THAT(second, SizeIs(6));
  for (int i = 0; i < 6; ++i) {
    ASSERT_THAT(first[i], IsOk());
    ASSERT_THAT(second[i], IsOk());
    EXPECT_EQ(first[i]->trajectory_id(), absl::StrCat("t", i));
    EXPECT_EQ(second[i]->trajectory_id(), "second");
  }
  EXPECT_EQ(server.calls(), 12);
  EXPECT_LE(server.max_concurrent(), 3);
  EXPECT_GE(server.max_concurrent(), 2);  // requests do overlap
}

TEST_F(OpenAiBackendTest, MixedBatchKeepsEachResultInItsPlace) {
  FakeOpenAiServer& server = Serve([](int, const json& request) {
    const std::string prompt = PromptOf(request);
    if (absl::StrContains(prompt, "#bad")) return Error(400, "bad request");
    if (absl::StrContains(prompt, "#broken")) return Raw(200, "{not json");
    return Completion({"\\boxed{3}"});
  });
  auto backend = Make(Options(server));
  ASSERT_NE(backend, nullptr);
  const BatchResults results = ScoreAndWait(
      *backend, {Request(0, "#ok"), Request(1, "#bad"), Request(2, "#ok"),
                 Request(3, "#broken"), Request(4, "#ok")});
  ASSERT_THAT(results, SizeIs(5));
  for (int i : {0, 2, 4}) {
    ASSERT_THAT(results[i], IsOk());
    EXPECT_EQ(results[i]->trajectory_id(), absl::StrCat("t", i));
    EXPECT_EQ(results[i]->first_error_step(), 3);
  }
  EXPECT_THAT(results[1], StatusIs(absl::StatusCode::kInvalidArgument,
                                   HasSubstr("request r1")));
  EXPECT_THAT(results[3],
              StatusIs(absl::StatusCode::kInternal, HasSubstr("request r3")));
}

TEST_F(OpenAiBackendTest, MalformedResponsesAreErrorsWithoutRetries) {
  FakeOpenAiServer& server = Serve([](int, const json& request) {
    const std::string prompt = PromptOf(request);
    if (absl::StrContains(prompt, "#notjson")) {
      return Raw(200, "<html>oops</html>");
    }
    if (absl::StrContains(prompt, "#nochoices")) return Raw(200, "{}");
    return Raw(200, R"({"choices": [{"message": {"content": 42}}]})");
  });
  auto backend = Make(Options(server));
  ASSERT_NE(backend, nullptr);
  const BatchResults results = ScoreAndWait(
      *backend,
      {Request(0, "#notjson"), Request(1, "#nochoices"), Request(2, "#type")});
  EXPECT_THAT(results[0], StatusIs(absl::StatusCode::kInternal,
                                   HasSubstr("not a JSON object")));
  EXPECT_THAT(results[1],
              StatusIs(absl::StatusCode::kInternal, HasSubstr("no choices")));
  EXPECT_THAT(results[2],
              StatusIs(absl::StatusCode::kInternal, HasSubstr("not a string")));
  EXPECT_EQ(server.calls(), 3);
}

TEST_F(OpenAiBackendTest, DestructionCancelsRequestsInFlightQuickly) {
  FakeOpenAiServer& server = Serve([](int, const json&) {
    Reply reply = Completion({"\\boxed{0}"});
    reply.delay = absl::Seconds(30);
    return reply;
  });
  OpenAiBackendOptions options = Options(server);
  options.max_concurrency = 2;  // 2 in flight, 1 waiting for a slot
  auto backend = Make(options);
  ASSERT_NE(backend, nullptr);
  std::atomic<int> calls{0};
  BatchResults out;
  backend->ScoreBatch({Request(0), Request(1), Request(2)},
                      [&](BatchResults results) {
                        out = std::move(results);
                        calls.fetch_add(1);
                      });
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (server.calls() < 2 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(server.calls(), 2);
  const absl::Time start = absl::Now();
  backend.reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(calls.load(), 1);
  ASSERT_THAT(out, SizeIs(3));
  for (const auto& result : out) {
    EXPECT_THAT(result, StatusIs(absl::StatusCode::kCancelled));
  }
}

TEST_F(OpenAiBackendTest, EmptyBatchCompletesAtOnce) {
  FakeOpenAiServer& server = Serve([](int, const json&) { return Reply{}; });
  auto backend = Make(Options(server));
  ASSERT_NE(backend, nullptr);
  EXPECT_THAT(ScoreAndWait(*backend, {}), SizeIs(0));
  EXPECT_EQ(server.calls(), 0);
}

TEST_F(OpenAiBackendTest, CreateRejectsBadOptions) {
  OpenAiBackendOptions good = OpenAiOptionsFromSpec(config::JobSpec());
  good.base_url = "http://127.0.0.1:1/v1";
  good.model = "m";
  EXPECT_THAT(ValidateOpenAiBackendOptions(good), IsOk());
  good.base_url = "https://genrm.example/v1/";
  EXPECT_THAT(ValidateOpenAiBackendOptions(good), IsOk());

  auto with = [&](std::function<void(OpenAiBackendOptions&)> change) {
    OpenAiBackendOptions options = good;
    change(options);
    return OpenAiBackend::Create(options).status();
  };
  EXPECT_THAT(
      with([](auto& o) { o.base_url = "ftp://x/v1"; }),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("base_url")));
  EXPECT_THAT(with([](auto& o) { o.base_url = "127.0.0.1:8000/v1"; }),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(with([](auto& o) { o.base_url = "http://"; }),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(with([](auto& o) { o.model = ""; }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("model")));
  EXPECT_THAT(with([](auto& o) { o.max_concurrency = 0; }),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(with([](auto& o) { o.samples = 0; }),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(with([](auto& o) { o.max_retries = -1; }),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(with([](auto& o) { o.timeout_ms = 0; }),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(
      with([](auto& o) { o.max_backoff_ms = o.initial_backoff_ms - 1; }),
      StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(with([](auto& o) { o.temperature = -1; }),
              StatusIs(absl::StatusCode::kInvalidArgument));
  const std::string empty_key = WriteTempFile("openai_empty_key", " \n\t\n");
  EXPECT_THAT(
      with([&](auto& o) { o.api_key_file = empty_key; }),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("holds no key")));
  EXPECT_THAT(with([](auto& o) { o.api_key_file = "/nonexistent/openai_key"; }),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(OpenAiBackendTest, ConcurrentBatchesFromManyThreadsAllComplete) {
  FakeOpenAiServer& server = Serve(
      [](int, const json& request) { return Completion({"\\boxed{1}"}); });
  OpenAiBackendOptions options = Options(server);
  options.max_concurrency = 4;
  auto backend = Make(options);
  ASSERT_NE(backend, nullptr);
  constexpr int kThreads = 4;
  constexpr int kBatches = 5;
  std::atomic<int> remaining{kThreads * kBatches};
  std::atomic<int> wrong{0};
  absl::Notification all_done;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int b = 0; b < kBatches; ++b) {
        const int first = (t * kBatches + b) * 2;
        backend->ScoreBatch({Request(first), Request(first + 1)},
                            [&, first](BatchResults results) {
                              bool good = results.size() == 2;
                              for (int i = 0; good && i < 2; ++i) {
                                good = results[i].ok() &&
                                       results[i]->trajectory_id() ==
                                           absl::StrCat("t", first + i);
                              }
                              if (!good) wrong.fetch_add(1);
                              if (remaining.fetch_sub(1) == 1) {
                                all_done.Notify();
                              }
                            });
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_TRUE(all_done.WaitForNotificationWithTimeout(absl::Seconds(15)));
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(server.calls(), kThreads * kBatches * 2);
}

}  // namespace
}  // namespace fapo::genrm
