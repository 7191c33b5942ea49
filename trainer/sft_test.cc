#include "trainer/sft.h"

#include <ATen/Parallel.h>
#include <stdlib.h>

#include <sstream>
#include <string>
#include <vector>

#include "engine/tokenizer/character_tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/files/files.h"
#include "services/status/status_matchers.h"
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
  void TearDown() override {
    ASSERT_THAT(files::RemoveRecursively(dir_), IsOk());
  }

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
    EXPECT_TRUE(files::PathExists(options.out_dir + "/" + file)) << file;
  }
  EXPECT_THAT(engine::CausalLM::Load(options.out_dir).status(), IsOk());
}

TEST_F(SftTest, CommandLine) {
  std::ostringstream out, err;
  EXPECT_EQ(RunSftCommand({"--corpus", corpus_}, out, err), 2);
  EXPECT_THAT(err.str(), HasSubstr("--out"));
  for (const std::vector<std::string>& bad :
       std::vector<std::vector<std::string>>{
           {"--out", dir_ + "/x", "--steps", "0"},
           {"--out", dir_ + "/x", "--corpus-size", "-1"},
           {"--out", dir_ + "/x", "--threads", "0"},
           {"--out", dir_ + "/x", "--learning-rate", "fast"},
           {"--out", dir_ + "/x", "--chat-format", "xml"}}) {
    std::ostringstream out1, err1;
    EXPECT_EQ(RunSftCommand(bad, out1, err1), 2) << bad[2];
    EXPECT_THAT(err1.str(), HasSubstr(bad[2])) << bad[2];
  }
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
  // No corpus flags: one fresh trace per example, steps x batch size.
  std::ostringstream out5, err5;
  EXPECT_EQ(RunSftCommand({"--out", dir_ + "/fresh", "--steps", "2",
                           "--batch-size", "3", "--log-every", "1"},
                          out5, err5),
            0)
      << err5.str();
  EXPECT_THAT(out5.str(), HasSubstr("sft step 2/2"));
  auto fresh =
      tasks::arith::ReadCorpusJsonlFile(dir_ + "/fresh/sft_corpus.jsonl");
  ASSERT_THAT(fresh.status(), IsOk());
  EXPECT_EQ(fresh->size(), 6u);
}

}  // namespace
}  // namespace fapo::trainer
