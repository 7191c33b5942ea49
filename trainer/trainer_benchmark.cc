// Step time of the Trainer on the tiny arith policy (one CPU thread): a
// GRPO step of the testbed's shape (16 prompts x 8 samples, ~10 prompt and
// ~30 response tokens, 2 minibatches, micro-batches of 32), a supervised
// step (batch 128), and a checkpoint save.
#include <ATen/Parallel.h>
#include <stdlib.h>

#include <random>

#include "benchmark/benchmark.h"
#include "engine/tools/tools.h"
#include "services/files/files.h"
#include "trainer/checkpoint_manager.h"
#include "trainer/trainer.h"

namespace fapo::trainer {
namespace {

google::protobuf::RepeatedPtrField<v1::ScoredTrajectory> MakeBatch(int count) {
  std::mt19937 rng(1);
  std::uniform_int_distribution<int> token(0, 15);
  google::protobuf::RepeatedPtrField<v1::ScoredTrajectory> batch;
  for (int i = 0; i < count; ++i) {
    v1::ScoredTrajectory* scored = batch.Add();
    for (int t = 0; t < 10; ++t) {
      scored->mutable_trajectory()->add_prompt_token_ids(token(rng));
    }
    const int response = 24 + i % 12;
    for (int t = 0; t < response; ++t) {
      scored->mutable_trajectory()->add_response_token_ids(token(rng));
      scored->mutable_trajectory()->add_response_logprobs(-2.9f);
    }
    scored->set_advantage(i % 2 == 0 ? 1.0 : -1.0);
  }
  return batch;
}

std::unique_ptr<Trainer> MakeTrainer(const std::string& checkpoint_dir = "") {
  at::set_num_threads(1);
  TrainerSettings settings;
  settings.trainer.micro_batch_size = 32;
  settings.trainer.minibatches_per_step = 2;
  settings.checkpoint_dir = checkpoint_dir;
  settings.total_steps = 1 << 30;
  auto model = engine::CausalLM::FromConfig(engine::TinyArithModelConfig(), 1);
  return *Trainer::CreateWithPolicy(settings, *std::move(model));
}

void BM_TrainStep128(benchmark::State& state) {
  auto trainer = MakeTrainer();
  auto batch = MakeBatch(128);
  int64_t step = 0;
  for (auto _ : state) {
    auto result = trainer->TrainStep(++step, batch);
    if (!result.ok()) state.SkipWithError(result.status().ToString().c_str());
  }
  state.SetItemsProcessed(state.iterations() * 128);
}
BENCHMARK(BM_TrainStep128)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_SftStep128(benchmark::State& state) {
  auto trainer = MakeTrainer();
  std::vector<SftExample> examples(128);
  std::mt19937 rng(2);
  std::uniform_int_distribution<int> token(0, 15);
  for (SftExample& example : examples) {
    for (int t = 0; t < 10; ++t) example.prompt_token_ids.push_back(token(rng));
    for (int t = 0; t < 30; ++t) {
      example.response_token_ids.push_back(token(rng));
    }
  }
  int64_t step = 0;
  for (auto _ : state) {
    auto result = trainer->SftStep(++step, examples);
    if (!result.ok()) state.SkipWithError(result.status().ToString().c_str());
  }
  state.SetItemsProcessed(state.iterations() * 128);
}
BENCHMARK(BM_SftStep128)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_SaveCheckpoint(benchmark::State& state) {
  char pattern[] = "/tmp/trainer_benchmark.XXXXXX";
  if (mkdtemp(pattern) == nullptr) return;
  auto trainer = MakeTrainer(std::string(pattern) + "/checkpoints");
  auto batch = MakeBatch(8);
  int64_t step = 0;
  for (auto _ : state) {
    state.PauseTiming();
    (void)trainer->TrainStep(++step, batch);
    state.ResumeTiming();
    auto path = trainer->SaveCheckpoint(step, "snapshot");
    if (!path.ok()) state.SkipWithError(path.status().ToString().c_str());
  }
  (void)files::RemoveRecursively(pattern);
}
BENCHMARK(BM_SaveCheckpoint)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace fapo::trainer

BENCHMARK_MAIN();
