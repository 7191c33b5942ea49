// Throughput of the arith task's hot paths: the checker (run on every
// rollout) and problem generation (every prompt).
//
//   ninja -C build fapo_arith arith_benchmark && build/bench/arith_benchmark
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "tasks/arith/arith.h"

namespace fapo::tasks::arith {
namespace {

constexpr int kPoolSize = 4096;

struct Rollout {
  Problem problem;
  std::string prompt;
  std::string response;
};

// A pool like a policy's rollouts: the warm-up corpus's mix (65% clean, 25%
// half slips, 10% wrong slips) under `options`.
std::vector<Rollout> MakePool(const ArithOptions& options) {
  CorpusGenerator corpus =
      *CorpusGenerator::Create(options, CorpusOptions(), /*seed=*/1);
  std::vector<Rollout> pool;
  for (int i = 0; i < kPoolSize; ++i) {
    CorpusRecord record = *corpus.Next();
    Problem problem = *ParsePrompt(record.prompt);
    pool.push_back({std::move(problem), std::move(record.prompt),
                    std::move(record.response)});
  }
  return pool;
}

ArithOptions OptionsFor(const benchmark::State& state) {
  ArithOptions options;  // the testbed: 2-6 operations, mod 10, answer mod 5
  if (state.range(0) == 1) {
    options.min_ops = 32;  // long traces
    options.max_ops = 64;
    options.operand_max = 99;
    options.value_modulus = 1000;
    options.answer_modulus = 10;
  }
  return options;
}

void BM_Check(benchmark::State& state) {
  const ArithOptions options = OptionsFor(state);
  const std::vector<Rollout> pool = MakePool(options);
  const Checker checker = *Checker::Create(options);
  size_t i = 0, bytes = 0;
  for (auto _ : state) {
    const Rollout& rollout = pool[i++ % pool.size()];
    benchmark::DoNotOptimize(checker.Check(rollout.problem, rollout.response));
    bytes += rollout.response.size();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_Check)->Arg(0)->Arg(1);

// As the `rule` GenRM sees it: the prompt text is parsed on every call.
void BM_CheckPromptText(benchmark::State& state) {
  const ArithOptions options = OptionsFor(state);
  const std::vector<Rollout> pool = MakePool(options);
  const Checker checker = *Checker::Create(options);
  size_t i = 0;
  for (auto _ : state) {
    const Rollout& rollout = pool[i++ % pool.size()];
    benchmark::DoNotOptimize(
        checker.CheckPromptText(rollout.prompt, rollout.response));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CheckPromptText)->Arg(0)->Arg(1);

void BM_GenerateProblem(benchmark::State& state) {
  ProblemGenerator generator =
      *ProblemGenerator::Create(OptionsFor(state), /*seed=*/1);
  for (auto _ : state) benchmark::DoNotOptimize(generator.Next());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GenerateProblem)->Arg(0)->Arg(1);

// A prompt with its text and ground truth, as the scheduler needs them.
void BM_GeneratePrompt(benchmark::State& state) {
  const ArithOptions options = OptionsFor(state);
  ProblemGenerator generator = *ProblemGenerator::Create(options, /*seed=*/1);
  for (auto _ : state) {
    const Problem problem = generator.Next();
    benchmark::DoNotOptimize(FormatPrompt(problem));
    benchmark::DoNotOptimize(GroundTruth(problem, options));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GeneratePrompt)->Arg(0)->Arg(1);

void BM_CorpusRecord(benchmark::State& state) {
  CorpusGenerator corpus =
      *CorpusGenerator::Create(OptionsFor(state), CorpusOptions(), 1);
  for (auto _ : state) benchmark::DoNotOptimize(corpus.Next());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CorpusRecord)->Arg(0)->Arg(1);

// The default bench (1000 records, half of them slips; lucky slips are
// found by rejection).
void BM_FlawedPositiveBench(benchmark::State& state) {
  uint64_t seed = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        GenerateFlawedPositiveBench(ArithOptions(), BenchOptions(), ++seed));
  }
  state.SetItemsProcessed(state.iterations() * BenchOptions().num_records);
}
BENCHMARK(BM_FlawedPositiveBench)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace fapo::tasks::arith

BENCHMARK_MAIN();
