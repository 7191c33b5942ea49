// Throughput of the per-step algorithm work the scheduler does: rewards,
// GRPO advantages and the dynamic-sampling filter over 1,000,000
// trajectories, and GenRM verdict parsing.
//
//   ninja -C build algorithm_benchmark && build/bench/algorithm_benchmark
#include <cstddef>
#include <random>
#include <string>
#include <vector>

#include "algorithm/advantages.h"
#include "algorithm/rewards.h"
#include "algorithm/verdict.h"
#include "benchmark/benchmark.h"

namespace fapo::algorithm {
namespace {

constexpr int kNumTrajectories = 1000000;

// Half correct, a third of those flawed, lengths around the overlong ramp;
// every tenth group all wrong so that dynamic sampling has work to do.
std::vector<RolloutJudgement> RandomJudgements(int group_size) {
  std::mt19937_64 rng(1);
  std::bernoulli_distribution correct(0.5);
  std::bernoulli_distribution flawed(0.3);
  std::uniform_int_distribution<int> length(100, 4200);
  std::vector<RolloutJudgement> judgements(kNumTrajectories);
  for (int i = 0; i < kNumTrajectories; ++i) {
    const bool all_wrong = (i / group_size) % 10 == 0;
    judgements[i].answer_correct = !all_wrong && correct(rng);
    judgements[i].flawed = flawed(rng);
    judgements[i].response_tokens = length(rng);
  }
  return judgements;
}

RewardOptions BenchRewardOptions() {
  RewardOptions options;
  options.overlong.enabled = true;
  options.overlong.max_response_tokens = 4096;
  options.overlong.buffer_tokens = 512;
  return options;
}

// The whole per-batch pipeline: rewards, advantages, dynamic sampling.
void BM_RewardsAdvantagesFilter(benchmark::State& state) {
  const int group_size = static_cast<int>(state.range(0));
  const std::vector<RolloutJudgement> judgements = RandomJudgements(group_size);
  const std::vector<int> group_sizes(kNumTrajectories / group_size, group_size);
  const RewardOptions reward_options = BenchRewardOptions();
  const AdvantageOptions advantage_options;
  std::vector<double> rewards(kNumTrajectories);
  std::vector<double> advantages(kNumTrajectories);
  for (auto _ : state) {
    if (!ComputeRewards(judgements, reward_options, absl::MakeSpan(rewards))
             .ok() ||
        !ComputeBatchAdvantages(rewards, group_sizes, advantage_options,
                                absl::MakeSpan(advantages))
             .ok()) {
      state.SkipWithError("compute failed");
      return;
    }
    auto filtered = FilterGroupsWithoutSignal(rewards, group_sizes);
    benchmark::DoNotOptimize(filtered);
    benchmark::DoNotOptimize(advantages.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * kNumTrajectories);
  state.SetBytesProcessed(state.iterations() * kNumTrajectories *
                          static_cast<int64_t>(sizeof(RolloutJudgement)));
}
BENCHMARK(BM_RewardsAdvantagesFilter)
    ->Arg(8)
    ->Arg(16)
    ->Unit(benchmark::kMillisecond);

// The stages on their own (group size 8).
void BM_RewardsOnly(benchmark::State& state) {
  const std::vector<RolloutJudgement> judgements = RandomJudgements(8);
  const RewardOptions options = BenchRewardOptions();
  std::vector<double> rewards(kNumTrajectories);
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        ComputeRewards(judgements, options, absl::MakeSpan(rewards)));
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * kNumTrajectories);
  state.SetBytesProcessed(state.iterations() * kNumTrajectories *
                          static_cast<int64_t>(sizeof(RolloutJudgement)));
}
BENCHMARK(BM_RewardsOnly)->Unit(benchmark::kMillisecond);

void BM_AdvantagesOnly(benchmark::State& state) {
  const int group_size = static_cast<int>(state.range(0));
  std::vector<double> rewards(kNumTrajectories);
  (void)ComputeRewards(RandomJudgements(group_size), BenchRewardOptions(),
                       absl::MakeSpan(rewards));
  const std::vector<int> group_sizes(kNumTrajectories / group_size, group_size);
  std::vector<double> advantages(kNumTrajectories);
  for (auto _ : state) {
    benchmark::DoNotOptimize(ComputeBatchAdvantages(
        rewards, group_sizes, AdvantageOptions(), absl::MakeSpan(advantages)));
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * kNumTrajectories);
  state.SetBytesProcessed(state.iterations() * kNumTrajectories *
                          static_cast<int64_t>(sizeof(double)));
}
BENCHMARK(BM_AdvantagesOnly)->Arg(8)->Arg(16)->Unit(benchmark::kMillisecond);

void BM_DynamicSamplingOnly(benchmark::State& state) {
  std::vector<double> rewards(kNumTrajectories);
  (void)ComputeRewards(RandomJudgements(8), RewardOptions(),
                       absl::MakeSpan(rewards));
  const std::vector<int> group_sizes(kNumTrajectories / 8, 8);
  for (auto _ : state) {
    auto filtered = FilterGroupsWithoutSignal(rewards, group_sizes);
    benchmark::DoNotOptimize(filtered);
  }
  state.SetItemsProcessed(state.iterations() * kNumTrajectories);
  state.SetBytesProcessed(state.iterations() * kNumTrajectories *
                          static_cast<int64_t>(sizeof(double)));
}
BENCHMARK(BM_DynamicSamplingOnly)->Unit(benchmark::kMillisecond);

// ~2 KB, the shape FAPO-GenRM-4B writes: a review per paragraph, then the
// index in a box.
std::string RealisticCritique() {
  std::string text = "Let me check the solution paragraph by paragraph.\n\n";
  const char* const reviews[] = {
      "restates the problem: we need the sum of the real roots of "
      "$x^2 - 5x + 6 = 0$. This matches the problem statement exactly.",
      "factors the quadratic as $(x-2)(x-3)$. Expanding gives "
      "$x^2 - 5x + 6$, so the factorisation is correct.",
      "concludes that $x = 2$ or $x = 3$ by the zero-product property. "
      "This step is valid.",
      "claims that by Vieta's formulas the product of the roots is $-6$ and "
      "therefore the sum is $5$. The product is $c/a = 6$, not $-6$, and the "
      "sum does not follow from the product at all. The number $5$ happens "
      "to be right, but the reasoning is wrong.",
      "reports $5$, which matches the ground truth, but it relies on the "
      "faulty argument of the previous paragraph.",
  };
  int paragraph = 0;
  while (text.size() < 1900) {
    text += "**Paragraph " + std::to_string(paragraph) + "** " +
            reviews[paragraph % 5] + "\n\n";
    ++paragraph;
  }
  text += "The earliest error is in paragraph 3.\n\n\\boxed{3}";
  return text;
}

void RunParse(benchmark::State& state, const std::string& text, int num_steps) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(ParseVerdict(text, num_steps));
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(text.size()));
  state.counters["bytes_per_output"] = static_cast<double>(text.size());
}

void BM_ParseVerdictRealistic(benchmark::State& state) {
  const std::string text = RealisticCritique();
  if (ParseVerdict(text, 8).first_error_step != 3) {
    state.SkipWithError("realistic critique did not parse to 3");
    return;
  }
  RunParse(state, text, 8);
}
BENCHMARK(BM_ParseVerdictRealistic);

// Decoy boxes everywhere (\boxedx is not a box, so the scan must go on),
// then the answer under deep nesting: every byte is scanned, most twice.
void BM_ParseVerdictWorstCase(benchmark::State& state) {
  const int bytes = static_cast<int>(state.range(0));
  std::string text;
  while (static_cast<int>(text.size()) < bytes / 2)
    text += "\\boxed{1}\\boxedx";
  const int depth = bytes / 4;
  text += "\\boxed{";
  text.append(depth, '{');
  text += "-1";
  text.append(depth + 1, '}');
  if (ParseVerdict(text, 8).first_error_step != -1) {
    state.SkipWithError("worst case did not parse to -1");
    return;
  }
  RunParse(state, text, 8);
}
BENCHMARK(BM_ParseVerdictWorstCase)->Arg(2048)->Arg(64 << 10);

// No box at all in a text of backslashes: the backward scan checks every
// byte as a possible command start.
void BM_ParseVerdictAllBackslashes(benchmark::State& state) {
  const std::string text(static_cast<size_t>(state.range(0)), '\\');
  RunParse(state, text, 8);
}
BENCHMARK(BM_ParseVerdictAllBackslashes)->Arg(2048);

void BM_MajorityVote(benchmark::State& state) {
  const int samples = static_cast<int>(state.range(0));
  std::vector<ParsedVerdict> verdicts;
  for (int i = 0; i < samples; ++i) {
    verdicts.push_back({VerdictStatus::kOk, i % 3 - 1});
  }
  for (auto _ : state) benchmark::DoNotOptimize(MajorityVote(verdicts));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MajorityVote)->Arg(4)->Arg(16);

}  // namespace
}  // namespace fapo::algorithm

BENCHMARK_MAIN();
