#include "engine/model/model.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_replace.h"
#include "engine/checkpoint/model_config.h"
#include "engine/checkpoint/safetensors.h"
#include "engine/model/model_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"
#include "tests/support/subprocess.h"

namespace fapo::engine {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::SourcePath;
using ::fapo::testing::StatusIs;
using ::fapo::testing::TempDir;
using model_testing::MaxAbsDiff;
using model_testing::ReadReference;
using model_testing::Reference;
using model_testing::Row;
using model_testing::TinyConfig;
using model_testing::ViewToTensor;
using ::testing::HasSubstr;

class ModelTest : public ::testing::Test {
 protected:
  void SetUp() override { at::set_num_threads(1); }
};

// Random weights scaled up so the logits are far from uniform (distinct
// argmaxes, sampling that differs between seeds).
std::unique_ptr<CausalLM> TinyModel(ModelFamily family, uint64_t seed = 7) {
  auto model = CausalLM::FromConfig(TinyConfig(family), seed);
  EXPECT_THAT(model, IsOk());
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : (*model)->named_parameters()) {
    if (tensor.dim() == 2) tensor.mul_(10.0);
    if (name.find("bias") != std::string::npos) {
      tensor.normal_(0.0, 0.1);
    }
  }
  return std::move(*model);
}

// ------------------------------------------------------------ HF parity

class FixtureParityTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override { at::set_num_threads(1); }
  std::string Dir() const {
    return SourcePath(std::string("engine/checkpoint/testdata/hf/") +
                      GetParam());
  }
};

TEST_P(FixtureParityTest, LogitsMatchTransformers) {
  ASSERT_OK_AND_ASSIGN(auto model, CausalLM::Load(Dir()));
  Reference ref = ReadReference(Dir() + "/reference.safetensors");
  ASSERT_TRUE(ref.logits.defined());
  torch::NoGradGuard no_grad;
  ASSERT_OK_AND_ASSIGN(at::Tensor logits, model->Forward(ref.input_ids));
  ASSERT_EQ(logits.sizes(), ref.logits.sizes());
  const double diff = MaxAbsDiff(logits, ref.logits);
  std::cout << GetParam() << " logits max |diff| " << diff << "\n";
  EXPECT_LE(diff, 1e-4);
}

TEST_P(FixtureParityTest, GreedyGenerationMatchesTransformers) {
  ASSERT_OK_AND_ASSIGN(auto model, CausalLM::Load(Dir()));
  Reference ref = ReadReference(Dir() + "/reference.safetensors");
  ASSERT_TRUE(ref.greedy_ids.defined());
  const std::vector<int> prompt = Row(ref.prompt_ids, 0);
  const std::vector<int> expected_all = Row(ref.greedy_ids, 0);
  const std::vector<int> expected(expected_all.begin() + prompt.size(),
                                  expected_all.end());
  SamplingOptions options;
  options.temperature = 0;
  options.max_new_tokens = static_cast<int>(expected.size());
  ASSERT_OK_AND_ASSIGN(auto results, Generate(*model, {prompt}, options));
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].token_ids, expected);
  EXPECT_EQ(results[0].finish_reason, FinishReason::kLength);
}

TEST_P(FixtureParityTest, LogProbsAreLogSoftmaxOfReferenceLogits) {
  ASSERT_OK_AND_ASSIGN(auto model, CausalLM::Load(Dir()));
  Reference ref = ReadReference(Dir() + "/reference.safetensors");
  ASSERT_TRUE(ref.logits.defined());
  ASSERT_OK_AND_ASSIGN(
      TokenLogProbs result,
      ComputeLogProbs(*model, ref.input_ids, at::Tensor(),
                      /*with_entropy=*/true, /*enable_grad=*/false));
  const int64_t time = ref.input_ids.size(1);
  at::Tensor log_softmax =
      at::log_softmax(ref.logits.narrow(1, 0, time - 1), -1);
  at::Tensor expected =
      log_softmax.gather(-1, ref.input_ids.narrow(1, 1, time - 1).unsqueeze(-1))
          .squeeze(-1);
  at::Tensor expected_entropy = -(log_softmax.exp() * log_softmax).sum(-1);
  const double diff = MaxAbsDiff(result.logprobs, expected);
  const double entropy_diff = MaxAbsDiff(result.entropy, expected_entropy);
  std::cout << GetParam() << " logprobs max |diff| " << diff
            << ", entropy max |diff| " << entropy_diff << "\n";
  EXPECT_LE(diff, 1e-4);
  EXPECT_LE(entropy_diff, 1e-4);
  EXPECT_FALSE(result.logprobs.requires_grad());
}

INSTANTIATE_TEST_SUITE_P(Families, FixtureParityTest,
                         ::testing::Values("qwen2", "qwen3"));

// -------------------------------------------------------------- Padding

class FamilyTest : public ::testing::TestWithParam<ModelFamily> {
 protected:
  void SetUp() override { at::set_num_threads(1); }
};

std::vector<std::vector<int>> RandomSequences(const std::vector<int>& lengths,
                                              int vocab, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<std::vector<int>> out;
  for (int length : lengths) {
    at::Tensor ids = at::randint(vocab, {1, length}, gen, at::kLong);
    out.push_back(Row(ids, 0));
  }
  return out;
}

// Pads rows to one length: left (generation) or right (training).
std::pair<at::Tensor, at::Tensor> Pad(const std::vector<std::vector<int>>& rows,
                                      bool left, int pad_id = 3) {
  size_t longest = 0;
  for (const auto& r : rows) longest = std::max(longest, r.size());
  at::Tensor ids = at::full(
      {static_cast<int64_t>(rows.size()), static_cast<int64_t>(longest)},
      pad_id, at::kLong);
  at::Tensor mask = at::zeros_like(ids);
  for (size_t i = 0; i < rows.size(); ++i) {
    const size_t offset = left ? longest - rows[i].size() : 0;
    for (size_t j = 0; j < rows[i].size(); ++j) {
      ids[i][offset + j] = rows[i][j];
      mask[i][offset + j] = 1;
    }
  }
  return {ids, mask};
}

at::Tensor AsBatch(const std::vector<int>& row) {
  at::Tensor t = at::empty({1, static_cast<int64_t>(row.size())}, at::kLong);
  for (size_t j = 0; j < row.size(); ++j) t[0][j] = row[j];
  return t;
}

TEST_P(FamilyTest, LeftAndRightPaddingMatchUnpaddedLogits) {
  auto model = TinyModel(GetParam());
  torch::NoGradGuard no_grad;
  const auto rows = RandomSequences({5, 11, 8}, 64, 1);
  for (bool left : {true, false}) {
    auto [ids, mask] = Pad(rows, left);
    ASSERT_OK_AND_ASSIGN(at::Tensor logits, model->Forward(ids, mask));
    const int64_t longest = ids.size(1);
    for (size_t i = 0; i < rows.size(); ++i) {
      ASSERT_OK_AND_ASSIGN(at::Tensor single, model->Forward(AsBatch(rows[i])));
      const int64_t n = rows[i].size();
      at::Tensor padded = logits[i].narrow(0, left ? longest - n : 0, n);
      EXPECT_LE(MaxAbsDiff(padded, single[0]), 1e-5)
          << (left ? "left" : "right") << " padding, row " << i;
    }
  }
}

TEST_P(FamilyTest, RightPaddedLogProbsMatchUnpaddedRuns) {
  auto model = TinyModel(GetParam());
  const auto rows = RandomSequences({6, 13, 2}, 64, 2);
  auto [ids, mask] = Pad(rows, /*left=*/false);
  ASSERT_OK_AND_ASSIGN(TokenLogProbs batch,
                       ComputeLogProbs(*model, ids, mask, true, false));
  ASSERT_EQ(batch.logprobs.sizes(), (std::vector<int64_t>{3, 12}));
  for (size_t i = 0; i < rows.size(); ++i) {
    ASSERT_OK_AND_ASSIGN(
        TokenLogProbs single,
        ComputeLogProbs(*model, AsBatch(rows[i]), at::Tensor(), true, false));
    const int64_t n = rows[i].size() - 1;
    EXPECT_LE(MaxAbsDiff(batch.logprobs[i].narrow(0, 0, n), single.logprobs[0]),
              1e-5);
    EXPECT_LE(MaxAbsDiff(batch.entropy[i].narrow(0, 0, n), single.entropy[0]),
              1e-5);
    // Targets that are padding give 0.
    EXPECT_EQ(batch.logprobs[i].narrow(0, n, 12 - n).abs().sum().item<float>(),
              0.0f);
  }
}

TEST_P(FamilyTest, LeftPaddedLogProbsMatchUnpaddedRuns) {
  auto model = TinyModel(GetParam());
  const auto rows = RandomSequences({4, 9}, 64, 3);
  auto [ids, mask] = Pad(rows, /*left=*/true);
  ASSERT_OK_AND_ASSIGN(TokenLogProbs batch,
                       ComputeLogProbs(*model, ids, mask, false, false));
  EXPECT_FALSE(batch.entropy.defined());
  ASSERT_OK_AND_ASSIGN(
      TokenLogProbs single,
      ComputeLogProbs(*model, AsBatch(rows[0]), at::Tensor(), false, false));
  EXPECT_LE(MaxAbsDiff(batch.logprobs[0].narrow(0, 5, 3), single.logprobs[0]),
            1e-5);
}

// ------------------------------------------------------------- KV cache

TEST_P(FamilyTest, IncrementalDecodingMatchesFullForward) {
  auto model = TinyModel(GetParam());
  torch::NoGradGuard no_grad;
  const auto rows = RandomSequences({14}, 64, 4);
  at::Tensor ids = AsBatch(rows[0]);
  ASSERT_OK_AND_ASSIGN(at::Tensor full, model->Forward(ids));
  // Capacity 3 forces the cache to grow twice.
  auto cache = model->NewKvCache(1, 3);
  std::vector<at::Tensor> pieces;
  ASSERT_OK_AND_ASSIGN(at::Tensor prefix,
                       model->Forward(ids.narrow(1, 0, 5), {}, cache.get()));
  pieces.push_back(prefix);
  for (int64_t t = 5; t < ids.size(1); ++t) {
    ASSERT_OK_AND_ASSIGN(at::Tensor step,
                         model->Forward(ids.narrow(1, t, 1), {}, cache.get()));
    pieces.push_back(step);
  }
  EXPECT_EQ(cache->length(), 14);
  EXPECT_GE(cache->capacity(), 14);
  EXPECT_LE(MaxAbsDiff(at::cat(pieces, 1), full), 1e-5);
}

TEST_P(FamilyTest, CachedLeftPaddedBatchMatchesSingleRuns) {
  auto model = TinyModel(GetParam());
  torch::NoGradGuard no_grad;
  const auto rows = RandomSequences({10, 7, 12}, 64, 5);
  const int prompt = 4;  // the first 4 (real) tokens of each row prefill
  std::vector<std::vector<int>> prompts;
  for (const auto& r : rows)
    prompts.emplace_back(r.begin(), r.begin() + prompt);
  prompts[1].resize(2);  // rows of different prompt lengths
  auto [ids, mask] = Pad(prompts, /*left=*/true);
  auto cache = model->NewKvCache(3, 32);
  ASSERT_OK_AND_ASSIGN(at::Tensor prefill,
                       model->Forward(ids, mask, cache.get()));
  std::vector<size_t> fed = {4, 2, 4};
  std::vector<std::vector<at::Tensor>> logits_per_row(3);
  for (int i = 0; i < 3; ++i) logits_per_row[i].push_back(prefill[i][-1]);
  // Decode: each row feeds its next real token while it has one; rows that
  // ran out feed a masked placeholder.
  for (int step = 0; step < 8; ++step) {
    at::Tensor next = at::zeros({3, 1}, at::kLong);
    at::Tensor next_mask = at::zeros({3, 1}, at::kLong);
    for (int i = 0; i < 3; ++i) {
      if (fed[i] < rows[i].size()) {
        next[i][0] = rows[i][fed[i]];
        next_mask[i][0] = 1;
      }
    }
    ASSERT_OK_AND_ASSIGN(at::Tensor step_logits,
                         model->Forward(next, next_mask, cache.get()));
    for (int i = 0; i < 3; ++i) {
      if (fed[i] < rows[i].size()) {
        logits_per_row[i].push_back(step_logits[i][0]);
        ++fed[i];
      }
    }
  }
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(at::Tensor single, model->Forward(AsBatch(rows[i])));
    const int64_t first = (i == 1 ? 2 : 4) - 1;
    const int64_t n = logits_per_row[i].size();
    EXPECT_LE(
        MaxAbsDiff(at::stack(logits_per_row[i]), single[0].narrow(0, first, n)),
        1e-5)
        << "row " << i;
  }
}

// ------------------------------------------------------ Save / Load

TEST_P(FamilyTest, SaveThenLoadGivesIdenticalLogits) {
  auto model = TinyModel(GetParam());
  TempDir dir;
  ASSERT_THAT(dir.status(), IsOk());
  ASSERT_THAT(model->Save(dir.path()), IsOk());
  ASSERT_OK_AND_ASSIGN(auto loaded, CausalLM::Load(dir.path()));
  EXPECT_EQ(loaded->config().family, GetParam());
  EXPECT_EQ(loaded->config().head_dim, model->config().head_dim);
  EXPECT_EQ(loaded->config().rope_scaling.enabled,
            model->config().rope_scaling.enabled);
  ASSERT_OK_AND_ASSIGN(auto reader, CheckpointReader::Open(dir.path()));
  const std::vector<std::string> names = reader->names();
  const bool has_lm_head =
      std::find(names.begin(), names.end(), "lm_head.weight") != names.end();
  EXPECT_EQ(has_lm_head, !model->config().tie_word_embeddings);
  EXPECT_EQ(names.size(), model->named_parameters().size());
  torch::NoGradGuard no_grad;
  const auto rows = RandomSequences({9}, 64, 6);
  ASSERT_OK_AND_ASSIGN(at::Tensor before, model->Forward(AsBatch(rows[0])));
  ASSERT_OK_AND_ASSIGN(at::Tensor after, loaded->Forward(AsBatch(rows[0])));
  EXPECT_TRUE(at::equal(before, after));
}

TEST_F(ModelTest, LoadsBf16CheckpointIntoFloat32) {
  LoadOptions bf16;
  bf16.dtype = c10::kBFloat16;
  ASSERT_OK_AND_ASSIGN(
      auto model,
      CausalLM::FromConfig(TinyConfig(ModelFamily::kQwen3), 1, bf16));
  TempDir dir;
  ASSERT_THAT(model->Save(dir.path()), IsOk());
  ASSERT_OK_AND_ASSIGN(auto reader, CheckpointReader::Open(dir.path()));
  ASSERT_OK_AND_ASSIGN(const TensorView* view,
                       reader->Get("model.embed_tokens.weight"));
  EXPECT_EQ(view->dtype, DType::kBF16);
  ASSERT_OK_AND_ASSIGN(auto loaded, CausalLM::Load(dir.path()));
  EXPECT_EQ(loaded->dtype(), c10::kFloat);
  for (size_t i = 0; i < model->named_parameters().size(); ++i) {
    EXPECT_TRUE(at::equal(model->named_parameters()[i].second.to(at::kFloat),
                          loaded->named_parameters()[i].second))
        << model->named_parameters()[i].first;
  }
  // A bf16 forward runs and agrees roughly with float32.
  torch::NoGradGuard no_grad;
  at::Tensor ids = AsBatch(RandomSequences({6}, 64, 8)[0]);
  ASSERT_OK_AND_ASSIGN(at::Tensor low, model->Forward(ids));
  ASSERT_OK_AND_ASSIGN(at::Tensor high, loaded->Forward(ids));
  EXPECT_EQ(low.scalar_type(), c10::kBFloat16);
  EXPECT_LE(MaxAbsDiff(low, high), 0.1);
}

// ------------------------------------------------------------ Sampling

std::vector<std::vector<int>> Prompts() {
  return RandomSequences({3, 7, 5, 1}, 64, 9);
}

TEST_P(FamilyTest, SameSeedSameOutputDifferentSeedDiffers) {
  auto model = TinyModel(GetParam());
  SamplingOptions options;
  options.max_new_tokens = 12;
  options.seed = 42;
  ASSERT_OK_AND_ASSIGN(auto a, Generate(*model, Prompts(), options));
  ASSERT_OK_AND_ASSIGN(auto b, Generate(*model, Prompts(), options));
  options.seed = 43;
  ASSERT_OK_AND_ASSIGN(auto c, Generate(*model, Prompts(), options));
  bool any_difference = false;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].token_ids, b[i].token_ids);
    EXPECT_EQ(a[i].logprobs, b[i].logprobs);
    any_difference |= a[i].token_ids != c[i].token_ids;
  }
  EXPECT_TRUE(any_difference);
}

TEST_P(FamilyTest, TopKOneAndTinyTopPAreGreedy) {
  auto model = TinyModel(GetParam());
  SamplingOptions greedy;
  greedy.temperature = 0;
  greedy.max_new_tokens = 10;
  ASSERT_OK_AND_ASSIGN(auto expected, Generate(*model, Prompts(), greedy));
  SamplingOptions top_k;
  top_k.max_new_tokens = 10;
  top_k.top_k = 1;
  top_k.seed = 5;
  ASSERT_OK_AND_ASSIGN(auto with_top_k, Generate(*model, Prompts(), top_k));
  SamplingOptions top_p;
  top_p.max_new_tokens = 10;
  top_p.top_p = 1e-6f;
  top_p.temperature = 1.5f;
  top_p.seed = 6;
  ASSERT_OK_AND_ASSIGN(auto with_top_p, Generate(*model, Prompts(), top_p));
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(with_top_k[i].token_ids, expected[i].token_ids) << i;
    EXPECT_EQ(with_top_p[i].token_ids, expected[i].token_ids) << i;
    EXPECT_EQ(expected[i].token_ids.size(), 10u);
    EXPECT_EQ(expected[i].finish_reason, FinishReason::kLength);
  }
}

TEST_P(FamilyTest, StopTokensEndSequencesWhileOthersContinue) {
  auto model = TinyModel(GetParam());
  SamplingOptions greedy;
  greedy.temperature = 0;
  greedy.max_new_tokens = 10;
  const auto prompts = Prompts();
  ASSERT_OK_AND_ASSIGN(auto free_run, Generate(*model, prompts, greedy));
  // Stop on row 1's 3rd token: row 1 ends there with "stop"; the others
  // stop at their first occurrence of it, if any, and otherwise run on
  // exactly as before.
  const int stop_token = free_run[1].token_ids[2];
  greedy.stop_token_ids = {stop_token};
  ASSERT_OK_AND_ASSIGN(auto stopped, Generate(*model, prompts, greedy));
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto& full = free_run[i].token_ids;
    auto it = std::find(full.begin(), full.end(), stop_token);
    if (it == full.end()) {
      EXPECT_EQ(stopped[i].token_ids, full) << i;
      EXPECT_EQ(stopped[i].finish_reason, FinishReason::kLength) << i;
    } else {
      EXPECT_EQ(stopped[i].token_ids, std::vector<int>(full.begin(), it + 1))
          << i;
      EXPECT_EQ(stopped[i].finish_reason, FinishReason::kStop) << i;
    }
    EXPECT_EQ(stopped[i].logprobs.size(), stopped[i].token_ids.size());
  }
  EXPECT_EQ(stopped[1].finish_reason, FinishReason::kStop);
  EXPECT_LE(stopped[1].token_ids.size(), 3u);
  EXPECT_STREQ(FinishReasonName(FinishReason::kStop), "stop");
  EXPECT_STREQ(FinishReasonName(FinishReason::kLength), "length");
}

TEST_P(FamilyTest, LogProbsAreRawLogSoftmaxAtChosenTokens) {
  auto model = TinyModel(GetParam());
  SamplingOptions options;
  options.temperature = 0.8f;
  options.top_p = 0.9f;
  options.top_k = 20;
  options.max_new_tokens = 9;
  options.seed = 11;
  const auto prompts = Prompts();
  ASSERT_OK_AND_ASSIGN(auto results, Generate(*model, prompts, options));
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::vector<int> sequence = prompts[i];
    sequence.insert(sequence.end(), results[i].token_ids.begin(),
                    results[i].token_ids.end());
    ASSERT_OK_AND_ASSIGN(
        TokenLogProbs teacher,
        ComputeLogProbs(*model, AsBatch(sequence), at::Tensor(), false, false));
    const int64_t n = results[i].token_ids.size();
    at::Tensor expected =
        teacher.logprobs[0].narrow(0, prompts[i].size() - 1, n);
    at::Tensor got = at::tensor(results[i].logprobs);
    EXPECT_LE(MaxAbsDiff(got, expected), 1e-4) << "row " << i;
  }
}

TEST_P(FamilyTest, ZeroMaxNewTokensGivesEmptyLengthResults) {
  auto model = TinyModel(GetParam());
  SamplingOptions options;
  options.max_new_tokens = 0;
  ASSERT_OK_AND_ASSIGN(auto results, Generate(*model, Prompts(), options));
  ASSERT_EQ(results.size(), 4u);
  for (const auto& r : results) {
    EXPECT_TRUE(r.token_ids.empty());
    EXPECT_EQ(r.finish_reason, FinishReason::kLength);
  }
}

TEST_P(FamilyTest, LogProbsAreDifferentiable) {
  auto model = TinyModel(GetParam());
  model->SetRequiresGrad(true);
  const auto rows = RandomSequences({6, 9}, 64, 12);
  auto [ids, mask] = Pad(rows, /*left=*/false);
  ASSERT_OK_AND_ASSIGN(TokenLogProbs result,
                       ComputeLogProbs(*model, ids, mask, true));
  ASSERT_TRUE(result.logprobs.requires_grad());
  (result.logprobs.sum() + result.entropy.sum()).backward();
  for (const auto& [name, tensor] : model->named_parameters()) {
    ASSERT_TRUE(tensor.grad().defined()) << name;
    EXPECT_TRUE(at::isfinite(tensor.grad()).all().item<bool>()) << name;
  }
  // The embedding of a token only ever seen as padding gets no gradient
  // from the masked targets; the output layer's gradient is nonzero.
  EXPECT_GT(
      model->named_parameters().front().second.grad().abs().sum().item<float>(),
      0.0f);
}

TEST_P(FamilyTest, CacheAcceptsFullLengthMaskAndExplicitPositions) {
  auto model = TinyModel(GetParam());
  torch::NoGradGuard no_grad;
  const auto rows = RandomSequences({6, 3}, 64, 13);
  auto [ids, mask] = Pad(rows, /*left=*/true);
  ASSERT_OK_AND_ASSIGN(at::Tensor full, model->Forward(ids, mask));
  // transformers' convention: the mask covers the cache plus the new
  // tokens.
  auto cache = model->NewKvCache(2, 8);
  ASSERT_OK_AND_ASSIGN(
      at::Tensor first,
      model->Forward(ids.narrow(1, 0, 4), mask.narrow(1, 0, 4), cache.get()));
  ASSERT_OK_AND_ASSIGN(at::Tensor second,
                       model->Forward(ids.narrow(1, 4, 2), mask, cache.get()));
  at::Tensor real = mask.to(at::kBool);
  EXPECT_LE(
      MaxAbsDiff(at::cat({first, second}, 1).index({real}), full.index({real})),
      1e-5);
  EXPECT_TRUE(at::equal(cache->mask(), real));
  EXPECT_EQ(cache->positions_seen()[1].item<int64_t>(), 3);
  // Explicit position ids equal to the derived ones change nothing.
  at::Tensor positions = (mask.cumsum(1) - 1).clamp_min(0);
  ASSERT_OK_AND_ASSIGN(at::Tensor explicit_positions,
                       model->Forward(ids, mask, nullptr, positions));
  EXPECT_TRUE(at::equal(explicit_positions, full));
  cache->Reset();
  EXPECT_EQ(cache->length(), 0);
}

TEST_P(FamilyTest, SamplingFollowsTheFilteredDistribution) {
  auto model = TinyModel(GetParam());
  const std::vector<int> prompt = {5, 17, 2};
  ASSERT_OK_AND_ASSIGN(at::Tensor logits, model->Forward(AsBatch(prompt)));
  at::Tensor last = logits[0][-1].to(at::kFloat).detach();
  for (const auto& [temperature, top_k, top_p] :
       std::vector<std::tuple<float, int, float>>{
           {1.0f, 0, 1.0f}, {2.0f, 5, 1.0f}, {0.7f, 0, 0.6f}}) {
    SamplingOptions options;
    options.temperature = temperature;
    options.top_k = top_k;
    options.top_p = top_p;
    options.max_new_tokens = 1;
    options.seed = 99;
    const int draws = 4000;
    ASSERT_OK_AND_ASSIGN(
        auto results,
        Generate(*model, std::vector<std::vector<int>>(draws, prompt),
                 options));
    at::Tensor scaled = last / temperature;
    if (top_k > 0) {
      at::Tensor kth = std::get<0>(scaled.topk(top_k)).narrow(0, top_k - 1, 1);
      scaled = scaled.masked_fill(scaled < kth, -INFINITY);
    }
    at::Tensor expected = at::softmax(scaled, -1);
    if (top_p < 1) {
      // Keep the most likely tokens until their mass reaches top_p.
      auto [sorted, order] = expected.sort(-1, /*descending=*/true);
      at::Tensor drop = (sorted.cumsum(-1) - sorted) >= top_p;
      expected = expected.scatter(0, order, sorted.masked_fill(drop, 0.0));
      expected = expected / expected.sum();
    }
    at::Tensor counts = at::zeros({64}, at::kDouble);
    for (const auto& r : results) counts[r.token_ids[0]] += 1;
    at::Tensor observed = counts / draws;
    // Tokens outside the filtered set never appear; frequencies within
    // 4 standard errors (plus a little) of the probabilities.
    EXPECT_EQ(counts.masked_select(expected == 0).sum().item<double>(), 0.0);
    at::Tensor tolerance =
        4 * at::sqrt(expected.to(at::kDouble) * (1 - expected) / draws) + 0.002;
    EXPECT_TRUE(((observed - expected).abs() <= tolerance).all().item<bool>())
        << "temperature " << temperature << " top_k " << top_k << " top_p "
        << top_p;
  }
}

TEST_F(ModelTest, Bfloat16GenerationAndLogProbsRun) {
  LoadOptions bf16;
  bf16.dtype = c10::kBFloat16;
  ASSERT_OK_AND_ASSIGN(
      auto model,
      CausalLM::FromConfig(TinyConfig(ModelFamily::kLlama), 3, bf16));
  SamplingOptions options;
  options.max_new_tokens = 5;
  ASSERT_OK_AND_ASSIGN(auto results,
                       Generate(*model, {{1, 2, 3}, {4}}, options));
  EXPECT_EQ(results[1].token_ids.size(), 5u);
  at::Tensor ids = at::randint(64, {2, 7}, at::kLong);
  model->SetRequiresGrad(true);
  ASSERT_OK_AND_ASSIGN(TokenLogProbs lp,
                       ComputeLogProbs(*model, ids, at::ones_like(ids), true));
  EXPECT_EQ(lp.logprobs.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::isfinite(lp.logprobs).all().item<bool>());
  lp.logprobs.sum().backward();
  EXPECT_TRUE(model->named_parameters()[1].second.grad().defined());
}

TEST_F(ModelTest, NoGradModeKeepsNoGraph) {
  auto model = TinyModel(ModelFamily::kQwen2);
  model->SetRequiresGrad(true);
  at::Tensor ids = at::randint(64, {2, 5}, at::kLong);
  ASSERT_OK_AND_ASSIGN(TokenLogProbs lp,
                       ComputeLogProbs(*model, ids, at::Tensor(), true,
                                       /*enable_grad=*/false));
  EXPECT_FALSE(lp.logprobs.requires_grad());
  EXPECT_FALSE(lp.entropy.requires_grad());
}

INSTANTIATE_TEST_SUITE_P(Families, FamilyTest,
                         ::testing::Values(ModelFamily::kQwen2,
                                           ModelFamily::kQwen3,
                                           ModelFamily::kLlama),
                         [](const auto& info) {
                           return std::string(ModelFamilyName(info.param));
                         });

// --------------------------------------------------------------- Errors

class ErrorTest : public ModelTest {
 protected:
  void SaveTiny(ModelFamily family) {
    auto model = TinyModel(family);
    ASSERT_THAT(dir_.status(), IsOk());
    ASSERT_THAT(model->Save(dir_.path()), IsOk());
  }
  // Writes model.safetensors again from the tensors of the saved model,
  // transformed by `edit`.
  void Rewrite(const std::function<void(std::vector<at::Tensor>&,
                                        std::vector<std::string>&)>& edit) {
    std::vector<at::Tensor> tensors;
    std::vector<std::string> names;
    {
      auto file = SafetensorsFile::Open(dir_.path() + "/model.safetensors");
      ASSERT_THAT(file, IsOk());
      for (const TensorView& view : (*file)->tensors()) {
        names.push_back(view.name);
        tensors.push_back(ViewToTensor(view));
      }
    }
    edit(tensors, names);
    std::vector<TensorToWrite> out;
    for (size_t i = 0; i < tensors.size(); ++i) {
      tensors[i] = tensors[i].contiguous();
      out.push_back(
          TensorToWrite{names[i], DType::kF32, tensors[i].sizes().vec(),
                        absl::Span<const uint8_t>(
                            static_cast<const uint8_t*>(tensors[i].data_ptr()),
                            tensors[i].nbytes())});
    }
    ASSERT_THAT(WriteSafetensors(dir_.path() + "/model.safetensors", out),
                IsOk());
  }
  TempDir dir_;
};

TEST_F(ErrorTest, LoadsShardedCheckpoints) {
  auto model = TinyModel(ModelFamily::kQwen2);
  ASSERT_THAT(model->Save(dir_.path()), IsOk());
  std::vector<at::Tensor> tensors;
  std::vector<TensorToWrite> out;
  {
    auto file = SafetensorsFile::Open(dir_.path() + "/model.safetensors");
    ASSERT_THAT(file, IsOk());
    for (const TensorView& view : (*file)->tensors()) {
      tensors.push_back(ViewToTensor(view));
    }
    for (size_t i = 0; i < tensors.size(); ++i) {
      const TensorView& view = (*file)->tensors()[i];
      out.push_back(
          TensorToWrite{view.name, DType::kF32, view.shape,
                        absl::Span<const uint8_t>(
                            static_cast<const uint8_t*>(tensors[i].data_ptr()),
                            tensors[i].nbytes())});
    }
  }
  ASSERT_EQ(std::remove((dir_.path() + "/model.safetensors").c_str()), 0);
  ASSERT_THAT(WriteCheckpointTensors(dir_.path(), out,
                                     /*max_shard_bytes=*/8192),
              IsOk());
  std::ifstream index(dir_.path() + "/model.safetensors.index.json");
  ASSERT_TRUE(index.good());
  ASSERT_OK_AND_ASSIGN(auto loaded, CausalLM::Load(dir_.path()));
  torch::NoGradGuard no_grad;
  at::Tensor ids = AsBatch({1, 2, 3, 4, 5});
  ASSERT_OK_AND_ASSIGN(at::Tensor expected, model->Forward(ids));
  ASSERT_OK_AND_ASSIGN(at::Tensor got, loaded->Forward(ids));
  EXPECT_TRUE(at::equal(expected, got));
}

TEST_F(ErrorTest, MissingTensorIsNamed) {
  SaveTiny(ModelFamily::kQwen2);
  Rewrite(
      [](std::vector<at::Tensor>& tensors, std::vector<std::string>& names) {
        for (size_t i = 0; i < names.size(); ++i) {
          if (names[i] == "model.layers.1.self_attn.k_proj.bias") {
            names.erase(names.begin() + i);
            tensors.erase(tensors.begin() + i);
            break;
          }
        }
      });
  EXPECT_THAT(CausalLM::Load(dir_.path()),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("model.layers.1.self_attn.k_proj.bias")));
}

TEST_F(ErrorTest, WrongShapeNamesTensorAndFile) {
  SaveTiny(ModelFamily::kQwen3);
  Rewrite(
      [](std::vector<at::Tensor>& tensors, std::vector<std::string>& names) {
        for (size_t i = 0; i < names.size(); ++i) {
          if (names[i] == "model.layers.0.mlp.up_proj.weight") {
            tensors[i] = at::zeros({7, 32});
          }
        }
      });
  auto loaded = CausalLM::Load(dir_.path());
  EXPECT_THAT(loaded, StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr("model.layers.0.mlp.up_proj.weight")));
  EXPECT_THAT(loaded, StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr("model.safetensors")));
  EXPECT_THAT(loaded, StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr("[7, 32]")));
}

TEST_F(ErrorTest, ExtraTensorIsAnError) {
  SaveTiny(ModelFamily::kLlama);
  Rewrite(
      [](std::vector<at::Tensor>& tensors, std::vector<std::string>& names) {
        names.push_back("model.layers.9.mlp.up_proj.weight");
        tensors.push_back(at::zeros({2, 2}));
      });
  EXPECT_THAT(CausalLM::Load(dir_.path()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("model.layers.9.mlp.up_proj.weight")));
}

TEST_F(ErrorTest, UnknownFamily) {
  SaveTiny(ModelFamily::kQwen3);
  std::ifstream in(dir_.path() + "/config.json");
  std::stringstream text;
  text << in.rdbuf();
  in.close();
  std::string config = text.str();
  const size_t replaced =
      absl::StrReplaceAll({{"\"qwen3\"", "\"gpt2\""},
                           {"\"Qwen3ForCausalLM\"", "\"GPT2LMHeadModel\""}},
                          &config);
  ASSERT_GT(replaced, 0);
  std::ofstream(dir_.path() + "/config.json") << config;
  auto loaded = CausalLM::Load(dir_.path());
  EXPECT_FALSE(loaded.ok());
  EXPECT_THAT(loaded.status().message(), HasSubstr("gpt2"));
}

TEST_F(ErrorTest, MissingDirectory) {
  EXPECT_FALSE(CausalLM::Load("/nonexistent/fapo-model").ok());
}

TEST_F(ErrorTest, BadPromptsAndOptions) {
  auto model = TinyModel(ModelFamily::kQwen3);
  SamplingOptions options;
  EXPECT_THAT(Generate(*model, {{1, 2}, {3, 64}}, options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("prompt 1 position 1 holds token id 64")));
  EXPECT_THAT(Generate(*model, {{-1}}, options),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Generate(*model, {}, options),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(
      Generate(*model, {{1}, {}}, options),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("prompt 1")));
  SamplingOptions bad = options;
  bad.top_p = 0;
  EXPECT_THAT(Generate(*model, {{1}}, bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("top_p")));
  bad = options;
  bad.temperature = -1;
  EXPECT_THAT(
      Generate(*model, {{1}}, bad),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("temperature")));
  bad = options;
  bad.max_new_tokens = -2;
  EXPECT_THAT(Generate(*model, {{1}}, bad),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ErrorTest, BadForwardInputs) {
  auto model = TinyModel(ModelFamily::kLlama);
  EXPECT_THAT(model->Forward(at::full({1, 3}, 64, at::kLong)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("64")));
  EXPECT_THAT(model->Forward(at::zeros({3}, at::kLong)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(model->Forward(at::zeros({1, 3}, at::kFloat)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(
      model->Forward(at::zeros({2, 3}, at::kLong), at::ones({2, 4}, at::kLong)),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("attention_mask")));
  auto cache = model->NewKvCache(3, 8);
  EXPECT_THAT(model->Forward(at::zeros({2, 3}, at::kLong), {}, cache.get()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cache")));
  EXPECT_THAT(ComputeLogProbs(*model, at::zeros({2, 1}, at::kLong), {}, false),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ErrorTest, FromConfigRejectsBadSizes) {
  ModelConfig config = TinyConfig(ModelFamily::kQwen3);
  config.num_key_value_heads = 3;
  EXPECT_THAT(CausalLM::FromConfig(config, 1),
              StatusIs(absl::StatusCode::kInvalidArgument));
  LoadOptions ints;
  ints.dtype = c10::kInt;
  EXPECT_THAT(CausalLM::FromConfig(TinyConfig(ModelFamily::kQwen3), 1, ints),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// CopyWeightsFrom: in place (tied lm_head follows), all-or-nothing.
TEST(CopyWeightsFromTest, CopiesInPlaceAndRefusesMismatchesUntouched) {
  const ModelConfig config =
      model_testing::TinyConfig(ModelFamily::kQwen3);  // tied embeddings
  ASSERT_OK_AND_ASSIGN(auto model, CausalLM::FromConfig(config, 1));
  ASSERT_OK_AND_ASSIGN(auto other, CausalLM::FromConfig(config, 2));
  const at::Tensor ids = torch::tensor({{3, 5, 7, 9}}, torch::kLong);
  ASSERT_OK_AND_ASSIGN(at::Tensor other_logits, other->Forward(ids));
  const void* embed_storage =
      model->named_parameters().front().second.data_ptr();
  std::vector<at::Tensor> before;
  for (const auto& entry : model->named_parameters()) {
    before.push_back(entry.second.clone());
  }

  // A wrong shape, an unknown name, a duplicate and a missing tensor are
  // all refused before anything is copied.
  std::vector<std::pair<std::string, at::Tensor>> bad =
      other->named_parameters();
  bad.back().second = torch::zeros({1, 2});
  EXPECT_THAT(model->CopyWeightsFrom(bad),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::HasSubstr(bad.back().first)));
  bad = other->named_parameters();
  bad.push_back({"model.unknown.weight", torch::zeros({1})});
  EXPECT_THAT(model->CopyWeightsFrom(bad),
              StatusIs(absl::StatusCode::kInvalidArgument));
  bad = other->named_parameters();
  bad.push_back(bad.front());
  EXPECT_THAT(model->CopyWeightsFrom(bad),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::HasSubstr("twice")));
  bad = other->named_parameters();
  bad.pop_back();
  EXPECT_THAT(model->CopyWeightsFrom(bad),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::HasSubstr("missing")));
  for (size_t i = 0; i < model->named_parameters().size(); ++i) {
    EXPECT_TRUE(torch::equal(model->named_parameters()[i].second, before[i]))
        << model->named_parameters()[i].first;
  }

  // Reversed order is fine; the tensors keep their storage.
  std::vector<std::pair<std::string, at::Tensor>> good(
      other->named_parameters().rbegin(), other->named_parameters().rend());
  ASSERT_OK(model->CopyWeightsFrom(good));
  EXPECT_EQ(model->named_parameters().front().second.data_ptr(), embed_storage);
  for (size_t i = 0; i < model->named_parameters().size(); ++i) {
    EXPECT_TRUE(torch::equal(model->named_parameters()[i].second,
                             other->named_parameters()[i].second));
  }
  ASSERT_OK_AND_ASSIGN(at::Tensor logits, model->Forward(ids));
  EXPECT_TRUE(torch::equal(logits, other_logits));
}

// on_row_finished reports each row once, as it finishes, with what
// Generate returns; cancelled stops the batch.
TEST(GenerateCallbacksTest, RowsAreReportedAsTheyFinishAndCancelStops) {
  at::set_num_threads(1);
  ASSERT_OK_AND_ASSIGN(
      auto model, CausalLM::FromConfig(TinyConfig(ModelFamily::kQwen3), 4));
  const std::vector<std::vector<int>> prompts = {{1, 2, 3}, {4, 5}, {6}};
  SamplingOptions options;
  options.max_new_tokens = 12;
  options.seed = 11;
  // Common tokens as stop ids so rows end at different steps.
  for (int id = 0; id < 64; id += 3) options.stop_token_ids.push_back(id);
  ASSERT_OK_AND_ASSIGN(auto plain, Generate(*model, prompts, options));
  std::vector<std::pair<size_t, GenerationResult>> reported;
  options.on_row_finished = [&](size_t row, const GenerationResult& result) {
    reported.emplace_back(row, result);
  };
  ASSERT_OK_AND_ASSIGN(auto streamed, Generate(*model, prompts, options));
  ASSERT_EQ(reported.size(), prompts.size());
  std::set<size_t> rows;
  for (size_t k = 0; k < reported.size(); ++k) {
    const auto& [row, result] = reported[k];
    rows.insert(row);
    EXPECT_EQ(result.token_ids, plain[row].token_ids);
    EXPECT_EQ(result.token_ids, streamed[row].token_ids);
    EXPECT_EQ(result.logprobs, streamed[row].logprobs);
    // Reported in order of finishing: never after a longer one.
    if (k > 0) {
      EXPECT_LE(reported[k - 1].second.token_ids.size(),
                result.token_ids.size());
    }
  }
  EXPECT_EQ(rows.size(), prompts.size());

  int polls = 0;
  options.on_row_finished = nullptr;
  options.stop_token_ids.clear();
  options.cancelled = [&] { return ++polls > 2; };
  EXPECT_THAT(Generate(*model, prompts, options),
              StatusIs(absl::StatusCode::kCancelled));
  EXPECT_EQ(polls, 3);
}

}  // namespace
}  // namespace fapo::engine
