// ModelBackend on the tiny random arith model (engine/tools): an untrained
// model emits junk, so these tests check the mechanics (one verdict per
// request, step counts, the model's input, threads, determinism, errors,
// shutdown), and VerdictFromSamples checks the parse/vote path on
// hand-written texts.
#include "genrm_server/model/model_backend.h"

#include <atomic>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "algorithm/genrm_prompt.h"
#include "engine/tokenizer/character_tokenizer.h"
#include "engine/tokenizer/chat_format.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tools/tools.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"
#include "tests/support/subprocess.h"

namespace fapo::genrm {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::AllOf;
using ::testing::AnyOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

fapo::v1::ScoreRequest ArithRequest(int i, const std::string& solution) {
  fapo::v1::ScoreRequest request;
  request.set_request_id(absl::StrCat("r", i));
  request.set_trajectory_id(absl::StrCat("t", i));
  request.set_task("arith");
  request.set_problem("3+7*4-2");
  request.set_ground_truth("8");
  request.set_solution(solution);
  return request;
}

// Requests with 4, 3 and 5 arith steps.
std::vector<fapo::v1::ScoreRequest> SomeRequests() {
  return {ArithRequest(0, "3+7=0\n0*4=0\n0-2=8\n#8\n"),
          ArithRequest(1, "3+7=5\n5*4=0\n#8"),
          ArithRequest(2, "3+7=0\n0*4=0\n0-2=8\n#8\n#8")};
}
constexpr int kSomeRequestsSteps[] = {4, 3, 5};

// A request whose prompt is longer than the tiny model's 128 positions.
fapo::v1::ScoreRequest TooLongRequest(int i) {
  std::string solution;
  for (int line = 0; line < 40; ++line) solution += "1+1=2\n";
  return ArithRequest(i, solution);
}

class ModelBackendTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fapo::testing::TempDir("genrm-model-test-");
    ASSERT_THAT(dir_->status(), IsOk());
    ASSERT_THAT(engine::WriteTinyArithModel(dir_->path(), /*seed=*/7), IsOk());
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  static ModelBackendOptions Options() {
    ModelBackendOptions options;
    options.model_dir = dir_->path();
    options.samples = 1;
    options.temperature = 0.0f;  // greedy
    options.max_new_tokens = 12;
    return options;
  }

  static std::unique_ptr<ModelBackend> Make(ModelBackendOptions options) {
    auto backend = ModelBackend::Create(std::move(options));
    EXPECT_THAT(backend, IsOk());
    return backend.ok() ? *std::move(backend) : nullptr;
  }

  struct Scored {
    BatchResults results;
    std::thread::id done_thread;
  };

  static Scored ScoreAndWait(GenrmBackend& backend,
                             std::vector<fapo::v1::ScoreRequest> requests) {
    absl::Notification done;
    Scored out;
    std::atomic<int> calls{0};
    backend.ScoreBatch(std::move(requests), [&](BatchResults results) {
      out.results = std::move(results);
      out.done_thread = std::this_thread::get_id();
      calls.fetch_add(1);
      done.Notify();
    });
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
    EXPECT_EQ(calls.load(), 1);
    return out;
  }

  static fapo::testing::TempDir* dir_;
};

fapo::testing::TempDir* ModelBackendTest::dir_ = nullptr;

// --- The pure steps ------------------------------------------------------

TEST(GenrmStepsTest, ArithStepsAreLinesAndOtherTasksParagraphs) {
  fapo::v1::ScoreRequest request = ArithRequest(0, "3+7=0\n0*4=0\n#0\n");
  EXPECT_THAT(GenrmSteps(request), ElementsAre("3+7=0", "0*4=0", "#0"));
  request.set_solution("");
  EXPECT_THAT(GenrmSteps(request), SizeIs(0));
  request.set_solution("a\n\nb");
  EXPECT_THAT(GenrmSteps(request), ElementsAre("a", "", "b"));
  request.set_task("math");
  request.set_solution("First, x = 1.\nSo y = 2.\n\n\nThus \\boxed{3}.\n");
  EXPECT_THAT(GenrmSteps(request),
              ElementsAre("First, x = 1.\nSo y = 2.", "Thus \\boxed{3}."));
}

TEST(VerdictFromSamplesTest, OneSampleOkNoErrorJunkAndOutOfRange) {
  const fapo::v1::ScoreRequest request = ArithRequest(3, "a\nb\nc\nd");
  fapo::v1::Verdict verdict = VerdictFromSamples(
      request.trajectory_id(), 4, {"Step 1 is wrong. \\boxed{1}"}, 4096);
  EXPECT_EQ(verdict.trajectory_id(), "t3");
  EXPECT_EQ(verdict.status(), fapo::v1::VERDICT_STATUS_OK);
  EXPECT_EQ(verdict.first_error_step(), 1);
  EXPECT_EQ(verdict.num_steps(), 4);
  EXPECT_EQ(verdict.num_samples(), 1);
  EXPECT_EQ(verdict.num_agreeing(), 1);
  EXPECT_TRUE(verdict.answer_correct());
  EXPECT_EQ(verdict.critique(), "Step 1 is wrong. \\boxed{1}");
  EXPECT_FALSE(verdict.has_latency());
  EXPECT_EQ(verdict.genrm_server_id(), "");

  verdict =
      VerdictFromSamples(request.trajectory_id(), 4, {"\\boxed{-1}"}, 4096);
  EXPECT_EQ(verdict.status(), fapo::v1::VERDICT_STATUS_OK);
  EXPECT_EQ(verdict.first_error_step(), -1);

  verdict =
      VerdictFromSamples(request.trajectory_id(), 4, {"0+1=\n#\n77"}, 4096);
  EXPECT_EQ(verdict.status(), fapo::v1::VERDICT_STATUS_UNPARSABLE);
  EXPECT_EQ(verdict.first_error_step(), -1);
  EXPECT_EQ(verdict.num_agreeing(), 0);

  verdict =
      VerdictFromSamples(request.trajectory_id(), 4, {"\\boxed{4}"}, 4096);
  EXPECT_EQ(verdict.status(), fapo::v1::VERDICT_STATUS_INVALID);
  EXPECT_EQ(verdict.first_error_step(), -1);
}

TEST(VerdictFromSamplesTest, MajorityOfThreeAndTruncatedCritique) {
  const fapo::v1::ScoreRequest request = ArithRequest(0, "a\nb\nc\nd");
  fapo::v1::Verdict verdict = VerdictFromSamples(
      request.trajectory_id(), 4, {"\\boxed{2}", "junk", "so \\boxed{2}"}, 5);
  EXPECT_EQ(verdict.status(), fapo::v1::VERDICT_STATUS_OK);
  EXPECT_EQ(verdict.first_error_step(), 2);
  EXPECT_EQ(verdict.num_samples(), 3);
  EXPECT_EQ(verdict.num_agreeing(), 2);
  EXPECT_EQ(verdict.critique(), "\\boxe");

  verdict =
      VerdictFromSamples(request.trajectory_id(), 4,
                         {"\\boxed{-1}", "\\boxed{3}", "\\boxed{-1}"}, 4096);
  EXPECT_EQ(verdict.status(), fapo::v1::VERDICT_STATUS_OK);
  EXPECT_EQ(verdict.first_error_step(), -1);
  EXPECT_EQ(verdict.num_agreeing(), 2);

  verdict = VerdictFromSamples(request.trajectory_id(), 4,
                               {"junk", "\\boxed{9}", "x"}, 4096);
  EXPECT_EQ(verdict.status(), fapo::v1::VERDICT_STATUS_INVALID);
  EXPECT_EQ(verdict.num_samples(), 3);
  EXPECT_EQ(verdict.num_agreeing(), 0);

  // A cut never splits a UTF-8 character: "é" is 2 bytes.
  verdict = VerdictFromSamples(request.trajectory_id(), 4, {"a\xC3\xA9z"}, 2);
  EXPECT_EQ(verdict.critique(), "a");
}

// --- The backend on the tiny model ----------------------------------------

TEST_F(ModelBackendTest, ModelInputIsTheEncodedChatMLPrompt) {
  ModelBackendOptions options = Options();
  std::vector<std::vector<std::vector<int>>> seen;
  absl::Mutex mu;
  options.prompt_observer = [&](const std::vector<std::vector<int>>& prompts) {
    absl::MutexLock lock(&mu);
    seen.push_back(prompts);
  };
  std::unique_ptr<ModelBackend> backend = Make(options);
  ASSERT_NE(backend, nullptr);
  auto tokenizer = engine::Tokenizer::FromFile(
      absl::StrCat(dir_->path(), "/tokenizer.json"));
  ASSERT_THAT(tokenizer, IsOk());

  const std::vector<fapo::v1::ScoreRequest> requests = SomeRequests();
  std::vector<std::vector<int>> expected;
  for (const fapo::v1::ScoreRequest& request : requests) {
    const std::string prompt = algorithm::BuildGenrmPrompt(
        request.problem(), request.ground_truth(), GenrmSteps(request));
    const std::string text =
        engine::FormatChatML({engine::ChatMessage{"user", prompt}}, true);
    EXPECT_EQ(GenrmModelInputText(request, GenrmPromptFormat::kChatML), text);
    EXPECT_EQ(GenrmModelInputText(request, GenrmPromptFormat::kRaw), prompt);
    expected.push_back((*tokenizer)->Encode(text));
    EXPECT_EQ(backend->ModelInput(request), expected.back());
  }
  ScoreAndWait(*backend, requests);
  absl::MutexLock lock(&mu);
  ASSERT_THAT(seen, SizeIs(1));  // the whole batch in one Generate call
  EXPECT_EQ(seen[0], expected);
}

TEST_F(ModelBackendTest, AnswersEveryRequestOffTheCallersThread) {
  std::unique_ptr<ModelBackend> backend = Make(Options());
  ASSERT_NE(backend, nullptr);
  EXPECT_EQ(backend->name(), "model");
  const Scored scored = ScoreAndWait(*backend, SomeRequests());
  EXPECT_NE(scored.done_thread, std::this_thread::get_id());
  ASSERT_THAT(scored.results, SizeIs(3));
  for (int i = 0; i < 3; ++i) {
    ASSERT_THAT(scored.results[i], IsOk());
    const fapo::v1::Verdict& verdict = *scored.results[i];
    EXPECT_EQ(verdict.trajectory_id(), absl::StrCat("t", i));
    EXPECT_EQ(verdict.num_steps(), kSomeRequestsSteps[i]);
    EXPECT_THAT(verdict.status(), AnyOf(fapo::v1::VERDICT_STATUS_OK,
                                        fapo::v1::VERDICT_STATUS_UNPARSABLE,
                                        fapo::v1::VERDICT_STATUS_INVALID));
    EXPECT_EQ(verdict.num_samples(), 1);
    EXPECT_FALSE(verdict.has_latency());
  }

  // An empty batch too is answered on the worker thread.
  const Scored empty = ScoreAndWait(*backend, {});
  EXPECT_THAT(empty.results, SizeIs(0));
  EXPECT_NE(empty.done_thread, std::this_thread::get_id());
}

TEST_F(ModelBackendTest, GreedyIsDeterministicAcrossBackends) {
  std::unique_ptr<ModelBackend> first = Make(Options());
  std::unique_ptr<ModelBackend> second = Make(Options());
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  const Scored a = ScoreAndWait(*first, SomeRequests());
  const Scored b = ScoreAndWait(*second, SomeRequests());
  ASSERT_THAT(a.results, SizeIs(3));
  ASSERT_THAT(b.results, SizeIs(3));
  for (int i = 0; i < 3; ++i) {
    ASSERT_THAT(a.results[i], IsOk());
    ASSERT_THAT(b.results[i], IsOk());
    EXPECT_EQ(a.results[i]->critique(), b.results[i]->critique());
    EXPECT_EQ(a.results[i]->status(), b.results[i]->status());
    EXPECT_EQ(a.results[i]->first_error_step(),
              b.results[i]->first_error_step());
  }
}

TEST_F(ModelBackendTest, SampledVotesOverKAndSameSeedSameVerdicts) {
  ModelBackendOptions options = Options();
  options.samples = 3;
  options.temperature = 1.0f;
  options.seed = 42;
  std::atomic<int> rows{0};
  std::atomic<int> calls{0};
  options.prompt_observer = [&](const std::vector<std::vector<int>>& prompts) {
    rows.fetch_add(static_cast<int>(prompts.size()));
    calls.fetch_add(1);
  };
  std::unique_ptr<ModelBackend> first = Make(options);
  std::unique_ptr<ModelBackend> second = Make(options);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  const Scored a = ScoreAndWait(*first, SomeRequests());
  const Scored b = ScoreAndWait(*second, SomeRequests());
  EXPECT_EQ(calls.load(), 2);  // one Generate call per batch
  EXPECT_EQ(rows.load(), 2 * 3 * 3);
  ASSERT_THAT(a.results, SizeIs(3));
  ASSERT_THAT(b.results, SizeIs(3));
  for (int i = 0; i < 3; ++i) {
    ASSERT_THAT(a.results[i], IsOk());
    ASSERT_THAT(b.results[i], IsOk());
    EXPECT_EQ(a.results[i]->num_samples(), 3);
    EXPECT_EQ(a.results[i]->num_steps(), kSomeRequestsSteps[i]);
    EXPECT_EQ(a.results[i]->critique(), b.results[i]->critique());
    EXPECT_EQ(a.results[i]->status(), b.results[i]->status());
    EXPECT_EQ(a.results[i]->first_error_step(),
              b.results[i]->first_error_step());
    EXPECT_EQ(a.results[i]->num_agreeing(), b.results[i]->num_agreeing());
  }
}

TEST_F(ModelBackendTest, MaxBatchPromptsSplitsGenerateCalls) {
  ModelBackendOptions options = Options();
  options.samples = 2;
  options.temperature = 1.0f;
  options.max_batch_prompts = 4;  // two requests of two samples per call
  std::vector<size_t> sizes;
  absl::Mutex mu;
  options.prompt_observer = [&](const std::vector<std::vector<int>>& prompts) {
    absl::MutexLock lock(&mu);
    sizes.push_back(prompts.size());
  };
  std::unique_ptr<ModelBackend> backend = Make(options);
  ASSERT_NE(backend, nullptr);
  const Scored scored = ScoreAndWait(*backend, SomeRequests());
  ASSERT_THAT(scored.results, SizeIs(3));
  for (const auto& result : scored.results) {
    ASSERT_THAT(result, IsOk());
    EXPECT_EQ(result->num_samples(), 2);
  }
  absl::MutexLock lock(&mu);
  EXPECT_THAT(sizes, ElementsAre(4, 2));
}

TEST_F(ModelBackendTest, TooLongPromptFailsOnlyThatRequest) {
  std::unique_ptr<ModelBackend> backend = Make(Options());
  ASSERT_NE(backend, nullptr);
  const size_t too_long_tokens = backend->ModelInput(TooLongRequest(1)).size();
  ASSERT_GT(too_long_tokens, 128u);
  const Scored scored = ScoreAndWait(
      *backend, {SomeRequests()[0], TooLongRequest(1), SomeRequests()[2]});
  ASSERT_THAT(scored.results, SizeIs(3));
  EXPECT_THAT(scored.results[0], IsOk());
  EXPECT_THAT(scored.results[1],
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("t1"),
                             HasSubstr(absl::StrCat(too_long_tokens)))));
  EXPECT_THAT(scored.results[2], IsOk());
}

TEST_F(ModelBackendTest, GenerateErrorFailsTheRequestsOfThatCall) {
  // A tokenizer one symbol larger than the model's: "T" (in the prompt's
  // text) becomes id 16, pushing <|im_end|> to id 19, outside the model's 19
  // rows, so engine::Generate rejects the ChatML prompts.
  const std::string tokenizer_path =
      absl::StrCat(dir_->path(), "/wider_tokenizer.json");
  {
    std::ofstream file(tokenizer_path);
    file << engine::MakeCharacterTokenizerJson(
        absl::StrCat(engine::kArithAlphabet, "T"),
        engine::ArithSpecialTokens());
  }
  ModelBackendOptions options = Options();
  options.tokenizer_path = tokenizer_path;
  std::unique_ptr<ModelBackend> backend = Make(options);
  ASSERT_NE(backend, nullptr);
  const Scored scored = ScoreAndWait(
      *backend, {SomeRequests()[0], TooLongRequest(1), SomeRequests()[2]});
  ASSERT_THAT(scored.results, SizeIs(3));
  EXPECT_THAT(scored.results[0],
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("model backend: generate")));
  // The too-long request is rejected before generation, with its own error.
  EXPECT_THAT(scored.results[1],
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("t1")));
  EXPECT_THAT(scored.results[1].status().message(),
              ::testing::Not(HasSubstr("generate")));
  EXPECT_EQ(scored.results[2].status(), scored.results[0].status());

  // The backend keeps serving after a failed call.
  EXPECT_THAT(ScoreAndWait(*backend, {}).results, SizeIs(0));
}

TEST_F(ModelBackendTest, ConcurrentBatchesAllComplete) {
  std::unique_ptr<ModelBackend> backend = Make(Options());
  ASSERT_NE(backend, nullptr);
  constexpr int kThreads = 3;
  constexpr int kBatches = 3;
  absl::BlockingCounter done(kThreads * kBatches);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int b = 0; b < kBatches; ++b) {
        const int first = (t * kBatches + b) * 2;
        const std::thread::id caller = std::this_thread::get_id();
        backend->ScoreBatch(
            {ArithRequest(first, "3+7=0\n#0"), ArithRequest(first + 1, "#1")},
            [&, first, caller](BatchResults results) {
              bool good =
                  results.size() == 2 && std::this_thread::get_id() != caller;
              for (int i = 0; good && i < 2; ++i) {
                good = results[i].ok() && results[i]->trajectory_id() ==
                                              absl::StrCat("t", first + i);
              }
              if (!good) wrong.fetch_add(1);
              done.DecrementCount();
            });
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  done.Wait();
  EXPECT_EQ(wrong.load(), 0);
}

TEST_F(ModelBackendTest, DestructionCancelsQueuedBatches) {
  ModelBackendOptions options = Options();
  absl::Notification generating;
  absl::Notification release;
  options.prompt_observer = [&](const std::vector<std::vector<int>>&) {
    if (!generating.HasBeenNotified()) generating.Notify();
    release.WaitForNotification();
  };
  std::unique_ptr<ModelBackend> backend = Make(options);
  ASSERT_NE(backend, nullptr);

  std::atomic<int> first_ok{0};
  std::atomic<int> cancelled{0};
  std::atomic<int> other{0};
  std::atomic<int> calls{0};
  backend->ScoreBatch(SomeRequests(), [&](BatchResults results) {
    for (const auto& result : results) {
      (result.ok() ? first_ok : other).fetch_add(1);
    }
    calls.fetch_add(1);
  });
  ASSERT_TRUE(generating.WaitForNotificationWithTimeout(absl::Seconds(30)));
  for (int i = 0; i < 2; ++i) {
    backend->ScoreBatch(SomeRequests(), [&](BatchResults results) {
      for (const auto& result : results) {
        (absl::IsCancelled(result.status()) ? cancelled : other).fetch_add(1);
      }
      calls.fetch_add(1);
    });
  }
  // Let the running batch finish only once the destructor has begun.
  std::thread releaser([&] {
    absl::SleepFor(absl::Milliseconds(300));
    release.Notify();
  });
  backend.reset();
  releaser.join();
  EXPECT_EQ(calls.load(), 3);
  EXPECT_EQ(first_ok.load(), 3);
  EXPECT_EQ(cancelled.load(), 6);
  EXPECT_EQ(other.load(), 0);
}

TEST_F(ModelBackendTest, CreateRejectsBadOptions) {
  ModelBackendOptions options = Options();
  options.samples = 0;
  EXPECT_THAT(ModelBackend::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument));
  options = Options();
  options.top_p = 0.0f;
  EXPECT_THAT(ModelBackend::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument));
  options = Options();
  options.model_dir = absl::StrCat(dir_->path(), "/missing");
  EXPECT_FALSE(ModelBackend::Create(options).ok());
  options = Options();
  options.model_dir.clear();
  EXPECT_THAT(ModelBackend::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace fapo::genrm
