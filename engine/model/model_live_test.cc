// Live parity with Hugging Face transformers (label "live"): fresh random
// Qwen2, Qwen3 and Llama (llama3 rope scaling) models on every run, built and
// evaluated by testdata/live_reference.py with the project's .venv.
#include <torch/torch.h>
#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "engine/checkpoint/model_config.h"
#include "engine/checkpoint/safetensors.h"
#include "engine/model/model.h"
#include "engine/model/model_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"
#include "tests/support/subprocess.h"

namespace fapo::engine {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::RunCommand;
using ::fapo::testing::SourcePath;
using ::fapo::testing::TempDir;
using model_testing::MaxAbsDiff;
using model_testing::ReadReference;
using model_testing::Reference;
using model_testing::Row;
using model_testing::ViewToTensor;

class LiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    at::set_num_threads(1);
    python_ = SourcePath(".venv/bin/python");
    if (access(python_.c_str(), X_OK) != 0) {
      // Fail, not skip: scripts/install-deps.sh always makes .venv, so its
      // absence is a broken set-up that a skip would hide.
      FAIL() << "no Python environment at " << python_
             << " (run scripts/install-deps.sh)";
    }
    ASSERT_THAT(dir_.status(), IsOk());
  }

  // Runs live_reference.py with `mode` on `directory`; fails the test (and
  // shows the script's output) unless it exits 0.
  void RunScript(const std::string& mode, const std::string& directory) {
    auto result =
        RunCommand({"/usr/bin/env", "OMP_NUM_THREADS=1", "HF_HUB_OFFLINE=1",
                    "TRANSFORMERS_VERBOSITY=error", python_,
                    SourcePath("engine/model/testdata/live_reference.py"), mode,
                    directory},
                   absl::Seconds(400));
    ASSERT_THAT(result, IsOk());
    std::cout << result->stdout_text;
    ASSERT_EQ(result->exit_code, 0) << result->stderr_text;
  }

  std::string python_;
  TempDir dir_;
};

TEST_F(LiveTest, RandomModelsMatchTransformers) {
  ASSERT_NO_FATAL_FAILURE(RunScript("make", dir_.path()));
  for (const char* family : {"qwen2", "qwen3", "llama"}) {
    SCOPED_TRACE(family);
    const std::string directory = dir_.path() + "/" + family;
    ASSERT_OK_AND_ASSIGN(auto model, CausalLM::Load(directory));
    Reference ref = ReadReference(directory + "/reference.safetensors");
    ASSERT_TRUE(ref.logits.defined() && ref.greedy_ids.defined());

    torch::NoGradGuard no_grad;
    ASSERT_OK_AND_ASSIGN(at::Tensor logits, model->Forward(ref.input_ids));
    const double diff = MaxAbsDiff(logits, ref.logits);
    std::cout << family << " logits max |diff| " << diff << "\n";
    EXPECT_LE(diff, 1e-4);

    ASSERT_OK_AND_ASSIGN(
        TokenLogProbs lp,
        ComputeLogProbs(*model, ref.input_ids, at::Tensor(), false, false));
    const int64_t time = ref.input_ids.size(1);
    at::Tensor expected =
        at::log_softmax(ref.logits.narrow(1, 0, time - 1), -1)
            .gather(-1, ref.input_ids.narrow(1, 1, time - 1).unsqueeze(-1))
            .squeeze(-1);
    const double lp_diff = MaxAbsDiff(lp.logprobs, expected);
    std::cout << family << " logprobs max |diff| " << lp_diff << "\n";
    EXPECT_LE(lp_diff, 1e-4);

    const std::vector<int> prompt = Row(ref.prompt_ids, 0);
    const std::vector<int> greedy_all = Row(ref.greedy_ids, 0);
    const std::vector<int> greedy(greedy_all.begin() + prompt.size(),
                                  greedy_all.end());
    SamplingOptions options;
    options.temperature = 0;
    options.max_new_tokens = static_cast<int>(greedy.size());
    ASSERT_OK_AND_ASSIGN(auto results, Generate(*model, {prompt}, options));
    EXPECT_EQ(results[0].token_ids, greedy);
  }
}

TEST_F(LiveTest, TransformersLoadsWhatSaveWrote) {
  const std::vector<ModelFamily> families = {
      ModelFamily::kQwen2, ModelFamily::kQwen3, ModelFamily::kLlama};
  at::Tensor input_ids =
      at::randint(80, {2, 16}, at::TensorOptions().dtype(at::kLong));
  std::vector<at::Tensor> ours;
  for (ModelFamily family : families) {
    ASSERT_OK_AND_ASSIGN(
        auto model, CausalLM::FromConfig(
                        model_testing::TinyConfig(family, /*vocab_size=*/80,
                                                  /*intermediate_size=*/40,
                                                  /*llama_bias=*/true),
                        17));
    {
      // Non-trivial biases and norms, so a loader that skipped them shows.
      torch::NoGradGuard no_grad;
      for (auto& [name, tensor] : model->named_parameters()) {
        if (tensor.dim() == 1) tensor.normal_(1.0, 0.2);
      }
    }
    const std::string directory =
        dir_.path() + "/" + std::string(ModelFamilyName(family));
    ASSERT_THAT(model->Save(directory), IsOk());
    at::Tensor ids = input_ids.contiguous();
    TensorToWrite tensor{
        "input_ids", DType::kI64, ids.sizes().vec(),
        absl::Span<const uint8_t>(static_cast<const uint8_t*>(ids.data_ptr()),
                                  ids.nbytes())};
    ASSERT_THAT(WriteSafetensors(directory + "/inputs.safetensors", {tensor}),
                IsOk());
    torch::NoGradGuard no_grad;
    ASSERT_OK_AND_ASSIGN(at::Tensor logits, model->Forward(input_ids));
    ours.push_back(logits);
  }
  ASSERT_NO_FATAL_FAILURE(RunScript("check", dir_.path()));
  for (size_t i = 0; i < families.size(); ++i) {
    const std::string family(ModelFamilyName(families[i]));
    auto file = SafetensorsFile::Open(dir_.path() + "/" + family +
                                      "/hf_logits.safetensors");
    ASSERT_THAT(file, IsOk());
    const TensorView* view = (*file)->Find("logits");
    ASSERT_NE(view, nullptr);
    const double diff = MaxAbsDiff(ViewToTensor(*view), ours[i]);
    std::cout << family << " saved-by-us logits max |diff| " << diff << "\n";
    EXPECT_LE(diff, 1e-4) << family;
  }
}

}  // namespace
}  // namespace fapo::engine
