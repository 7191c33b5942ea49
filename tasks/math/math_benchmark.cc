// Throughput of the math task's hot paths: answer comparison (once per
// rollout) and JSONL loading (once per run).
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "tasks/math/math.h"

namespace fapo::tasks::math {
namespace {

// (predicted, ground truth) pairs as they come from rollouts: mostly
// integers (DAPO-Math-17k's ground truths are integers), some LaTeX.
const std::vector<std::pair<std::string, std::string>>& TypicalPairs() {
  static const auto* const kPairs =
      new std::vector<std::pair<std::string, std::string>>{
          {"34", "34"},
          {"35", "34"},
          {"1,000", "1000"},
          {"\\frac{1}{2}", "0.5"},
          {"\\dfrac{\\sqrt{3}}{2}", "\\frac{\\sqrt3}{2}"},
          {"x = 3", "3"},
          {"\\left( 1, 2 \\right)", "(1,2)"},
          {"30^\\circ", "30"},
          {"\\text{(B)}", "(B)"},
          {"-\\frac{7}{4}", "-1.75"},
      };
  return *kPairs;
}

void BM_AnswersEqual(benchmark::State& state) {
  const auto& pairs = TypicalPairs();
  size_t i = 0;
  for (auto _ : state) {
    const auto& pair = pairs[i++ % pairs.size()];
    benchmark::DoNotOptimize(AnswersEqual(pair.first, pair.second));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AnswersEqual);

void BM_AnswersEqualInteger(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(AnswersEqual("204", "204"));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AnswersEqualInteger);

// A ~1.3 KB chain of thought ending in a box: extraction plus comparison.
void BM_IsCorrectResponse(benchmark::State& state) {
  std::string response;
  for (int i = 0; i < 20; ++i) {
    absl::StrAppend(&response, "Step ", i, ": we have $x_{", i, "} = \\frac{",
                    i,
                    "}{2}$, so the "
                    "sum grows by {",
                    i, "}.\n\n");
  }
  absl::StrAppend(&response,
                  "Therefore the answer is $\\boxed{\\frac{95}{2}}$.");
  for (auto _ : state) {
    benchmark::DoNotOptimize(IsCorrectResponse(response, "47.5"));
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * response.size());
}
BENCHMARK(BM_IsCorrectResponse);

// 10,000 DAPO-layout lines with ~300-character prompts.
std::string GeneratedJsonl(int lines) {
  std::string jsonl;
  for (int i = 0; i < lines; ++i) {
    absl::StrAppend(
        &jsonl,
        R"({"data_source": "math_dapo", "prompt": [{"content": "Solve the )"
        R"(following math problem step by step. Put your final answer in )"
        R"(\\boxed{}.\n\nLet $a_1 = )",
        i,
        R"($ and $a_{n+1} = a_n^2 - a_n + 1$ for every positive integer )"
        R"($n$. Find the remainder when $a_{2025}$ is divided by $1000$, )"
        R"(and explain each step.", "role": "user"}], "ability": "MATH", )"
        R"("reward_model": {"ground_truth": ")",
        i % 1000, R"(", "style": "rule"}, "extra_info": {"index": "gen-)", i,
        R"("}})", "\n");
  }
  return jsonl;
}

constexpr int kGeneratedLines = 10000;

void BM_ParseMathProblems(benchmark::State& state) {
  const std::string jsonl = GeneratedJsonl(kGeneratedLines);
  for (auto _ : state) {
    auto problems = ParseMathProblems(jsonl, "generated.jsonl", {});
    if (!problems.ok() || problems->size() != kGeneratedLines) {
      state.SkipWithError("parse failed");
      return;
    }
  }
  state.SetItemsProcessed(state.iterations() * kGeneratedLines);
  state.SetBytesProcessed(state.iterations() * jsonl.size());
}
BENCHMARK(BM_ParseMathProblems)->Unit(benchmark::kMillisecond);

// From a file on disk (page cache warm after the first iteration).
void BM_LoadMathProblems(benchmark::State& state) {
  const std::string jsonl = GeneratedJsonl(kGeneratedLines);
  MathDataOptions options;
  options.path = absl::StrCat("/tmp/fapo_math_benchmark_", getpid(), ".jsonl");
  std::ofstream(options.path, std::ios::trunc) << jsonl;
  for (auto _ : state) {
    auto problems = LoadMathProblems(options);
    if (!problems.ok() || problems->size() != kGeneratedLines) {
      state.SkipWithError("load failed");
      break;
    }
  }
  std::remove(options.path.c_str());
  state.SetItemsProcessed(state.iterations() * kGeneratedLines);
  state.SetBytesProcessed(state.iterations() * jsonl.size());
}
BENCHMARK(BM_LoadMathProblems)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace fapo::tasks::math

BENCHMARK_MAIN();
