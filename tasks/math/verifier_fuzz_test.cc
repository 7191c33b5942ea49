// The verifier reads untrusted model output: random bytes and garbled LaTeX
// must never crash it, hang it, or take more than a few milliseconds.
#include <time.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tasks/math/verifier.h"

namespace fapo::tasks::math {
namespace {

// CPU time of this thread, so a busy machine (preemption) cannot fail the
// per-call bound; only work done by the verifier counts.
int64_t ThreadCpuMicros() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000000 + now.tv_nsec / 1000;
}

// Generous for inputs of a few hundred bytes (they take microseconds), yet
// far below what a quadratic or exponential path would need.
constexpr int64_t kMaxMicrosPerInput = 5000;
constexpr int kInputs = 20000;
// About 1 MB each: linear work takes ~0.1 s; a quadratic path would take
// minutes, so the bound separates them with room for sanitizer builds.
constexpr int64_t kMaxMicrosPerHugeInput = 2000000;

// Runs `work` and returns its thread CPU time; when that exceeds the bound,
// runs it twice more and returns the least of the three. An algorithmic
// problem is slow every time, while a one-off stall (a page fault, a
// descheduled vCPU billed to the thread) is not.
template <typename Work>
int64_t MinCpuMicros(const Work& work) {
  int64_t best = -1;
  for (int attempt = 0; attempt < 3; ++attempt) {
    const int64_t start = ThreadCpuMicros();
    work();
    const int64_t elapsed = ThreadCpuMicros() - start;
    if (best < 0 || elapsed < best) best = elapsed;
    if (best < kMaxMicrosPerInput) break;
  }
  return best;
}

std::string RandomBytes(std::mt19937_64& rng) {
  std::uniform_int_distribution<int> length(0, 300);
  std::uniform_int_distribution<int> byte(0, 255);
  std::string text(static_cast<size_t>(length(rng)), '\0');
  for (char& c : text) c = static_cast<char>(byte(rng));
  return text;
}

// Token soup: the pieces the normaliser treats specially, in random order
// and nesting, so the special paths (unclosed groups, dangling arguments,
// deep nesting) are hit far more often than by random bytes.
std::string RandomLatex(std::mt19937_64& rng) {
  static const std::vector<std::string> kTokens = {
      "{",
      "}",
      "{",
      "}",
      "\\boxed{",
      "\\boxed ",
      "\\fbox{",
      "\\frac",
      "\\dfrac",
      "\\sqrt",
      "\\sqrt[",
      "]",
      "[",
      "(",
      ")",
      "\\left(",
      "\\right)",
      "\\left.",
      "\\right",
      "\\text{",
      "\\mathrm",
      "$",
      "$$",
      "\\$",
      "\\%",
      "%",
      "^",
      "_",
      "^\\circ",
      "^{\\circ}",
      "\\circ",
      "\\",
      "\\\\",
      "\\{",
      "\\}",
      "\\,",
      "\\!",
      "\\quad",
      " ",
      "\n",
      "~",
      "x=",
      "x",
      "y",
      "=",
      "-",
      "+",
      "/",
      ".",
      ",",
      "{,}",
      "0",
      "1",
      "2",
      "9",
      "0.5",
      "1,000",
      "\\pi",
      "\\infty",
      "\\cdot",
      "\\times",
      "\\le",
      "\xE2\x88\x92",
      "\xCF\x80",
      "\xC2\xB0",
      "\xE2\x88",
      "\xFF",
      "\\theta",
      "\\frac{",
      "}{",
      "123456789012345678901234567890",
      "9223372036854775807"};
  std::uniform_int_distribution<int> count(0, 80);
  std::uniform_int_distribution<size_t> pick(0, kTokens.size() - 1);
  std::string text;
  for (int i = count(rng); i > 0; --i) text += kTokens[pick(rng)];
  return text;
}

// Runs every entry point on `text` (and against `other`), checking the
// properties that hold for any input.
void CheckOne(const std::string& text, const std::string& other) {
  const std::optional<std::string> answer = ExtractFinalAnswer(text);
  if (answer.has_value()) {
    EXPECT_FALSE(answer->empty());
    EXPECT_NE(text.find(*answer), std::string::npos);
  }
  const std::string normalized = NormalizeAnswer(text);
  EXPECT_EQ(AnswersEqual(text, other), AnswersEqual(other, text));
  EXPECT_EQ(AnswersEqual(text, text), !normalized.empty());
  IsCorrectResponse(text, other);
}

TEST(VerifierFuzzTest, RandomInputsAreSafeAndFast) {
  std::mt19937_64 rng(20251022);
  std::string previous;
  int64_t slowest_micros = 0;
  std::string slowest_input;
  for (int i = 0; i < kInputs; ++i) {
    const std::string text = i % 2 == 0 ? RandomBytes(rng) : RandomLatex(rng);
    const int64_t micros = MinCpuMicros([&] { CheckOne(text, previous); });
    if (micros > slowest_micros) {
      slowest_micros = micros;
      slowest_input = text;
    }
    previous = text;
    if (HasFailure()) {
      ADD_FAILURE() << "input #" << i << ": " << text;
      return;
    }
  }
  EXPECT_LT(slowest_micros, kMaxMicrosPerInput)
      << "slowest input: " << slowest_input;
  RecordProperty("slowest_micros", static_cast<int>(slowest_micros));
}

// Large adversarial inputs: linear time and bounded recursion mean each of
// these finishes in well under a second and does not overflow the stack.
TEST(VerifierFuzzTest, HugeAdversarialInputs) {
  auto repeat = [](const std::string& piece, size_t times) {
    std::string text;
    text.reserve(piece.size() * times);
    for (size_t i = 0; i < times; ++i) text += piece;
    return text;
  };
  const std::vector<std::string> inputs = {
      repeat("{", 1 << 20),
      repeat("}", 1 << 20),
      repeat("{", 1 << 19) + repeat("}", 1 << 19),
      repeat("(", 1 << 19) + repeat(")", 1 << 19),
      repeat("\\boxed{", 1 << 17),
      repeat("\\boxed{1}", 1 << 17),
      repeat("\\boxed ", 1 << 17),
      repeat("\\fbox{", 1 << 16) + repeat("\\boxed{", 1 << 16),
      repeat("\\frac", 1 << 18),
      repeat("\\frac{", 1 << 17) + repeat("}", 1 << 17),
      repeat("\\sqrt[", 1 << 17),
      repeat("^", 1 << 19) + repeat(" ", 1 << 19),
      repeat("^ ", 1 << 19),
      repeat(".", 1 << 20),
      repeat("1,", 1 << 19),
      repeat("9", 1 << 20),
      repeat("a ", 1 << 19),
      "\\alpha" + repeat("a", 1 << 20) + repeat(" b", 1 << 18),
      repeat("x=", 1 << 19),
      repeat("\\text{", 1 << 17),
      repeat("\\\\", 1 << 19),
  };
  for (const std::string& text : inputs) {
    const int64_t start = ThreadCpuMicros();
    ExtractFinalAnswer(text);
    EXPECT_EQ(AnswersEqual(text, "1"), AnswersEqual("1", text));
    const int64_t elapsed = ThreadCpuMicros() - start;
    EXPECT_LT(elapsed, kMaxMicrosPerHugeInput)
        << "input starting " << text.substr(0, 40);
  }
}

}  // namespace
}  // namespace fapo::tasks::math
