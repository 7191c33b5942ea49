#include "trainer/comm/rank_group.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/tools/tools.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"
#include "trainer/comm/fake_communicator.h"

namespace fapo::trainer {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::HasSubstr;
using Trajectories = google::protobuf::RepeatedPtrField<v1::ScoredTrajectory>;

std::unique_ptr<engine::CausalLM> TinyModel() {
  auto model = engine::CausalLM::FromConfig(engine::TinyArithModelConfig(), 7);
  EXPECT_THAT(model.status(), IsOk());
  return *std::move(model);
}

TrainerSettings Settings() {
  TrainerSettings settings;
  settings.trainer.learning_rate = 1e-2;
  settings.trainer.weight_decay = 0.01;
  settings.trainer.grad_clip = 1.0;
  settings.trainer.minibatches_per_step = 2;
  settings.trainer.micro_batch_size = 2;
  // A large eps keeps AdamW from amplifying float-order noise in
  // near-zero gradients (as trainer_test's equivalence tests do).
  settings.trainer.adam_eps = 1e-3;
  settings.total_steps = 100;
  settings.algorithm.clip_low = 0.2;
  settings.algorithm.clip_high = 0.28;
  return settings;
}

// `count` trajectories of varied lengths and advantages; response_logprobs
// slightly off the policy's so the ratio is not 1 everywhere.
Trajectories Batch(int count) {
  Trajectories batch;
  for (int i = 0; i < count; ++i) {
    v1::ScoredTrajectory* scored = batch.Add();
    v1::Trajectory* trajectory = scored->mutable_trajectory();
    trajectory->set_trajectory_id(absl::StrCat("t", i));
    for (int j = 0; j < 2 + i % 3; ++j) {
      trajectory->add_prompt_token_ids(1 + (i * 7 + j) % 15);
    }
    for (int j = 0; j < 2 + (i * 5) % 7; ++j) {
      trajectory->add_response_token_ids(1 + (i * 3 + j * 11) % 15);
      trajectory->add_response_logprobs(-2.5f - 0.1f * ((i + j) % 4));
    }
    scored->set_advantage(i % 2 == 0 ? 1.0 : -0.5 - 0.1 * i);
  }
  return batch;
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

// World-size ranks over a FakeCommunicatorGroup: rank 0 a leader driven by
// the test thread, the others followers on their own threads. With
// `followers_run` false the followers join and then vanish, as a crashed
// process would.
class RankGroupHarness {
 public:
  RankGroupHarness(int world_size, TrainerSettings settings,
                   absl::Duration timeout = absl::Seconds(30),
                   RankGroupOptions options = {}, bool followers_run = true)
      : group_(world_size, timeout) {
    communicators_.resize(world_size);
    syncs_.resize(world_size);
    trainers_.resize(world_size);
    results_.resize(world_size);
    for (int r = 0; r < world_size; ++r) {
      communicators_[r] = group_.Rank(r);
      syncs_[r] =
          std::make_unique<BucketedGradientSync>(communicators_[r].get());
      TrainerSettings rank_settings = settings;
      rank_settings.gradient_sync = syncs_[r].get();
      trainers_[r] = *Trainer::CreateWithPolicy(rank_settings, TinyModel());
    }
    // Every rank joins at once (JoinRankGroup is a collective).
    for (int r = 1; r < world_size; ++r) {
      threads_.emplace_back([this, r, followers_run] {
        auto follower =
            RankGroupFollower::Create(*trainers_[r], communicators_[r].get());
        if (!follower.ok()) {
          results_[r] = follower.status();
          return;
        }
        if (!followers_run) {
          group_.SetRankDown(r);
          return;
        }
        results_[r] = (*follower)->Run([this] { return stop_.load(); });
        if (!results_[r].ok() && !absl::IsCancelled(results_[r])) {
          std::fprintf(stderr, "rank %d: %s\n", r,
                       std::string(results_[r].message()).c_str());
        }
      });
    }
    auto leader = RankGroupLeader::Create(*trainers_[0],
                                          communicators_[0].get(), options);
    EXPECT_THAT(leader.status(), IsOk());
    if (leader.ok()) leader_ = *std::move(leader);
  }

  // The leader's Stop ends the followers; stop_ only matters when there is
  // no leader.
  ~RankGroupHarness() {
    leader_.reset();
    stop_ = true;
    JoinFollowers();
  }

  // Stops the group and waits until every follower is done (so their
  // trainers can be inspected).
  void StopAndJoin() {
    EXPECT_THAT(leader_->Stop(), IsOk());
    JoinFollowers();
  }

  void JoinFollowers() {
    for (std::thread& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
  }

  RankGroupLeader& leader() { return *leader_; }
  void DestroyLeader() { leader_.reset(); }
  Trainer& trainer(int r) { return *trainers_[r]; }
  const absl::Status& follower_result(int r) { return results_[r]; }
  FakeCommunicatorGroup& group() { return group_; }

 private:
  FakeCommunicatorGroup group_;
  std::vector<std::unique_ptr<Communicator>> communicators_;
  std::vector<std::unique_ptr<BucketedGradientSync>> syncs_;
  std::vector<std::unique_ptr<Trainer>> trainers_;
  std::vector<absl::Status> results_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::unique_ptr<RankGroupLeader> leader_;
};

class RankGroupTest : public ::testing::Test {
 protected:
  void SetUp() override { at::set_num_threads(1); }
};

TEST_F(RankGroupTest, PlanShardsCoversTheBatchOnceBalancedAndInOrder) {
  const Trajectories batch = Batch(11);
  const ShardPlan plan = PlanShards(batch, 3, 2);
  ASSERT_EQ(plan.indices.size(), 3u);
  std::multiset<int> seen;
  for (int r = 0; r < 3; ++r) {
    int64_t sizes = 0;
    for (int64_t size : plan.minibatch_sizes[r]) sizes += size;
    EXPECT_EQ(sizes, static_cast<int64_t>(plan.indices[r].size()));
    // Minibatch 0 is [0, 5), minibatch 1 [5, 11): each rank's part of
    // minibatch 0 comes first, each part in batch order.
    for (int64_t i = 0; i < plan.minibatch_sizes[r][0]; ++i) {
      EXPECT_LT(plan.indices[r][i], 5);
    }
    EXPECT_TRUE(
        std::is_sorted(plan.indices[r].begin(),
                       plan.indices[r].begin() + plan.minibatch_sizes[r][0]));
    seen.insert(plan.indices[r].begin(), plan.indices[r].end());
  }
  EXPECT_EQ(seen.size(), 11u);
  EXPECT_EQ(std::set<int>(seen.begin(), seen.end()).size(), 11u);
  // Token loads differ by at most the longest trajectory.
  int64_t longest = 0;
  std::vector<int64_t> load(3, 0);
  for (int r = 0; r < 3; ++r) {
    for (int i : plan.indices[r]) {
      const int64_t cost = batch[i].trajectory().prompt_token_ids_size() +
                           batch[i].trajectory().response_token_ids_size();
      load[r] += cost;
      longest = std::max(longest, cost);
    }
  }
  const auto [low, high] = std::minmax_element(load.begin(), load.end());
  EXPECT_LE(*high - *low, 2 * longest);
  // Deterministic.
  const ShardPlan again = PlanShards(batch, 3, 2);
  EXPECT_EQ(again.indices, plan.indices);
  EXPECT_EQ(again.minibatch_sizes, plan.minibatch_sizes);
}

// The acceptance check: N ranks reach one process's parameters on
// the same global batch, whatever the batch size (not a multiple of
// ranks * minibatches here), with global metrics on rank 0.
void ExpectRanksMatchOneProcess(int world_size, int batch_size) {
  const Trajectories batch = Batch(batch_size);
  auto single = *Trainer::CreateWithPolicy(Settings(), TinyModel());
  RankGroupHarness ranks(world_size, Settings());
  for (int step = 1; step <= 3; ++step) {
    auto expected = single->TrainStep(step, batch);
    ASSERT_THAT(expected.status(), IsOk());
    auto result = ranks.leader().TrainStep(ranks.trainer(0), step, batch);
    ASSERT_THAT(result.status(), IsOk());
    const v1::TrainMetrics& metrics = result->metrics;
    const v1::TrainMetrics& want = expected->metrics;
    EXPECT_EQ(metrics.num_tokens(), want.num_tokens());
    EXPECT_EQ(metrics.num_trajectories(), batch_size);
    EXPECT_NEAR(metrics.loss(), want.loss(), 1e-5);
    EXPECT_NEAR(metrics.grad_norm(), want.grad_norm(), 1e-4 * want.grad_norm());
    EXPECT_NEAR(metrics.clip_fraction(), want.clip_fraction(), 1e-6);
    EXPECT_NEAR(metrics.approx_kl(), want.approx_kl(), 1e-5);
    EXPECT_NEAR(metrics.entropy(), want.entropy(), 1e-4);
  }
  ranks.StopAndJoin();
  for (int r = 0; r < world_size; ++r) EXPECT_EQ(ranks.trainer(r).step(), 3);
  double between_ranks = 0;
  for (int r = 1; r < world_size; ++r) {
    between_ranks = std::max(
        between_ranks,
        MaxAbsDifference(ranks.trainer(0).policy(), ranks.trainer(r).policy()));
  }
  const double versus_single =
      MaxAbsDifference(ranks.trainer(0).policy(), single->policy());
  std::printf(
      "%d ranks, %d trajectories, 3 steps: max |param diff| vs 1 "
      "rank %.3g, between ranks %.3g\n",
      world_size, batch_size, versus_single, between_ranks);
  EXPECT_EQ(between_ranks, 0.0);
  EXPECT_LT(versus_single, 1e-5);
}

TEST_F(RankGroupTest, TwoRanksMatchOneProcess) {
  ExpectRanksMatchOneProcess(2, 10);
}

TEST_F(RankGroupTest, ThreeRanksMatchOneProcessEvenWithEmptyShards) {
  // 4 trajectories in 2 minibatches of 2 over 3 ranks: one rank has
  // nothing in each minibatch.
  ExpectRanksMatchOneProcess(3, 4);
}

TEST_F(RankGroupTest, RepeatsOrderErrorsAndBadBatchesStayOnRankZero) {
  RankGroupHarness ranks(2, Settings());
  const Trajectories batch = Batch(4);
  auto first = ranks.leader().TrainStep(ranks.trainer(0), 1, batch);
  ASSERT_THAT(first.status(), IsOk());
  // A retried step: the recorded result, nothing sent.
  auto repeat = ranks.leader().TrainStep(ranks.trainer(0), 1, batch);
  ASSERT_THAT(repeat.status(), IsOk());
  EXPECT_EQ(repeat->metrics.loss(), first->metrics.loss());
  EXPECT_THAT(ranks.leader().TrainStep(ranks.trainer(0), 3, batch),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(ranks.leader().TrainStep(ranks.trainer(0), 2, Trajectories()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  Trajectories bad = batch;
  bad[3].mutable_trajectory()->add_response_token_ids(1);  // no log-prob
  EXPECT_THAT(ranks.leader().TrainStep(ranks.trainer(0), 2, bad),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("response_logprobs")));
  // The group is intact.
  EXPECT_THAT(ranks.leader().TrainStep(ranks.trainer(0), 2, batch).status(),
              IsOk());
  ranks.StopAndJoin();
  EXPECT_EQ(ranks.trainer(1).step(), 2);
}

TEST_F(RankGroupTest, KeepAlivesBridgeIdleGapsLongerThanTheTimeout) {
  RankGroupOptions options;
  options.keep_alive_interval = absl::Milliseconds(50);
  // The timeout still leaves room for a step's work on a loaded machine.
  RankGroupHarness ranks(2, Settings(), absl::Milliseconds(1500), options);
  absl::SleepFor(absl::Seconds(4));  // idle for over 2 collective timeouts
  EXPECT_THAT(ranks.leader().TrainStep(ranks.trainer(0), 1, Batch(4)).status(),
              IsOk());
  ranks.StopAndJoin();
  EXPECT_EQ(ranks.trainer(1).step(), 1);
}

TEST_F(RankGroupTest, StopEndsTheFollowers) {
  RankGroupHarness ranks(3, Settings());
  ASSERT_THAT(ranks.leader().TrainStep(ranks.trainer(0), 1, Batch(4)).status(),
              IsOk());
  EXPECT_THAT(ranks.leader().Stop(), IsOk());
  ranks.JoinFollowers();
  EXPECT_THAT(ranks.follower_result(1), IsOk());
  EXPECT_THAT(ranks.follower_result(2), IsOk());
  EXPECT_THAT(ranks.leader().TrainStep(ranks.trainer(0), 2, Batch(4)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("shutting down")));
}

TEST_F(RankGroupTest, ALostRankFailsTheStepAndBreaksTheGroup) {
  std::atomic<int> lost_calls{0};
  RankGroupOptions options;
  options.keep_alive_interval = absl::Seconds(60);  // only the step notices
  options.on_group_lost = [&](const absl::Status&) { ++lost_calls; };
  RankGroupHarness ranks(2, Settings(), absl::Seconds(5), options,
                         /*followers_run=*/false);
  ranks.JoinFollowers();  // rank 1 joined, then vanished
  auto failed = ranks.leader().TrainStep(ranks.trainer(0), 1, Batch(4));
  EXPECT_THAT(failed, StatusIs(absl::StatusCode::kAborted,
                               HasSubstr("restart every rank")));
  EXPECT_THAT(failed.status().message(), HasSubstr("lost rank(s) 1"));
  EXPECT_THAT(failed.status().message(), HasSubstr("trainer rank 0/2"));
  EXPECT_EQ(lost_calls.load(), 1);
  EXPECT_THAT(
      ranks.leader().TrainStep(ranks.trainer(0), 1, Batch(4)),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("lost rank")));
  EXPECT_EQ(lost_calls.load(), 1);
}

TEST_F(RankGroupTest, AnIdleGroupFindsALostRankThroughTheKeepAlive) {
  std::atomic<int> lost_calls{0};
  RankGroupOptions options;
  options.keep_alive_interval = absl::Milliseconds(50);
  options.on_group_lost = [&](const absl::Status&) { ++lost_calls; };
  RankGroupHarness ranks(2, Settings(), absl::Seconds(5), options,
                         /*followers_run=*/false);
  ranks.JoinFollowers();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (lost_calls.load() == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(lost_calls.load(), 1);
  EXPECT_THAT(ranks.leader().TrainStep(ranks.trainer(0), 1, Batch(4)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("while the trainer was idle")));
}

TEST_F(RankGroupTest, JoinRefusesRanksAtDifferentSteps) {
  FakeCommunicatorGroup group(2, absl::Seconds(10));
  auto rank0 = group.Rank(0);
  auto rank1 = group.Rank(1);
  auto trainer0 = *Trainer::CreateWithPolicy(Settings(), TinyModel());
  auto trainer1 = *Trainer::CreateWithPolicy(Settings(), TinyModel());
  ASSERT_THAT(trainer1->TrainStep(1, Batch(2)).status(), IsOk());
  absl::Status joined1;
  std::thread other([&] { joined1 = JoinRankGroup(*trainer1, *rank1); });
  absl::Status joined0 = JoinRankGroup(*trainer0, *rank0);
  other.join();
  EXPECT_THAT(joined0, StatusIs(absl::StatusCode::kFailedPrecondition,
                                HasSubstr("rank 1 is at step 1")));
  EXPECT_FALSE(joined1.ok() && joined0.ok());
}

}  // namespace
}  // namespace fapo::trainer
