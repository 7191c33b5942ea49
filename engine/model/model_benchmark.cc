// Throughput of the model on the CPU, one thread: batched sampling with the
// KV cache on a tiny Qwen3 (the default model of the quick-start runs), and
// the trainer's forward + backward of ComputeLogProbs.
//
//   ninja -C build model_benchmark && build/bench/model_benchmark
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "benchmark/benchmark.h"
#include "engine/checkpoint/model_config.h"
#include "engine/model/model.h"

namespace fapo::engine {
namespace {

// 3 layers, width 64, 4 heads (2 KV heads, head_dim 16), vocabulary 32.
ModelConfig TinyQwen3() {
  ModelConfig c;
  c.family = ModelFamily::kQwen3;
  c.vocab_size = 32;
  c.hidden_size = 64;
  c.intermediate_size = 128;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.max_position_embeddings = 256;
  c.qk_norm = true;
  c.tie_word_embeddings = true;
  return c;
}

std::unique_ptr<CausalLM> MakeModel() {
  at::set_num_threads(1);
  auto model = CausalLM::FromConfig(TinyQwen3(), 1);
  if (!model.ok()) return nullptr;
  return std::move(*model);
}

// 128 prompts of 8 tokens, 40 sampled tokens each (no stop tokens).
void BM_GenerateTinyQwen3(benchmark::State& state) {
  auto model = MakeModel();
  if (model == nullptr) {
    state.SkipWithError("FromConfig failed");
    return;
  }
  const int batch = 128;
  std::vector<std::vector<int>> prompts(batch);
  for (int i = 0; i < batch; ++i) {
    for (int j = 0; j < 8; ++j) prompts[i].push_back((i * 7 + j * 3) % 32);
  }
  SamplingOptions options;
  options.temperature = 1.0f;
  options.top_p = 0.95f;
  options.max_new_tokens = 40;
  int64_t tokens = 0;
  for (auto _ : state) {
    options.seed = state.iterations();
    auto results = Generate(*model, prompts, options);
    if (!results.ok()) {
      state.SkipWithError(std::string(results.status().message()).c_str());
      return;
    }
    for (const auto& r : *results) tokens += r.token_ids.size();
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(tokens),
                                                  benchmark::Counter::kIsRate);
}
BENCHMARK(BM_GenerateTinyQwen3)->Unit(benchmark::kMillisecond)->UseRealTime();

// Forward + backward of ComputeLogProbs (with entropy) on 128 x 48 tokens.
void BM_LogProbsForwardBackward(benchmark::State& state) {
  auto model = MakeModel();
  if (model == nullptr) {
    state.SkipWithError("FromConfig failed");
    return;
  }
  model->SetRequiresGrad(true);
  at::Tensor ids =
      at::randint(32, {128, 48}, at::TensorOptions().dtype(at::kLong));
  at::Tensor mask = at::ones_like(ids);
  for (auto _ : state) {
    auto result = ComputeLogProbs(*model, ids, mask, /*with_entropy=*/true);
    if (!result.ok()) {
      state.SkipWithError(std::string(result.status().message()).c_str());
      return;
    }
    (result->logprobs.sum() + 0.01 * result->entropy.sum()).backward();
    for (at::Tensor& p : model->parameters()) p.mutable_grad().reset();
  }
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(128 * 48) * state.iterations(),
                         benchmark::Counter::kIsRate);
}
BENCHMARK(BM_LogProbsForwardBackward)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace fapo::engine

BENCHMARK_MAIN();
