// Encode/decode throughput of the Qwen3 tokenizer on mixed English and code.
// Run: FAPO_SOURCE_DIR=<repo> build/bench/tokenizer_benchmark
// (FAPO_SOURCE_DIR defaults to the source tree this was built from).
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "engine/tokenizer/chat_format.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/tokenizer_test_data.h"

namespace fapo::engine {
namespace {

const Tokenizer& Qwen3() {
  static const Tokenizer* const tokenizer = [] {
    setenv("FAPO_SOURCE_DIR", FAPO_TOKENIZER_BENCHMARK_SOURCE_DIR,
           /*overwrite=*/0);
    auto loaded = testing::Qwen3Tokenizer();
    if (!loaded.ok()) {
      std::fprintf(stderr, "cannot load Qwen3 tokenizer: %s\n",
                   loaded.status().ToString().c_str());
      std::abort();
    }
    return *loaded;
  }();
  return *tokenizer;
}

// About `bytes` of English prose and code, deterministic.
std::string MixedText(size_t bytes, uint32_t seed) {
  static const char* const kWords[] = {
      "the",      "model",     "learns",  "to",        "reason",
      "about",    "each",      "step",    "before",    "it",
      "answers",  "and",       "rewards", "flawed",    "but",
      "positive", "rollouts",  "are",     "penalised", "while",
      "training", "continues", "with",    "a",         "policy",
      "gradient", "estimate",  "over",    "groups",    "of",
      "samples",  "generated", "by",      "Qwen3",     "on",
      "math",     "problems",  "like",    "these",     "ones",
      "however",  "its",       "we'll",   "don't",     "GPU",
      "memory",   "bandwidth", "matters"};
  static const char* const kCode[] = {
      "def compute_advantage(rewards, baseline):\n"
      "    return [r - baseline for r in rewards]\n\n",
      "for (int step = 0; step < num_steps; ++step) {\n"
      "  loss += policy.LogProb(actions[step]) * advantages[step];\n}\n",
      "if (!status.ok()) return status;  // propagate\n",
      "{\"learning_rate\": 1e-6, \"batch_size\": 512, \"clip\": 0.2}\n",
      "    x = torch.softmax(logits / temperature, dim=-1)\n",
  };
  std::mt19937 random(seed);
  std::string text;
  while (text.size() < bytes) {
    if (random() % 4 == 0) {
      text += kCode[random() % (sizeof(kCode) / sizeof(kCode[0]))];
      continue;
    }
    const int words = 8 + random() % 20;
    for (int i = 0; i < words; ++i) {
      if (i > 0) text += ' ';
      std::string word =
          kWords[random() % (sizeof(kWords) / sizeof(kWords[0]))];
      if (i == 0) word[0] = static_cast<char>(std::toupper(word[0]));
      text += word;
      if (random() % 12 == 0) absl::StrAppend(&text, " ", random() % 100000);
      if (random() % 10 == 0) text += ',';
    }
    text += random() % 5 == 0 ? ".\n\n" : ". ";
  }
  return text;
}

// Words of random letters: nearly every word misses the BPE cache.
std::string RandomWords(size_t bytes, uint32_t seed) {
  std::mt19937 random(seed);
  std::string text;
  while (text.size() < bytes) {
    const int length = 3 + random() % 10;
    for (int i = 0; i < length; ++i)
      text += static_cast<char>('a' + random() % 26);
    text += ' ';
  }
  return text;
}

void RunEncode(benchmark::State& state, const std::string& text) {
  const Tokenizer& tokenizer = Qwen3();
  size_t tokens = 0;
  for (auto _ : state) {
    std::vector<int> ids = tokenizer.Encode(text);
    tokens += ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(text.size()));
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(tokens),
                                                  benchmark::Counter::kIsRate);
  state.counters["bytes/token"] = static_cast<double>(text.size()) *
                                  state.iterations() /
                                  static_cast<double>(tokens);
}

void BM_EncodeMixedEnglishCode(benchmark::State& state) {
  const std::string text = MixedText(static_cast<size_t>(state.range(0)), 1);
  // FAPO_TOKENIZER_BENCH_DUMP=<file>: write the text out, e.g. to time
  // Hugging Face on the same input.
  if (const char* dump = std::getenv("FAPO_TOKENIZER_BENCH_DUMP")) {
    std::ofstream(dump, std::ios::binary) << text;
  }
  RunEncode(state, text);
}
BENCHMARK(BM_EncodeMixedEnglishCode)->Arg(64 << 10)->Arg(1 << 20);

void BM_EncodeRandomWordsMostlyUncached(benchmark::State& state) {
  // A fresh text each iteration so the cache cannot warm up.
  const Tokenizer& tokenizer = Qwen3();
  size_t tokens = 0;
  size_t bytes = 0;
  uint32_t seed = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const std::string text = RandomWords(64 << 10, ++seed);
    state.ResumeTiming();
    std::vector<int> ids = tokenizer.Encode(text);
    tokens += ids.size();
    bytes += text.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(tokens),
                                                  benchmark::Counter::kIsRate);
}
BENCHMARK(BM_EncodeRandomWordsMostlyUncached);

void BM_EncodeChatPrompt(benchmark::State& state) {
  const Tokenizer& tokenizer = Qwen3();
  const std::string prompt = FormatChatML(
      {{"system", "You are a careful mathematician. Think step by step."},
       {"user", "What is 123 * 456 + 789? Show your work."}},
      /*add_generation_prompt=*/true);
  for (auto _ : state) {
    std::vector<int> ids = tokenizer.Encode(prompt);
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(prompt.size()));
}
BENCHMARK(BM_EncodeChatPrompt);

void BM_DecodeMixedEnglishCode(benchmark::State& state) {
  const Tokenizer& tokenizer = Qwen3();
  const std::string text = MixedText(64 << 10, 2);
  const std::vector<int> ids = tokenizer.Encode(text);
  for (auto _ : state) {
    auto decoded = tokenizer.Decode(ids);
    benchmark::DoNotOptimize(decoded);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(text.size()));
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(ids.size()) * state.iterations(),
                         benchmark::Counter::kIsRate);
}
BENCHMARK(BM_DecodeMixedEnglishCode);

void BM_LoadQwen3TokenizerJson(benchmark::State& state) {
  Qwen3();  // unpacks the JSON once
  const std::string json = *testing::Qwen3TokenizerJson();
  for (auto _ : state) {
    auto tokenizer = Tokenizer::FromJson(json);
    benchmark::DoNotOptimize(tokenizer);
  }
}
BENCHMARK(BM_LoadQwen3TokenizerJson)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);

}  // namespace
}  // namespace fapo::engine

BENCHMARK_MAIN();
