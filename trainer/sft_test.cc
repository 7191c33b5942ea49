#include "trainer/sft.h"

#include <ATen/Parallel.h>
#include <stdlib.h>

#include <sstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "engine/tokenizer/character_tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"
#include "tasks/arith/checker.h"
#include "trainer/checkpoint_manager.h"

namespace fapo::trainer {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::HasSubstr;

class SftTest : public ::testing::Test {
 protected:
  void SetUp() override {
    at::set_num_threads(1);
    char pattern[] = "/tmp/sft_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    auto generator = tasks::arith::CorpusGenerator::Create(
        tasks::arith::ArithOptions{}, tasks::arith::CorpusOptions{}, 11);
    ASSERT_THAT(generator.status(), IsOk());
    auto records = generator->Generate(48);
    ASSERT_THAT(records.status(), IsOk());
    records_ = *records;
    corpus_ = dir_ + "/corpus.jsonl";
    ASSERT_THAT(tasks::arith::WriteCorpusJsonlFile(corpus_, records_), IsOk());
  }
  void TearDown() override { ASSERT_THAT(RemoveRecursively(dir_), IsOk()); }

  std::string dir_;
  std::string corpus_;
  std::vector<tasks::arith::CorpusRecord> records_;
};

TEST_F(SftTest, PromptFormat) {
  EXPECT_EQ(PolicyPromptText("3+7*4-2", config::ChatFormat::kRaw), "3+7*4-2\n");
  EXPECT_EQ(PolicyPromptText("1+1", config::ChatFormat::kChatml),
            "<|im_start|>user\n1+1<|im_end|>\n<|im_start|>assistant\n");
}

TEST_F(SftTest, TokenizeCorpusAppendsEos) {
  auto tokenizer = engine::Tokenizer::FromJson(engine::ArithTokenizerJson());
  ASSERT_THAT(tokenizer.status(), IsOk());
  const int eos = *(*tokenizer)->TokenToId("<|endoftext|>");
  std::vector<tasks::arith::CorpusRecord> records(1);
  records[0].prompt = "3+7";
  records[0].response = "3+7=0\n#0";
  auto examples =
      TokenizeCorpus(records, **tokenizer, config::ChatFormat::kRaw, eos);
  ASSERT_THAT(examples.status(), IsOk());
  ASSERT_EQ(examples->size(), 1u);
  EXPECT_EQ((*examples)[0].prompt_token_ids, (*tokenizer)->Encode("3+7\n"));
  std::vector<int> response = (*tokenizer)->Encode("3+7=0\n#0");
  response.push_back(eos);
  EXPECT_EQ((*examples)[0].response_token_ids, response);
}

TEST_F(SftTest, ReducesCrossEntropyAndWritesAModel) {
  SftOptions options;
  options.corpus_path = corpus_;
  options.out_dir = dir_ + "/model";
  options.steps = 30;
  options.batch_size = 16;
  options.micro_batch_size = 8;
  options.learning_rate = 3e-3;
  options.warmup_steps = 3;
  options.seed = 1;
  options.log_every = 10;
  std::vector<std::string> lines;
  auto report =
      RunSft(options, [&](const std::string& line) { lines.push_back(line); });
  ASSERT_THAT(report.status(), IsOk());
  EXPECT_EQ(report->steps, 30);
  EXPECT_EQ(report->examples, 48);
  // Uniform over 19 tokens is ln 19 = 2.94 nats; the random init starts
  // near it and 30 steps at 3e-3 learn the alphabet's structure.
  EXPECT_GT(report->first_loss, 2.0);
  EXPECT_LT(report->last_loss, 0.7 * report->first_loss);
  EXPECT_EQ(lines.size(), 3u);
  for (const char* file :
       {"config.json", "model.safetensors", "tokenizer.json"}) {
    EXPECT_TRUE(PathExists(options.out_dir + "/" + file)) << file;
  }
  EXPECT_THAT(engine::CausalLM::Load(options.out_dir).status(), IsOk());
}

TEST_F(SftTest, CommandLine) {
  std::ostringstream out, err;
  EXPECT_EQ(RunSftCommand({"--corpus", corpus_}, out, err), 2);
  EXPECT_THAT(err.str(), HasSubstr("--out"));
  std::ostringstream out1, err1;
  EXPECT_EQ(RunSftCommand({"--out", dir_ + "/x"}, out1, err1), 2);
  std::ostringstream out2, err2;
  EXPECT_EQ(RunSftCommand({"--corpus", corpus_, "--out", dir_ + "/cli",
                           "--steps", "2", "--batch-size", "4"},
                          out2, err2),
            0)
      << err2.str();
  EXPECT_THAT(out2.str(), HasSubstr("\"last_loss\""));
  std::ostringstream out3, err3;
  EXPECT_EQ(RunSftCommand(
                {"--corpus", dir_ + "/missing.jsonl", "--out", dir_ + "/cli2"},
                out3, err3),
            1);
  EXPECT_THAT(err3.str(), HasSubstr("missing.jsonl"));
  std::ostringstream out4, err4;
  EXPECT_EQ(RunSftCommand({"--corpus-size", "16", "--out", dir_ + "/gen",
                           "--steps", "1", "--batch-size", "4"},
                          out4, err4),
            0)
      << err4.str();
  auto generated =
      tasks::arith::ReadCorpusJsonlFile(dir_ + "/gen/sft_corpus.jsonl");
  ASSERT_THAT(generated.status(), IsOk());
  EXPECT_EQ(generated->size(), 16u);
}

// A figure, not a unit test (minutes): run with
//   sft_test --gtest_also_run_disabled_tests --gtest_filter=*WarmStart*
// Warm-starts the tiny policy on the default corpus, then samples held-out
// problems greedily and at temperature 1 and checks them exactly.
TEST_F(SftTest, DISABLED_WarmStartLearnsArith) {
  auto generator = tasks::arith::CorpusGenerator::Create(
      tasks::arith::ArithOptions{}, tasks::arith::CorpusOptions{}, 21);
  ASSERT_THAT(generator.status(), IsOk());
  auto records = generator->Generate(4000);
  ASSERT_THAT(records.status(), IsOk());
  const std::string corpus = dir_ + "/big.jsonl";
  ASSERT_THAT(tasks::arith::WriteCorpusJsonlFile(corpus, *records), IsOk());
  SftOptions options;
  options.corpus_path = corpus;
  options.out_dir = dir_ + "/warm";
  options.steps = 300;
  options.batch_size = 128;
  options.warmup_steps = 60;
  options.log_every = 50;
  auto report = RunSft(options, [](const std::string& line) {
    std::printf("%s\n", line.c_str());
  });
  ASSERT_THAT(report.status(), IsOk());
  auto model = engine::CausalLM::Load(options.out_dir);
  ASSERT_THAT(model.status(), IsOk());
  auto tokenizer =
      engine::Tokenizer::FromFile(options.out_dir + "/tokenizer.json");
  ASSERT_THAT(tokenizer.status(), IsOk());
  auto held_out = tasks::arith::CorpusGenerator::Create(
      tasks::arith::ArithOptions{}, tasks::arith::CorpusOptions{}, 999);
  auto problems = held_out->Generate(256);
  ASSERT_THAT(problems.status(), IsOk());
  std::vector<std::vector<int>> prompts;
  for (const auto& record : *problems) {
    prompts.push_back((*tokenizer)
                          ->Encode(PolicyPromptText(record.prompt,
                                                    config::ChatFormat::kRaw)));
  }
  auto checker = tasks::arith::Checker::Create(tasks::arith::ArithOptions{});
  ASSERT_THAT(checker.status(), IsOk());
  for (double temperature : {0.0, 1.0}) {
    engine::SamplingOptions sampling;
    sampling.temperature = static_cast<float>(temperature);
    sampling.max_new_tokens = 64;
    sampling.stop_token_ids = (*model)->config().eos_token_ids;
    sampling.seed = 5;
    auto results = engine::Generate(**model, prompts, sampling);
    ASSERT_THAT(results.status(), IsOk());
    int correct = 0, sound = 0, flawed = 0;
    for (size_t i = 0; i < results->size(); ++i) {
      auto text = (*tokenizer)
                      ->Decode((*results)[i].token_ids,
                               /*skip_special_tokens=*/true);
      ASSERT_THAT(text.status(), IsOk());
      auto check = checker->CheckPromptText((*problems)[i].prompt, *text);
      ASSERT_THAT(check.status(), IsOk());
      if (check->answer_correct) {
        ++correct;
        (check->first_error_step < 0 ? sound : flawed)++;
      }
    }
    std::printf(
        "temperature %.0f: accuracy %.3f, flawed-positive ratio %.3f "
        "(of correct), %d problems\n",
        temperature, correct / 256.0,
        correct > 0 ? static_cast<double>(flawed) / correct : 0.0, 256);
  }
  std::printf("sft: %lld steps in %.1f s, loss %.3f -> %.3f\n",
              static_cast<long long>(report->steps), report->seconds,
              report->first_loss, report->last_loss);
}

}  // namespace
}  // namespace fapo::trainer
