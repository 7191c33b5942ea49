#include "trainer/trainer.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <stdlib.h>

#include <cmath>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "engine/tools/tools.h"
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

std::unique_ptr<engine::CausalLM> TinyModel(uint64_t seed = 7) {
  auto model =
      engine::CausalLM::FromConfig(engine::TinyArithModelConfig(), seed);
  EXPECT_THAT(model.status(), IsOk());
  return *std::move(model);
}

TrainerSettings Settings() {
  TrainerSettings settings;
  settings.trainer.learning_rate = 1e-2;
  settings.trainer.weight_decay = 0.0;
  settings.trainer.grad_clip = 0.0;
  settings.trainer.minibatches_per_step = 1;
  settings.trainer.micro_batch_size = 8;
  settings.total_steps = 100;
  settings.algorithm.clip_low = 0.2;
  settings.algorithm.clip_high = 0.28;
  return settings;
}

// A trajectory whose response_logprobs are the model's own (ratio 1 at
// the first step).
v1::ScoredTrajectory MakeTrajectory(engine::CausalLM& model,
                                    std::vector<int> prompt,
                                    std::vector<int> response, double advantage,
                                    int index) {
  v1::ScoredTrajectory scored;
  v1::Trajectory* trajectory = scored.mutable_trajectory();
  trajectory->set_trajectory_id(absl::StrCat("t", index));
  for (int id : prompt) trajectory->add_prompt_token_ids(id);
  for (int id : response) trajectory->add_response_token_ids(id);
  std::vector<int64_t> ids(prompt.begin(), prompt.end());
  ids.insert(ids.end(), response.begin(), response.end());
  at::Tensor input = at::tensor(ids, at::kLong).unsqueeze(0);
  auto logprobs = engine::ComputeLogProbs(model, input, at::ones_like(input),
                                          false, /*enable_grad=*/false);
  EXPECT_THAT(logprobs.status(), IsOk());
  for (size_t j = 0; j < response.size(); ++j) {
    trajectory->add_response_logprobs(
        logprobs->logprobs[0][prompt.size() + j - 1].item<float>());
  }
  scored.set_advantage(advantage);
  return scored;
}

using Trajectories = google::protobuf::RepeatedPtrField<v1::ScoredTrajectory>;

// Four trajectories of different lengths, advantages +1 +1 -1 -1.
Trajectories Batch(engine::CausalLM& model) {
  std::vector<v1::ScoredTrajectory> batch = {
      MakeTrajectory(model, {1, 10, 2}, {3, 11, 4}, 1.0, 0),
      MakeTrajectory(model, {5, 12, 6, 13, 7}, {8, 14, 9, 15, 0}, 1.0, 1),
      MakeTrajectory(model, {2, 10}, {2, 16}, -1.0, 2),
      MakeTrajectory(model, {9, 11, 3}, {4, 4, 4, 4, 4, 16}, -1.0, 3)};
  return Trajectories(batch.begin(), batch.end());
}

double MaxAbsDifference(engine::CausalLM& a, engine::CausalLM& b) {
  double difference = 0;
  for (size_t i = 0; i < a.named_parameters().size(); ++i) {
    difference = std::max(difference, (a.named_parameters()[i].second -
                                       b.named_parameters()[i].second)
                                          .abs()
                                          .max()
                                          .item<double>());
  }
  return difference;
}

std::vector<at::Tensor> CloneParameters(engine::CausalLM& model) {
  std::vector<at::Tensor> copies;
  for (const auto& [name, tensor] : model.named_parameters()) {
    copies.push_back(tensor.detach().clone());
  }
  return copies;
}

class TrainerTest : public ::testing::Test {
 protected:
  void SetUp() override { at::set_num_threads(1); }
};

TEST_F(TrainerTest, FirstStepLossIsHandCheckable) {
  std::unique_ptr<engine::CausalLM> model = TinyModel();
  Trajectories batch = Batch(*model);
  auto trainer = Trainer::CreateWithPolicy(Settings(), std::move(model));
  ASSERT_THAT(trainer.status(), IsOk());
  auto result = (*trainer)->TrainStep(1, batch);
  ASSERT_THAT(result.status(), IsOk());
  // Ratio 1 everywhere: loss = -token-mean(A) = -(3 + 5 - 2 - 6) / 16 = 0.
  // num_tokens 16, no clipping, KL 0.
  EXPECT_NEAR(result->metrics.loss(), 0.0, 1e-6);
  EXPECT_EQ(result->metrics.num_tokens(), 16);
  EXPECT_EQ(result->metrics.num_trajectories(), 4);
  EXPECT_EQ(result->metrics.clip_fraction(), 0.0);
  EXPECT_NEAR(result->metrics.approx_kl(), 0.0, 1e-6);
  EXPECT_GT(result->metrics.grad_norm(), 0.0);
  EXPECT_GT(result->metrics.entropy(), 0.0);
  EXPECT_DOUBLE_EQ(result->metrics.learning_rate(), 1e-2);
  EXPECT_EQ(result->policy_version, 1);
  EXPECT_EQ((*trainer)->policy_version(), 1);
}

TEST_F(TrainerTest, LossDecreasesOnAFixedBatch) {
  std::unique_ptr<engine::CausalLM> model = TinyModel();
  Trajectories batch = Batch(*model);
  TrainerSettings settings = Settings();
  settings.trainer.learning_rate = 1e-3;
  settings.algorithm.clip_low = 0.9;  // wide: no clipping stalls the test
  settings.algorithm.clip_high = 10.0;
  auto trainer = *Trainer::CreateWithPolicy(settings, std::move(model));
  std::vector<double> losses;
  for (int step = 1; step <= 5; ++step) {
    auto result = trainer->TrainStep(step, batch);
    ASSERT_THAT(result.status(), IsOk());
    losses.push_back(result->metrics.loss());
  }
  for (size_t i = 1; i < losses.size(); ++i) {
    EXPECT_LT(losses[i], losses[i - 1]) << "step " << i + 1;
  }
  EXPECT_LT(losses.back(), -0.05);
}

TEST_F(TrainerTest, RecomputedAnchorAndTruncatedImportanceWeight) {
  // Rollout log-probs 0.5 below the trainer's own, advantages +1.
  std::unique_ptr<engine::CausalLM> model_a = TinyModel();
  Trajectories batch;
  *batch.Add() = MakeTrajectory(*model_a, {1, 10, 2}, {3, 11, 4}, 1.0, 0);
  *batch.Add() = MakeTrajectory(*model_a, {5, 12}, {8, 14, 9, 15}, 1.0, 1);
  for (v1::ScoredTrajectory& scored : batch) {
    auto* logprobs = scored.mutable_trajectory()->mutable_response_logprobs();
    for (float& logprob : *logprobs) logprob -= 0.5f;
  }
  // Cap 2 (default): the anchor is recomputed (ratio 1, nothing clipped) and
  // each token weighs min(exp(0.5), 2): loss = -exp(0.5).
  auto with_is = *Trainer::CreateWithPolicy(Settings(), std::move(model_a));
  auto a = with_is->TrainStep(1, batch);
  ASSERT_THAT(a.status(), IsOk());
  EXPECT_NEAR(a->metrics.loss(), -std::exp(0.5), 1e-5);
  EXPECT_EQ(a->metrics.clip_fraction(), 0.0);
  // Cap 0: the rollout log-probs are the anchor, the ratio exp(0.5) is
  // clipped at 1.28 for A > 0 on every token: loss = -1.28.
  TrainerSettings no_is = Settings();
  no_is.algorithm.importance_sampling_cap = 0;
  auto without_is = *Trainer::CreateWithPolicy(no_is, TinyModel());
  auto b = without_is->TrainStep(1, batch);
  ASSERT_THAT(b.status(), IsOk());
  EXPECT_NEAR(b->metrics.loss(), -1.28, 1e-5);
  EXPECT_NEAR(b->metrics.clip_fraction(), 1.0, 1e-9);
}

TEST_F(TrainerTest, RepeatedStepReturnsRecordedResultOutOfOrderRefused) {
  std::unique_ptr<engine::CausalLM> model = TinyModel();
  Trajectories batch = Batch(*model);
  auto trainer = *Trainer::CreateWithPolicy(Settings(), std::move(model));
  EXPECT_THAT(trainer->TrainStep(2, batch).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("expects step 1")));
  EXPECT_THAT(trainer->TrainStep(0, batch).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  auto first = trainer->TrainStep(1, batch);
  ASSERT_THAT(first.status(), IsOk());
  std::vector<at::Tensor> after_first = CloneParameters(trainer->policy());
  auto again = trainer->TrainStep(1, batch);
  ASSERT_THAT(again.status(), IsOk());
  EXPECT_EQ(again->metrics.SerializeAsString(),
            first->metrics.SerializeAsString());
  for (size_t i = 0; i < after_first.size(); ++i) {
    EXPECT_TRUE(at::equal(after_first[i],
                          trainer->policy().named_parameters()[i].second));
  }
  EXPECT_THAT(trainer->TrainStep(3, batch).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(trainer->TrainStep(2, batch).status(), IsOk());
}

TEST_F(TrainerTest, BadBatchesAreRefusedBeforeTraining) {
  std::unique_ptr<engine::CausalLM> model = TinyModel();
  Trajectories batch = Batch(*model);
  auto trainer = *Trainer::CreateWithPolicy(Settings(), std::move(model));
  EXPECT_THAT(trainer->TrainStep(1, Trajectories()).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  Trajectories bad = batch;
  bad[1].mutable_trajectory()->add_response_logprobs(0.0f);
  EXPECT_THAT(trainer->TrainStep(1, bad).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("trajectory t1 has 6 response_logprobs")));
  bad = batch;
  bad[2].mutable_trajectory()->set_prompt_token_ids(0, 19);
  EXPECT_THAT(trainer->TrainStep(1, bad).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("outside the vocabulary")));
  EXPECT_EQ(trainer->step(), 0);
  EXPECT_THAT(trainer->TrainStep(1, batch).status(), IsOk());
}

// Accumulating micro-batches must give the gradient of the whole minibatch:
// same loss, same gradient norm (Adam would hide a wrong scale), same
// parameters.
void ExpectMicroBatchingMatchesOneBatch(config::LossAggregation aggregation) {
  std::unique_ptr<engine::CausalLM> model_a = TinyModel();
  std::unique_ptr<engine::CausalLM> model_b = TinyModel();
  Trajectories batch = Batch(*model_a);
  TrainerSettings whole = Settings();
  whole.algorithm.loss_aggregation = aggregation;
  whole.trainer.micro_batch_size = 4;
  // Adam's first steps are about lr * sign(g): with a tiny eps, elements
  // whose gradient is float noise (~1e-10) would flip by 2 * lr between
  // the runs. A larger eps keeps the update continuous in g.
  whole.trainer.adam_eps = 1e-3;
  TrainerSettings micro = whole;
  micro.trainer.micro_batch_size = 1;
  auto trainer_a = *Trainer::CreateWithPolicy(whole, std::move(model_a));
  auto trainer_b = *Trainer::CreateWithPolicy(micro, std::move(model_b));
  for (int step = 1; step <= 2; ++step) {
    auto a = trainer_a->TrainStep(step, batch);
    auto b = trainer_b->TrainStep(step, batch);
    ASSERT_THAT(a.status(), IsOk());
    ASSERT_THAT(b.status(), IsOk());
    EXPECT_NEAR(a->metrics.loss(), b->metrics.loss(), 1e-6);
    EXPECT_NEAR(a->metrics.grad_norm(), b->metrics.grad_norm(),
                1e-5 * a->metrics.grad_norm());
    EXPECT_NEAR(a->metrics.entropy(), b->metrics.entropy(), 1e-5);
  }
  EXPECT_LT(MaxAbsDifference(trainer_a->policy(), trainer_b->policy()), 1e-5);
}

TEST_F(TrainerTest, MicroBatchingMatchesOneBatchTokenMean) {
  ExpectMicroBatchingMatchesOneBatch(config::LossAggregation::kTokenMean);
}

TEST_F(TrainerTest, MicroBatchingMatchesOneBatchSequenceMean) {
  ExpectMicroBatchingMatchesOneBatch(config::LossAggregation::kSequenceMean);
}

TEST_F(TrainerTest, MinibatchesAreSeparateOptimizerSteps) {
  std::unique_ptr<engine::CausalLM> model = TinyModel();
  Trajectories batch = Batch(*model);
  TrainerSettings settings = Settings();
  settings.trainer.minibatches_per_step = 2;
  auto trainer = *Trainer::CreateWithPolicy(settings, std::move(model));
  auto result = trainer->TrainStep(1, batch);
  ASSERT_THAT(result.status(), IsOk());
  // Minibatch 1 = t0, t1 (A = +1) at ratio 1: loss exactly -1. Minibatch 2
  // = t2, t3 (A = -1) runs on the updated weights: its ratios moved (KL > 0)
  // and its loss is the token mean of max(r, clip(r)) >= 0.8, so the step's
  // mean is >= -0.1 (one update over all four would give exactly 0 and KL 0).
  EXPECT_GT(result->metrics.approx_kl(), 1e-6);
  EXPECT_GE(result->metrics.loss(), -0.1 - 1e-6);
  EXPECT_EQ(result->metrics.num_tokens(), 16);
}

TEST_F(TrainerTest, LearningRateFollowsTheSchedule) {
  std::unique_ptr<engine::CausalLM> model = TinyModel();
  Trajectories batch = Batch(*model);
  TrainerSettings settings = Settings();
  settings.trainer.learning_rate = 1e-3;
  settings.trainer.warmup_steps = 2;
  settings.trainer.lr_schedule = config::LrSchedule::kCosine;
  settings.trainer.min_lr_ratio = 0.1;
  settings.total_steps = 4;
  auto trainer = *Trainer::CreateWithPolicy(settings, std::move(model));
  const double expected[] = {5e-4, 1e-3, 5.5e-4, 1e-4};
  for (int step = 1; step <= 4; ++step) {
    auto result = trainer->TrainStep(step, batch);
    ASSERT_THAT(result.status(), IsOk());
    EXPECT_NEAR(result->metrics.learning_rate(), expected[step - 1], 1e-12);
  }
}

TEST_F(TrainerTest, GradientClippingBoundsTheUpdate) {
  // With the gradient clipped to a norm far below Adam's eps, the first
  // AdamW update lr * g / (|g| + eps) is at most lr * clip / eps per element;
  // unclipped it is about lr. grad_norm reports the norm before clipping.
  std::unique_ptr<engine::CausalLM> model_a = TinyModel();
  std::unique_ptr<engine::CausalLM> model_b = TinyModel();
  Trajectories batch = Batch(*model_a);
  std::vector<at::Tensor> before = CloneParameters(*model_a);
  TrainerSettings clipped = Settings();
  clipped.trainer.grad_clip = 1e-10;
  auto trainer_a = *Trainer::CreateWithPolicy(clipped, std::move(model_a));
  auto trainer_b = *Trainer::CreateWithPolicy(Settings(), std::move(model_b));
  auto a = trainer_a->TrainStep(1, batch);
  auto b = trainer_b->TrainStep(1, batch);
  ASSERT_THAT(a.status(), IsOk());
  ASSERT_THAT(b.status(), IsOk());
  EXPECT_NEAR(a->metrics.grad_norm(), b->metrics.grad_norm(),
              1e-6 * b->metrics.grad_norm());
  EXPECT_GT(a->metrics.grad_norm(), 1e-3);
  auto max_change = [&](engine::CausalLM& model) {
    double change = 0;
    for (size_t i = 0; i < before.size(); ++i) {
      change = std::max(change, (model.named_parameters()[i].second - before[i])
                                    .abs()
                                    .max()
                                    .item<double>());
    }
    return change;
  };
  EXPECT_LT(max_change(trainer_a->policy()), 1e-2 * 0.011);
  EXPECT_GT(max_change(trainer_b->policy()), 1e-2 * 0.9);
}

// An in-process all-reduce for N ranks running on N threads: what the
// GradientSync seam asks of a real communicator, enough to check that data
// parallelism through it matches one process.
class InProcessAllReduce {
 public:
  explicit InProcessAllReduce(int world_size) : world_size_(world_size) {}

  absl::Status AllReduceSum(std::vector<at::Tensor>& tensors) {
    absl::MutexLock lock(&mutex_);
    const int64_t generation = generation_;
    if (arrived_ == 0) {
      sums_.clear();
      for (const at::Tensor& tensor : tensors) sums_.push_back(tensor.clone());
    } else {
      for (size_t i = 0; i < tensors.size(); ++i) sums_[i].add_(tensors[i]);
    }
    if (++arrived_ == world_size_) {
      result_ = sums_;
      arrived_ = 0;
      ++generation_;
      all_arrived_.SignalAll();
    } else {
      while (generation_ == generation) all_arrived_.Wait(&mutex_);
    }
    for (size_t i = 0; i < tensors.size(); ++i) tensors[i].copy_(result_[i]);
    return absl::OkStatus();
  }

 private:
  const int world_size_;
  absl::Mutex mutex_;
  absl::CondVar all_arrived_;
  int arrived_ = 0;
  int64_t generation_ = 0;
  std::vector<at::Tensor> sums_;
  std::vector<at::Tensor> result_;
};

class RankSync : public GradientSync {
 public:
  RankSync(InProcessAllReduce* group, int rank, int world_size)
      : group_(group), rank_(rank), world_size_(world_size) {}
  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  absl::Status AllReduceSum(std::vector<at::Tensor>& tensors) override {
    return group_->AllReduceSum(tensors);
  }

 private:
  InProcessAllReduce* group_;
  int rank_;
  int world_size_;
};

TEST_F(TrainerTest, TwoRanksThroughGradientSyncMatchOneRank) {
  std::unique_ptr<engine::CausalLM> single_model = TinyModel();
  Trajectories batch = Batch(*single_model);
  TrainerSettings settings = Settings();
  settings.trainer.minibatches_per_step = 2;
  settings.trainer.adam_eps = 1e-3;  // see ExpectMicroBatchingMatchesOneBatch
  auto single = *Trainer::CreateWithPolicy(settings, std::move(single_model));
  // Strided shards (trajectory i to rank i % 2): rank r's k-th minibatch
  // holds its part of the single run's k-th minibatch.
  Trajectories shards[2];
  for (int i = 0; i < batch.size(); ++i) *shards[i % 2].Add() = batch[i];
  InProcessAllReduce group(2);
  std::unique_ptr<RankSync> syncs[2];
  std::unique_ptr<Trainer> ranks[2];
  for (int r = 0; r < 2; ++r) {
    syncs[r] = std::make_unique<RankSync>(&group, r, 2);
    TrainerSettings rank_settings = settings;
    rank_settings.gradient_sync = syncs[r].get();
    ranks[r] = *Trainer::CreateWithPolicy(rank_settings, TinyModel());
  }
  for (int step = 1; step <= 2; ++step) {
    auto expected = single->TrainStep(step, batch);
    ASSERT_THAT(expected.status(), IsOk());
    absl::StatusOr<TrainStepResult> results[2];
    std::thread threads[2];
    for (int r = 0; r < 2; ++r) {
      threads[r] = std::thread(
          [&, r] { results[r] = ranks[r]->TrainStep(step, shards[r]); });
    }
    for (std::thread& thread : threads) thread.join();
    for (int r = 0; r < 2; ++r) {
      ASSERT_THAT(results[r].status(), IsOk());
      const v1::TrainMetrics& metrics = results[r]->metrics;
      EXPECT_EQ(metrics.num_tokens(), expected->metrics.num_tokens());
      EXPECT_EQ(metrics.num_trajectories(), 4);
      EXPECT_NEAR(metrics.loss(), expected->metrics.loss(), 1e-6);
      // float32 sums in another order, after an update: relative 1e-4.
      EXPECT_NEAR(metrics.grad_norm(), expected->metrics.grad_norm(),
                  1e-4 * expected->metrics.grad_norm());
      EXPECT_NEAR(metrics.approx_kl(), expected->metrics.approx_kl(), 1e-6);
    }
  }
  EXPECT_EQ(MaxAbsDifference(ranks[0]->policy(), ranks[1]->policy()), 0.0);
  EXPECT_LT(MaxAbsDifference(ranks[0]->policy(), single->policy()), 1e-5);
}

class TrainerCheckpointTest : public TrainerTest {
 protected:
  void SetUp() override {
    TrainerTest::SetUp();
    char pattern[] = "/tmp/trainer_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    ASSERT_THAT(files::RemoveRecursively(dir_), IsOk());
  }

  TrainerSettings CheckpointSettings() {
    TrainerSettings settings = Settings();
    settings.trainer.learning_rate = 1e-3;
    settings.trainer.weight_decay = 0.01;
    settings.checkpoint_dir = dir_ + "/checkpoints";
    settings.trainer.keep_checkpoints = 2;
    return settings;
  }

  std::string dir_;
};

TEST_F(TrainerCheckpointTest, SaveAndResumeRoundTrip) {
  std::unique_ptr<engine::CausalLM> model = TinyModel();
  Trajectories batch = Batch(*model);
  auto original =
      *Trainer::CreateWithPolicy(CheckpointSettings(), std::move(model));
  ASSERT_THAT(original->TrainStep(1, batch).status(), IsOk());
  auto second = original->TrainStep(2, batch);
  ASSERT_THAT(second.status(), IsOk());
  EXPECT_THAT(original->SaveCheckpoint(1, "x").status(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  const std::string snapshot("scheduler\0state", 15);
  auto path = original->SaveCheckpoint(2, snapshot);
  ASSERT_THAT(path.status(), IsOk());
  EXPECT_EQ(*path, dir_ + "/checkpoints/step-2");
  EXPECT_TRUE(files::PathExists(*path + "/policy/config.json"));
  EXPECT_TRUE(files::PathExists(*path + "/policy/model.safetensors"));
  // Keyed by step: the same step again keeps the first.
  auto again = original->SaveCheckpoint(2, "other");
  ASSERT_THAT(again.status(), IsOk());
  EXPECT_EQ(*files::ReadFile(*path + "/scheduler_snapshot.bin"), snapshot);

  // A different random model resumes into the checkpoint's state.
  auto resumed =
      *Trainer::CreateWithPolicy(CheckpointSettings(), TinyModel(/*seed=*/99));
  ASSERT_THAT(resumed->Resume(), ::fapo::testing::IsOkAndHolds(true));
  EXPECT_EQ(resumed->step(), 2);
  EXPECT_EQ(resumed->resume_info().step, 2);
  EXPECT_EQ(resumed->resume_info().policy_version, 2);
  EXPECT_EQ(resumed->resume_info().scheduler_snapshot, snapshot);
  EXPECT_EQ(resumed->resume_info().checkpoint_path, *path);
  EXPECT_EQ(MaxAbsDifference(original->policy(), resumed->policy()), 0.0);
  // The recorded result of step 2 survives the restart.
  auto repeat = resumed->TrainStep(2, batch);
  ASSERT_THAT(repeat.status(), IsOk());
  EXPECT_EQ(repeat->metrics.SerializeAsString(),
            second->metrics.SerializeAsString());
  // Same optimizer state: the next step lands on the same parameters.
  ASSERT_THAT(original->TrainStep(3, batch).status(), IsOk());
  ASSERT_THAT(resumed->TrainStep(3, batch).status(), IsOk());
  EXPECT_EQ(MaxAbsDifference(original->policy(), resumed->policy()), 0.0);
}

TEST_F(TrainerCheckpointTest, KeepsLastNAndSkipsCorruptedOnResume) {
  std::unique_ptr<engine::CausalLM> model = TinyModel();
  Trajectories batch = Batch(*model);
  auto trainer =
      *Trainer::CreateWithPolicy(CheckpointSettings(), std::move(model));
  for (int step = 1; step <= 3; ++step) {
    ASSERT_THAT(trainer->TrainStep(step, batch).status(), IsOk());
    ASSERT_THAT(trainer->SaveCheckpoint(step, absl::StrCat("s", step)).status(),
                IsOk());
  }
  const std::string root = dir_ + "/checkpoints";
  EXPECT_FALSE(files::PathExists(root + "/step-1"));  // keep_checkpoints 2
  // Corrupt the newest checkpoint's optimizer state (same size).
  const std::string optimizer = root + "/step-3/optimizer.pt";
  std::string bytes = *files::ReadFile(optimizer);
  bytes[bytes.size() / 2] ^= 0x5A;
  ASSERT_THAT(files::WriteFile(optimizer, bytes), IsOk());

  auto resumed =
      *Trainer::CreateWithPolicy(CheckpointSettings(), TinyModel(/*seed=*/5));
  ASSERT_THAT(resumed->Resume(), ::fapo::testing::IsOkAndHolds(true));
  EXPECT_EQ(resumed->step(), 2);
  EXPECT_EQ(resumed->resume_info().scheduler_snapshot, "s2");
}

TEST_F(TrainerCheckpointTest, CreateFromSpecExplainsAMissingPolicy) {
  config::JobSpec spec;
  spec.job.output_dir = dir_;
  spec.data.task = config::Task::kMath;
  EXPECT_THAT(Trainer::Create(spec).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("fapo init-model")));
  spec.policy.model_dir = dir_ + "/nothing-here";
  EXPECT_THAT(Trainer::Create(spec).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("holds no config.json")));
}

TEST_F(TrainerCheckpointTest, EmbeddedArithPolicyWhenModelDirIsUnset) {
  config::JobSpec spec;
  spec.job.output_dir = dir_;
  spec.job.seed = 4;
  auto trainer = Trainer::Create(spec);
  ASSERT_THAT(trainer.status(), IsOk());
  EXPECT_EQ((*trainer)->policy().config().vocab_size, 19);
  auto path = (*trainer)->SaveCheckpoint(0, "");
  ASSERT_THAT(path.status(), IsOk());
  EXPECT_TRUE(files::PathExists(*path + "/policy/tokenizer.json"));
}

TEST_F(TrainerCheckpointTest, CreateFromSpecLoadsAndResumes) {
  const std::string model_dir = dir_ + "/model";
  ASSERT_THAT(engine::WriteTinyArithModel(model_dir, 3), IsOk());
  config::JobSpec spec;
  spec.job.output_dir = dir_ + "/run";
  spec.job.steps = 10;
  spec.policy.model_dir = model_dir;
  spec.trainer.learning_rate = 1e-3;
  spec.algorithm.kl_coef = 0.1;
  auto trainer = Trainer::Create(spec);
  ASSERT_THAT(trainer.status(), IsOk());
  EXPECT_EQ((*trainer)->resume_info().step, 0);
  Trajectories batch = Batch((*trainer)->policy());
  ASSERT_THAT((*trainer)->TrainStep(1, batch).status(), IsOk());
  auto second = (*trainer)->TrainStep(2, batch);
  ASSERT_THAT(second.status(), IsOk());
  EXPECT_GT(second->metrics.approx_kl(), 0.0);
  auto path = (*trainer)->SaveCheckpoint(2, "snap");
  ASSERT_THAT(path.status(), IsOk());
  EXPECT_TRUE(files::PathExists(*path + "/policy/tokenizer.json"));

  auto resumed = Trainer::Create(spec);
  ASSERT_THAT(resumed.status(), IsOk());
  EXPECT_EQ((*resumed)->step(), 2);
  EXPECT_EQ((*resumed)->resume_info().scheduler_snapshot, "snap");
  EXPECT_EQ(MaxAbsDifference((*trainer)->policy(), (*resumed)->policy()), 0.0);
  spec.trainer.resume = false;
  auto fresh = Trainer::Create(spec);
  ASSERT_THAT(fresh.status(), IsOk());
  EXPECT_EQ((*fresh)->step(), 0);
}

TEST(LrScheduleOptionsTest, ComeFromTheSpecThroughTheSettings) {
  config::JobSpec spec;
  spec.trainer.learning_rate = 3e-4;
  spec.trainer.warmup_steps = 7;
  spec.trainer.lr_schedule = config::LrSchedule::kCosine;
  spec.trainer.min_lr_ratio = 0.5;
  spec.job.steps = 70;
  const LrScheduleOptions options =
      LrScheduleOptionsFromSettings(TrainerSettingsFromSpec(spec));
  EXPECT_EQ(options.peak, 3e-4);
  EXPECT_EQ(options.warmup_steps, 7);
  EXPECT_EQ(options.decay, LrDecay::kCosine);
  EXPECT_EQ(options.min_lr_ratio, 0.5);
  EXPECT_EQ(options.total_steps, 70);
}

}  // namespace
}  // namespace fapo::trainer
