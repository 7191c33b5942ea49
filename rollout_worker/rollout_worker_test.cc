#include "rollout_worker/rollout_worker.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "engine/model/model.h"
#include "engine/tokenizer/chat_format.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tools/tools.h"
#include "engine/weights/weights.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/metrics/metrics_registry.h"
#include "services/metrics/metrics_testing.h"
#include "services/status/status_matchers.h"
#include "tests/support/subprocess.h"

namespace fapo::rollout {
namespace {

using ::fapo::testing::StatusIs;
using ::testing::HasSubstr;

// Serves the snapshot it holds; can corrupt one chunk.
class FakeWeightsFetcher : public WeightsFetcher {
 public:
  void Set(std::shared_ptr<const engine::WeightsSnapshot> snapshot) {
    snapshot_ = std::move(snapshot);
  }
  void CorruptMessage(int index) { corrupt_index_ = index; }
  int fetches() const { return fetches_.load(); }
  std::string last_source() const { return last_source_; }

  absl::Status Fetch(const std::string& source_address, int64_t version,
                     engine::WeightsAssembler& assembler) override {
    ++fetches_;
    last_source_ = source_address;
    if (snapshot_ == nullptr || snapshot_->version < version) {
      return absl::UnavailableError("no such weights");
    }
    absl::Status status;
    int index = 0;
    engine::ForEachWeightsMessage(
        *snapshot_, 64, [&](const v1::WeightsMessage& message) {
          v1::WeightsMessage copy = message;
          if (index++ == corrupt_index_) {
            (*copy.mutable_chunk()->mutable_data())[1] ^= 0x20;
          }
          status = assembler.Add(copy);
          return status.ok();
        });
    if (!status.ok()) return status;
    return assembler.Finish();
  }

 private:
  std::shared_ptr<const engine::WeightsSnapshot> snapshot_;
  int corrupt_index_ = -1;
  std::atomic<int> fetches_{0};
  std::string last_source_;
};

struct GenerateOutcome {
  std::vector<v1::Trajectory> trajectories;
  absl::Status status;
};

class RolloutWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    at::set_num_threads(1);
    ASSERT_OK_AND_ASSIGN(dir_, testing::MakeTempDir("rollout-worker-test-"));
    ASSERT_OK(engine::WriteTinyArithModel(dir_, 1));
    ASSERT_OK_AND_ASSIGN(auto other_dir,
                         testing::MakeTempDir("rollout-worker-test-v1-"));
    ASSERT_OK(engine::WriteTinyArithModel(other_dir, 2));
    ASSERT_OK_AND_ASSIGN(auto other, engine::CausalLM::Load(other_dir));
    ASSERT_OK_AND_ASSIGN(next_weights_, engine::SnapshotWeights(*other, 1));
    std::system(("rm -rf " + other_dir).c_str());
    StartWorker();
  }
  void TearDown() override {
    worker_.reset();
    std::system(("rm -rf " + dir_).c_str());
  }

  void StartWorker(RolloutWorkerOptions options = {}) {
    worker_.reset();
    ASSERT_OK_AND_ASSIGN(auto model, engine::CausalLM::Load(dir_));
    ASSERT_OK_AND_ASSIGN(auto tokenizer,
                         engine::Tokenizer::FromFile(dir_ + "/tokenizer.json"));
    tokenizer_ = tokenizer.get();
    auto fetcher = std::make_unique<FakeWeightsFetcher>();
    fetcher_ = fetcher.get();
    fetcher_->Set(next_weights_);
    if (options.worker_id.empty()) options.worker_id = "worker-a";
    ASSERT_OK_AND_ASSIGN(
        worker_, RolloutWorker::Create(std::move(model), std::move(tokenizer),
                                       std::move(fetcher), options));
  }

  static v1::GenerateRequest Request(const std::string& group, int samples,
                                     uint64_t seed) {
    v1::GenerateRequest request;
    request.set_request_id(group);
    request.set_group_id(group);
    request.mutable_prompt()->set_prompt_id("p-" + group);
    request.mutable_prompt()->set_text("12+34=");
    request.set_num_samples(samples);
    request.mutable_sampling()->set_temperature(1.0f);
    request.mutable_sampling()->set_top_p(1.0f);
    request.mutable_sampling()->set_max_new_tokens(12);
    request.mutable_sampling()->set_seed(seed);
    return request;
  }

  GenerateOutcome RunGenerate(const v1::GenerateRequest& request) {
    GenerateOutcome outcome;
    absl::Notification done;
    worker_->Generate(
        request,
        [&](v1::Trajectory t) { outcome.trajectories.push_back(std::move(t)); },
        [&](absl::Status status) {
          outcome.status = status;
          done.Notify();
        });
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(60)));
    return outcome;
  }

  absl::StatusOr<WeightsUpdate> Update(int64_t version) {
    absl::StatusOr<WeightsUpdate> result;
    absl::Notification done;
    worker_->UpdateWeights(version, "trainer:1",
                           [&](absl::StatusOr<WeightsUpdate> update) {
                             result = std::move(update);
                             done.Notify();
                           });
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(60)));
    return result;
  }

  // Token ids by sample index.
  static std::map<int, std::vector<int>> Responses(
      const GenerateOutcome& outcome) {
    std::map<int, std::vector<int>> by_index;
    for (const auto& t : outcome.trajectories) {
      by_index[t.sample_index()] = {t.response_token_ids().begin(),
                                    t.response_token_ids().end()};
    }
    return by_index;
  }

  std::string dir_;
  std::shared_ptr<const engine::WeightsSnapshot> next_weights_;
  engine::Tokenizer* tokenizer_ = nullptr;
  FakeWeightsFetcher* fetcher_ = nullptr;
  std::unique_ptr<RolloutWorker> worker_;
};

TEST_F(RolloutWorkerTest, GenerateReturnsTheGroupWithConsistentFields) {
  const GenerateOutcome outcome = RunGenerate(Request("g7", 4, 5));
  ASSERT_OK(outcome.status);
  ASSERT_EQ(outcome.trajectories.size(), 4u);
  // NOTE [policy prompt]: the text and a newline.
  const std::vector<int> prompt_ids = tokenizer_->Encode("12+34=\n");
  std::set<int> indices;
  for (const v1::Trajectory& t : outcome.trajectories) {
    indices.insert(t.sample_index());
    EXPECT_EQ(t.trajectory_id(), absl::StrCat("g7/", t.sample_index()));
    EXPECT_EQ(t.group_id(), "g7");
    EXPECT_EQ(t.prompt_id(), "p-g7");
    EXPECT_EQ(std::vector<int>(t.prompt_token_ids().begin(),
                               t.prompt_token_ids().end()),
              prompt_ids);
    EXPECT_GE(t.response_token_ids_size(), 1);
    EXPECT_LE(t.response_token_ids_size(), 12);
    EXPECT_EQ(t.response_logprobs_size(), t.response_token_ids_size());
    for (float logprob : t.response_logprobs()) EXPECT_LE(logprob, 0.0f);
    std::vector<int> response(t.response_token_ids().begin(),
                              t.response_token_ids().end());
    // NOTE [response text]: the stop token that ended it is not text.
    if (t.finish_reason() == v1::FINISH_REASON_STOP) {
      absl::StatusOr<std::string> stop = tokenizer_->Decode({response.back()});
      ASSERT_TRUE(stop.ok());
      EXPECT_THAT(*stop, ::testing::StartsWith("<|"));
      EXPECT_THAT(t.response_text(), ::testing::Not(HasSubstr(*stop)));
      response.pop_back();
    }
    EXPECT_EQ(t.response_text(), *tokenizer_->Decode(response));
    EXPECT_EQ(t.policy_version(), 0);
    EXPECT_EQ(t.worker_id(), "worker-a");
    EXPECT_TRUE(t.finish_reason() == v1::FINISH_REASON_STOP ||
                t.finish_reason() == v1::FINISH_REASON_LENGTH);
    if (t.finish_reason() == v1::FINISH_REASON_LENGTH) {
      EXPECT_EQ(t.response_token_ids_size(), 12);
    }
    EXPECT_GT(t.generation_started().seconds(), 0);
    EXPECT_GE(t.generation_finished().seconds() * 1000000000LL +
                  t.generation_finished().nanos(),
              t.generation_started().seconds() * 1000000000LL +
                  t.generation_started().nanos());
  }
  EXPECT_EQ(indices, (std::set<int>{0, 1, 2, 3}));
  // Streamed in order of finishing: never a longer response before a
  // shorter one.
  for (size_t i = 1; i < outcome.trajectories.size(); ++i) {
    EXPECT_LE(outcome.trajectories[i - 1].response_token_ids_size(),
              outcome.trajectories[i].response_token_ids_size());
  }
  EXPECT_EQ(worker_->in_flight(), 0);
}

TEST_F(RolloutWorkerTest, SameSeedSameSamples) {
  const auto first = Responses(RunGenerate(Request("a", 6, 42)));
  const auto again = Responses(RunGenerate(Request("b", 6, 42)));
  const auto other = Responses(RunGenerate(Request("c", 6, 43)));
  EXPECT_EQ(first, again);
  EXPECT_NE(first, other);
}

TEST_F(RolloutWorkerTest, PromptTokenIdsWinOverText) {
  v1::GenerateRequest request = Request("ids", 2, 1);
  request.mutable_prompt()->add_token_ids(3);
  request.mutable_prompt()->add_token_ids(4);
  const GenerateOutcome outcome = RunGenerate(request);
  ASSERT_OK(outcome.status);
  for (const auto& t : outcome.trajectories) {
    EXPECT_THAT(t.prompt_token_ids(), ::testing::ElementsAre(3, 4));
  }
}

TEST_F(RolloutWorkerTest, BadRequestsAreRefused) {
  v1::GenerateRequest request = Request("bad", 0, 1);
  EXPECT_THAT(
      RunGenerate(request).status,
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("num_samples")));
  request = Request("bad", 2, 1);
  request.mutable_prompt()->clear_text();
  EXPECT_THAT(RunGenerate(request).status,
              StatusIs(absl::StatusCode::kInvalidArgument));
  request = Request("bad", 2, 1);
  request.mutable_prompt()->add_token_ids(999);
  EXPECT_THAT(RunGenerate(request).status,
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("999")));
  request = Request("bad", 2, 1);
  request.mutable_sampling()->set_max_new_tokens(0);
  EXPECT_THAT(RunGenerate(request).status,
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("max_new_tokens")));
}

TEST_F(RolloutWorkerTest, StaleWorkerRefusesWithFailedPrecondition) {
  v1::GenerateRequest request = Request("new", 2, 1);
  request.set_min_policy_version(1);
  const GenerateOutcome outcome = RunGenerate(request);
  EXPECT_THAT(outcome.status, StatusIs(absl::StatusCode::kFailedPrecondition,
                                       HasSubstr("holds policy version 0")));
  EXPECT_TRUE(outcome.trajectories.empty());
  // Once it holds version 1, the same request is served.
  ASSERT_OK(Update(1));
  EXPECT_OK(RunGenerate(request).status);
}

TEST_F(RolloutWorkerTest, UpdateWeightsSwapsInTheNewVersion) {
  v1::GenerateRequest request = Request("g", 4, 9);
  request.mutable_sampling()->set_temperature(0.0f);
  const GenerateOutcome before = RunGenerate(request);
  ASSERT_OK_AND_ASSIGN(WeightsUpdate update, Update(1));
  EXPECT_EQ(update.policy_version, 1);
  EXPECT_EQ(update.bytes_received, next_weights_->manifest.total_bytes());
  EXPECT_EQ(worker_->policy_version(), 1);
  EXPECT_EQ(fetcher_->last_source(), "trainer:1");
  const GenerateOutcome after = RunGenerate(request);
  ASSERT_OK(after.status);
  for (const auto& t : after.trajectories) EXPECT_EQ(t.policy_version(), 1);
  // Other weights, other log-probs for the same greedy request.
  EXPECT_NE(before.trajectories[0].response_logprobs(0),
            after.trajectories[0].response_logprobs(0));
}

TEST_F(RolloutWorkerTest, VersionsOnlyMoveForward) {
  ASSERT_OK_AND_ASSIGN(WeightsUpdate same, Update(0));
  EXPECT_EQ(same.policy_version, 0);
  EXPECT_EQ(same.bytes_received, 0);
  EXPECT_EQ(fetcher_->fetches(), 0);
  ASSERT_OK(Update(1));
  EXPECT_EQ(fetcher_->fetches(), 1);
  ASSERT_OK_AND_ASSIGN(WeightsUpdate older, Update(1));
  EXPECT_EQ(older.policy_version, 1);
  EXPECT_EQ(fetcher_->fetches(), 1);
  EXPECT_EQ(worker_->policy_version(), 1);
}

TEST_F(RolloutWorkerTest, CorruptedTransferKeepsTheOldWeights) {
  v1::GenerateRequest request = Request("g", 3, 9);
  const GenerateOutcome before = RunGenerate(request);
  fetcher_->CorruptMessage(5);
  EXPECT_THAT(Update(1), StatusIs(absl::StatusCode::kInvalidArgument,
                                  HasSubstr("CRC-32C")));
  EXPECT_EQ(worker_->policy_version(), 0);
  const GenerateOutcome after = RunGenerate(request);
  ASSERT_OK(after.status);
  EXPECT_EQ(Responses(before), Responses(after));
  for (const auto& t : after.trajectories) EXPECT_EQ(t.policy_version(), 0);
  // A version the source does not have: the error comes back, nothing
  // changes.
  EXPECT_THAT(Update(5), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(worker_->policy_version(), 0);
}

TEST_F(RolloutWorkerTest, CancelStopsARunningGroupAndDropsAQueuedOne) {
  v1::GenerateRequest running = Request("run", 8, 3);
  running.mutable_sampling()->set_max_new_tokens(64);
  std::shared_ptr<RolloutWorker::Call> queued_call;
  std::shared_ptr<RolloutWorker::Call> running_call;
  std::vector<v1::Trajectory> got;
  absl::Status running_status, queued_status;
  absl::Notification running_done, queued_done, started;
  int queued_trajectories = 0;
  running_call = worker_->Generate(
      running,
      [&](v1::Trajectory t) {
        got.push_back(std::move(t));
        // On the generation thread mid-batch: the other group is queued.
        started.WaitForNotification();
        running_call->Cancel();
        queued_call->Cancel();
      },
      [&](absl::Status status) {
        running_status = status;
        running_done.Notify();
      });
  queued_call = worker_->Generate(
      Request("queued", 2, 1), [&](v1::Trajectory) { ++queued_trajectories; },
      [&](absl::Status status) {
        queued_status = status;
        queued_done.Notify();
      });
  started.Notify();
  ASSERT_TRUE(running_done.WaitForNotificationWithTimeout(absl::Seconds(60)));
  ASSERT_TRUE(queued_done.WaitForNotificationWithTimeout(absl::Seconds(60)));
  EXPECT_THAT(running_status, StatusIs(absl::StatusCode::kCancelled));
  EXPECT_EQ(got.size(), 1u);
  EXPECT_THAT(queued_status,
              StatusIs(absl::StatusCode::kCancelled, HasSubstr("queued")));
  EXPECT_EQ(queued_trajectories, 0);
  EXPECT_EQ(worker_->in_flight(), 0);
}

TEST_F(RolloutWorkerTest, CancellingAQueuedCallEndsItAtOnce) {
  absl::Notification first_trajectory, release, running_done;
  bool blocked = false;
  worker_->Generate(
      Request("run", 2, 3),
      [&](v1::Trajectory) {
        if (blocked) return;
        blocked = true;
        first_trajectory.Notify();
        release.WaitForNotification();  // holds the generation thread
      },
      [&](absl::Status) { running_done.Notify(); });
  absl::Status queued_status;
  bool queued_done = false;
  auto queued = worker_->Generate(
      Request("queued", 2, 1), [](v1::Trajectory) {},
      [&](absl::Status status) {
        queued_status = status;
        queued_done = true;
      });
  ASSERT_TRUE(
      first_trajectory.WaitForNotificationWithTimeout(absl::Seconds(60)));
  EXPECT_EQ(worker_->in_flight(), 2);
  queued->Cancel();
  // Ended inside Cancel(), while the generation thread is still busy.
  EXPECT_TRUE(queued_done);
  EXPECT_THAT(queued_status,
              StatusIs(absl::StatusCode::kCancelled, HasSubstr("queued")));
  EXPECT_EQ(worker_->in_flight(), 1);
  queued->Cancel();  // again: nothing more happens
  release.Notify();
  ASSERT_TRUE(running_done.WaitForNotificationWithTimeout(absl::Seconds(60)));
}

TEST_F(RolloutWorkerTest, ExportsMetrics) {
  std::unique_ptr<metrics::MetricsRegistry> registry =
      metrics::NewMetricsRegistry();
  RolloutWorkerOptions options;
  options.registry = registry.get();
  StartWorker(options);
  const GenerateOutcome outcome = RunGenerate(Request("m", 3, 2));
  ASSERT_OK(outcome.status);
  int64_t tokens = 0;
  for (const auto& t : outcome.trajectories) {
    tokens += t.response_token_ids_size();
  }
  fetcher_->CorruptMessage(2);
  EXPECT_FALSE(Update(1).ok());
  fetcher_->CorruptMessage(-1);
  ASSERT_OK(Update(1));
  namespace mt = metrics::testing;
  double trajectories = 0;
  for (const metrics::Labels& labels :
       mt::SeriesLabels(*registry, "fapo_rollout_worker_trajectories_total")) {
    trajectories +=
        *mt::Value(*registry, "fapo_rollout_worker_trajectories_total", labels);
  }
  EXPECT_EQ(trajectories, 3);
  EXPECT_EQ(mt::Value(*registry, "fapo_rollout_worker_tokens_total"), tokens);
  EXPECT_EQ(mt::Value(*registry, "fapo_rollout_worker_weight_syncs_total",
                      {{"result", "ok"}}),
            1);
  EXPECT_EQ(mt::Value(*registry, "fapo_rollout_worker_weight_syncs_total",
                      {{"result", "error"}}),
            1);
  EXPECT_EQ(mt::Value(*registry, "fapo_rollout_worker_weight_sync_bytes_total"),
            next_weights_->manifest.total_bytes());
  EXPECT_EQ(mt::Value(*registry, "fapo_rollout_worker_policy_version"), 1);
}

TEST_F(RolloutWorkerTest, ShutdownEndsEverythingUnavailable) {
  worker_->Shutdown();
  EXPECT_THAT(RunGenerate(Request("late", 2, 1)).status,
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(Update(1), StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(RolloutWorkerTest, ChatmlWrapsTextPrompts) {
  RolloutWorkerOptions options;
  options.chatml = true;
  StartWorker(options);
  const GenerateOutcome outcome = RunGenerate(Request("chat", 2, 1));
  ASSERT_OK(outcome.status);
  const std::vector<int> expected = tokenizer_->Encode(
      engine::FormatChatML({engine::ChatMessage{"user", "12+34="}}, true));
  for (const auto& t : outcome.trajectories) {
    EXPECT_EQ(std::vector<int>(t.prompt_token_ids().begin(),
                               t.prompt_token_ids().end()),
              expected);
  }
}

}  // namespace
}  // namespace fapo::rollout
