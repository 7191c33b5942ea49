// The contract of communicator.h, run against every implementation: the
// fake (1, 2 and 3 ranks), Gloo over loopback (1, 2 and 3 ranks as threads
// of this process) and LocalCommunicator. Also the DDP-style helpers, and
// the data-parallel check of issue #6: N ranks, each on its shard of a
// global batch with averaged gradients, reach the parameters one rank
// reaches on the whole batch.
#include <torch/torch.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_macros.h"
#include "services/status/status_matchers.h"
#include "tests/support/subprocess.h"
#include "trainer/comm/communicator.h"
#include "trainer/comm/fake_communicator.h"
#include "trainer/comm/gloo_communicator.h"

namespace fapo::trainer {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::HasSubstr;

using Group = std::vector<std::unique_ptr<Communicator>>;

absl::StatusOr<Group> MakeFakeGroup(int world_size, absl::Duration timeout) {
  FakeCommunicatorGroup fake(world_size, timeout);
  Group group;
  for (int r = 0; r < world_size; ++r) group.push_back(fake.Rank(r));
  return group;
}

// Every rank's Create blocks until all have joined, so one thread each.
absl::StatusOr<Group> TryMakeGlooGroup(int world_size, absl::Duration timeout) {
  AllowRanksInOneProcess();
  ASSIGN_OR_RETURN(int port, fapo::testing::FreeLoopbackPort());
  std::vector<absl::StatusOr<std::unique_ptr<GlooCommunicator>>> created;
  for (int r = 0; r < world_size; ++r) {
    created.emplace_back(absl::UnknownError("not run"));
  }
  std::vector<std::thread> threads;
  for (int r = 0; r < world_size; ++r) {
    threads.emplace_back([&, r] {
      GlooCommunicatorOptions options;
      options.rank = r;
      options.world_size = world_size;
      options.store_port = port;
      options.timeout = timeout;
      created[r] = GlooCommunicator::Create(options);
    });
  }
  for (std::thread& thread : threads) thread.join();
  Group group;
  for (auto& communicator : created) {
    RETURN_IF_ERROR(communicator.status());
    group.push_back(std::move(*communicator));
  }
  return group;
}

// The port was free a moment ago; another test may take it first (then
// the store cannot listen and the group fails fast): try a fresh one.
absl::StatusOr<Group> MakeGlooGroup(int world_size, absl::Duration timeout) {
  absl::StatusOr<Group> group = TryMakeGlooGroup(world_size, timeout);
  for (int attempt = 1; attempt < 3 && !group.ok() &&
                        group.status().code() == absl::StatusCode::kUnavailable;
       ++attempt) {
    group = TryMakeGlooGroup(world_size, timeout);
  }
  return group;
}

absl::StatusOr<Group> MakeLocalGroup(int world_size, absl::Duration) {
  if (world_size != 1) return absl::InvalidArgumentError("local is 1 rank");
  Group group;
  group.push_back(std::make_unique<LocalCommunicator>());
  return group;
}

struct ContractParam {
  std::string backend;
  int world_size;
};

std::string ParamName(const ::testing::TestParamInfo<ContractParam>& info) {
  return absl::StrCat(info.param.backend, info.param.world_size);
}

// Runs body(rank, communicator) on one thread per rank, as ranks run.
void RunOnRanks(Group& group,
                const std::function<void(int, Communicator&)>& body) {
  std::vector<std::thread> threads;
  for (int r = 0; r < static_cast<int>(group.size()); ++r) {
    threads.emplace_back([&, r] { body(r, *group[r]); });
  }
  for (std::thread& thread : threads) thread.join();
}

class CommunicatorContractTest
    : public ::testing::TestWithParam<ContractParam> {
 protected:
  void SetUp() override { at::set_num_threads(1); }

  absl::StatusOr<Group> MakeGroup(absl::Duration timeout = absl::Seconds(30)) {
    const ContractParam& param = GetParam();
    if (param.backend == "fake")
      return MakeFakeGroup(param.world_size, timeout);
    if (param.backend == "gloo")
      return MakeGlooGroup(param.world_size, timeout);
    return MakeLocalGroup(param.world_size, timeout);
  }
  int world_size() const { return GetParam().world_size; }
};

TEST_P(CommunicatorContractTest, ReportsRankAndWorldSize) {
  ASSERT_OK_AND_ASSIGN(Group group, MakeGroup());
  for (int r = 0; r < world_size(); ++r) {
    EXPECT_EQ(group[r]->rank(), r);
    EXPECT_EQ(group[r]->world_size(), world_size());
    EXPECT_EQ(group[r]->backend_name(), GetParam().backend);
  }
}

TEST_P(CommunicatorContractTest, AllReduceSumAddsEachTensorOverRanks) {
  ASSERT_OK_AND_ASSIGN(Group group, MakeGroup());
  const int n = world_size();
  const double triangle = n * (n + 1) / 2.0;
  RunOnRanks(group, [&](int rank, Communicator& communicator) {
    std::vector<at::Tensor> tensors = {at::full({2, 3}, rank + 1.0, at::kFloat),
                                       at::arange(5, at::kDouble) * (rank + 1),
                                       at::full({4}, rank + 1, at::kLong)};
    ASSERT_THAT(communicator.AllReduceSum(tensors), IsOk());
    EXPECT_TRUE(at::equal(tensors[0], at::full({2, 3}, triangle, at::kFloat)));
    EXPECT_TRUE(
        at::allclose(tensors[1], at::arange(5, at::kDouble) * triangle));
    EXPECT_TRUE(at::equal(
        tensors[2], at::full({4}, static_cast<int64_t>(triangle), at::kLong)));
  });
}

TEST_P(CommunicatorContractTest, AllReduceMeanDividesByWorldSize) {
  ASSERT_OK_AND_ASSIGN(Group group, MakeGroup());
  const int n = world_size();
  RunOnRanks(group, [&](int rank, Communicator& communicator) {
    std::vector<at::Tensor> tensors = {at::full({3}, 2.0 * rank, at::kFloat)};
    ASSERT_THAT(communicator.AllReduceMean(tensors), IsOk());
    EXPECT_TRUE(at::allclose(tensors[0], at::full({3}, n - 1.0, at::kFloat)));
    // An integer mean is refused locally; the communicator stays usable.
    std::vector<at::Tensor> integers = {at::ones({2}, at::kInt)};
    EXPECT_THAT(communicator.AllReduceMean(integers),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("not floating point")));
    EXPECT_THAT(communicator.Barrier(), IsOk());
  });
}

TEST_P(CommunicatorContractTest, BroadcastCopiesTheRootsTensors) {
  ASSERT_OK_AND_ASSIGN(Group group, MakeGroup());
  const int root = world_size() - 1;
  RunOnRanks(group, [&](int rank, Communicator& communicator) {
    std::vector<at::Tensor> tensors = {at::full({2, 2}, rank * 1.0, at::kFloat),
                                       at::full({3}, rank * 10, at::kLong)};
    ASSERT_THAT(communicator.Broadcast(tensors, root), IsOk());
    EXPECT_TRUE(
        at::equal(tensors[0], at::full({2, 2}, root * 1.0, at::kFloat)));
    EXPECT_TRUE(at::equal(tensors[1], at::full({3}, root * 10, at::kLong)));
    EXPECT_THAT(communicator.Broadcast(tensors, world_size()),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr(absl::StrCat("rank ", rank))));
    EXPECT_THAT(communicator.Broadcast(tensors, -1),
                StatusIs(absl::StatusCode::kInvalidArgument));
    EXPECT_THAT(communicator.Barrier(), IsOk());
  });
}

TEST_P(CommunicatorContractTest, BarrierWaitsForTheLastRank) {
  ASSERT_OK_AND_ASSIGN(Group group, MakeGroup());
  const int last = world_size() - 1;
  constexpr absl::Duration kLateBy = absl::Milliseconds(300);
  RunOnRanks(group, [&](int rank, Communicator& communicator) {
    const absl::Time start = absl::Now();
    if (rank == last) absl::SleepFor(kLateBy);
    ASSERT_THAT(communicator.Barrier(), IsOk());
    EXPECT_GE(absl::Now() - start, kLateBy - absl::Milliseconds(20));
  });
}

TEST_P(CommunicatorContractTest, AllGatherReturnsEveryRanksTensor) {
  ASSERT_OK_AND_ASSIGN(Group group, MakeGroup());
  RunOnRanks(group, [&](int rank, Communicator& communicator) {
    std::vector<at::Tensor> gathered;
    ASSERT_THAT(communicator.AllGather(at::full({2}, rank * 1.5, at::kDouble),
                                       &gathered),
                IsOk());
    ASSERT_EQ(gathered.size(), static_cast<size_t>(world_size()));
    for (int r = 0; r < world_size(); ++r) {
      EXPECT_TRUE(at::equal(gathered[r], at::full({2}, r * 1.5, at::kDouble)))
          << "rank " << r;
    }
  });
}

TEST_P(CommunicatorContractTest, BadTensorsAreRefusedBeforeCommunicating) {
  ASSERT_OK_AND_ASSIGN(Group group, MakeGroup());
  RunOnRanks(group, [&](int rank, Communicator& communicator) {
    std::vector<at::Tensor> undefined = {at::ones({2}), at::Tensor()};
    EXPECT_THAT(communicator.AllReduceSum(undefined),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("tensor 1 is undefined")));
    std::vector<at::Tensor> strided = {at::ones({3, 4}).t()};
    EXPECT_THAT(communicator.AllReduceSum(strided),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("not contiguous")));
    EXPECT_THAT(communicator.Broadcast(strided, 0),
                StatusIs(absl::StatusCode::kInvalidArgument));
    // Nothing was sent: the ranks are still in step.
    std::vector<at::Tensor> ok = {at::ones({2})};
    EXPECT_THAT(communicator.AllReduceSum(ok), IsOk());
    EXPECT_TRUE(at::equal(ok[0], at::full({2}, world_size() * 1.0)));
  });
}

TEST_P(CommunicatorContractTest, BucketedGradientsEqualPerTensorMeans) {
  ASSERT_OK_AND_ASSIGN(Group group, MakeGroup());
  // Mixed dtypes, a scalar, a non-contiguous gradient and one larger than
  // the small bucket, so every packing path runs.
  auto make_grads = [](int rank) {
    at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(
        /*seed_in=*/100 + rank);
    std::vector<at::Tensor> grads = {
        at::randn({4, 3}, generator),
        at::randn({7}, generator),
        at::randn({}, generator),
        at::randn({5, 2}, generator, at::kDouble),
        at::randn({3, 6}, generator).t(),  // non-contiguous
        at::randn({64}, generator)};
    return grads;
  };
  for (int64_t bucket_bytes : {int64_t{48}, int64_t{25} << 20}) {
    RunOnRanks(group, [&](int rank, Communicator& communicator) {
      std::vector<at::Tensor> bucketed = make_grads(rank);
      std::vector<at::Tensor> expected;
      for (const at::Tensor& grad : make_grads(rank)) {
        expected.push_back(grad.contiguous());
      }
      ASSERT_THAT(communicator.AllReduceMean(expected), IsOk());
      GradientBucketOptions options;
      options.bucket_bytes = bucket_bytes;
      ASSERT_THAT(AllReduceGradients(communicator, bucketed, options), IsOk());
      // A GradientAverager's second call reuses its buckets: same answer.
      GradientAverager averager(options);
      std::vector<at::Tensor> first = make_grads(rank);
      std::vector<at::Tensor> second = make_grads(rank);
      ASSERT_THAT(averager.AllReduce(communicator, first), IsOk());
      ASSERT_THAT(averager.AllReduce(communicator, second), IsOk());
      for (size_t i = 0; i < expected.size(); ++i) {
        EXPECT_TRUE(at::allclose(first[i], expected[i], 1e-6, 1e-6));
        EXPECT_TRUE(at::allclose(second[i], expected[i], 1e-6, 1e-6));
      }
      ASSERT_EQ(bucketed.size(), expected.size());
      for (size_t i = 0; i < expected.size(); ++i) {
        EXPECT_EQ(bucketed[i].sizes(), expected[i].sizes());
        EXPECT_EQ(bucketed[i].scalar_type(), expected[i].scalar_type());
        EXPECT_TRUE(at::allclose(bucketed[i], expected[i], 1e-6, 1e-6))
            << "gradient " << i << " bucket_bytes " << bucket_bytes;
      }
    });
  }
  // Undefined and integer gradients are refused (no communication).
  RunOnRanks(group, [&](int rank, Communicator& communicator) {
    std::vector<at::Tensor> bad = {at::ones({2}), at::Tensor()};
    EXPECT_THAT(AllReduceGradients(communicator, bad),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("gradient 1 is undefined")));
    std::vector<at::Tensor> integers = {at::ones({2}, at::kLong)};
    EXPECT_THAT(AllReduceGradients(communicator, integers),
                StatusIs(absl::StatusCode::kInvalidArgument));
  });
}

TEST_P(CommunicatorContractTest, BucketedGradientSyncSumsAnyDtype) {
  ASSERT_OK_AND_ASSIGN(Group group, MakeGroup());
  const int n = world_size();
  RunOnRanks(group, [&](int rank, Communicator& communicator) {
    BucketedGradientSync sync(&communicator, /*bucket_bytes=*/64);
    EXPECT_EQ(sync.rank(), rank);
    EXPECT_EQ(sync.world_size(), n);
    for (int step = 0; step < 2; ++step) {  // the second reuses buckets
      std::vector<at::Tensor> tensors = {
          at::full({3, 2}, rank + 1.0), at::full({2}, rank + 1, at::kLong),
          at::full({4, 5}, 0.5 * rank, at::kDouble).t()};
      ASSERT_THAT(sync.AllReduceSum(tensors), IsOk());
      EXPECT_TRUE(
          at::allclose(tensors[0], at::full({3, 2}, n * (n + 1) / 2.0)));
      EXPECT_TRUE(
          at::equal(tensors[1], at::full({2}, n * (n + 1) / 2, at::kLong)));
      EXPECT_TRUE(at::allclose(
          tensors[2], at::full({5, 4}, 0.25 * n * (n - 1), at::kDouble)));
    }
  });
}

TEST_P(CommunicatorContractTest, AllReduceScalarsSumsInDouble) {
  ASSERT_OK_AND_ASSIGN(Group group, MakeGroup());
  const int n = world_size();
  RunOnRanks(group, [&](int rank, Communicator& communicator) {
    std::vector<double> values = {1.0, rank * 0.25, 1e12 + rank};
    ASSERT_THAT(AllReduceScalars(communicator, values), IsOk());
    EXPECT_DOUBLE_EQ(values[0], n);
    EXPECT_DOUBLE_EQ(values[1], 0.25 * n * (n - 1) / 2);
    EXPECT_DOUBLE_EQ(values[2], 1e12 * n + n * (n - 1) / 2.0);
  });
}

TEST_P(CommunicatorContractTest, AMissingRankFailsTheOthersWithinTheTimeout) {
  if (world_size() == 1) GTEST_SKIP() << "no other rank to miss";
  constexpr absl::Duration kTimeout = absl::Seconds(1);
  ASSERT_OK_AND_ASSIGN(Group group, MakeGroup(kTimeout));
  const int absent = world_size() - 1;
  RunOnRanks(group, [&](int rank, Communicator& communicator) {
    if (rank == absent) return;  // never calls the collective
    std::vector<at::Tensor> tensors = {at::ones({1024})};
    const absl::Time start = absl::Now();
    absl::Status status = communicator.AllReduceSum(tensors);
    const absl::Duration elapsed = absl::Now() - start;
    EXPECT_THAT(
        status,
        StatusIs(absl::StatusCode::kDeadlineExceeded,
                 HasSubstr(absl::StrCat("rank ", rank, "/", world_size()))));
    EXPECT_GE(elapsed, kTimeout - absl::Milliseconds(50));
    EXPECT_LT(elapsed, kTimeout + absl::Seconds(10));
    // The group is out of step now: later calls say so at once.
    EXPECT_THAT(communicator.Barrier(),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         HasSubstr("broken by an earlier failure")));
  });
}

// Issue #6's data-parallel check, at the communicator level: a small MLP,
// three AdamW steps on a global batch of 12 rows. One rank uses the whole
// batch; N ranks each take 12/N rows (mean loss over its shard) and
// average gradients with AllReduceGradients. Equal shards make the average
// of shard means the global mean, so the parameters must agree.
TEST_P(CommunicatorContractTest, DataParallelReachesTheOneRankParameters) {
  constexpr int kBatch = 12;
  constexpr int kSteps = 3;
  ASSERT_EQ(kBatch % world_size(), 0);
  ASSERT_OK_AND_ASSIGN(Group group, MakeGroup());

  torch::manual_seed(7);
  auto make_model = [] {
    return torch::nn::Sequential(torch::nn::Linear(4, 8), torch::nn::Tanh(),
                                 torch::nn::Linear(8, 1));
  };
  torch::nn::Sequential initial = make_model();
  const at::Tensor inputs = torch::randn({kBatch, 4});
  const at::Tensor targets = torch::randn({kBatch, 1});
  // Fresh models created here (the global RNG is not for threads), loaded
  // with the same initial parameters.
  auto clone_initial = [&] {
    torch::nn::Sequential model = make_model();
    torch::NoGradGuard no_grad;
    auto source = initial->parameters();
    auto destination = model->parameters();
    for (size_t i = 0; i < source.size(); ++i) destination[i].copy_(source[i]);
    return model;
  };
  auto train = [&](torch::nn::Sequential& model, const at::Tensor& x,
                   const at::Tensor& y, Communicator* communicator) {
    torch::optim::AdamW optimizer(model->parameters(),
                                  torch::optim::AdamWOptions(0.05));
    GradientAverager averager;  // buckets reused from step to step
    for (int step = 0; step < kSteps; ++step) {
      optimizer.zero_grad();
      torch::mse_loss(model->forward(x), y).backward();
      if (communicator != nullptr) {
        std::vector<at::Tensor> grads;
        for (const at::Tensor& parameter : model->parameters()) {
          grads.push_back(parameter.grad());
        }
        ASSERT_THAT(averager.AllReduce(*communicator, grads), IsOk());
      }
      optimizer.step();
    }
  };

  torch::nn::Sequential reference = clone_initial();
  train(reference, inputs, targets, nullptr);

  std::vector<torch::nn::Sequential> models;
  for (int r = 0; r < world_size(); ++r) models.push_back(clone_initial());
  const int64_t shard = kBatch / world_size();
  RunOnRanks(group, [&](int rank, Communicator& communicator) {
    train(models[rank], inputs.narrow(0, rank * shard, shard),
          targets.narrow(0, rank * shard, shard), &communicator);
  });

  const auto expected = reference->parameters();
  for (int r = 0; r < world_size(); ++r) {
    const auto actual = models[r]->parameters();
    ASSERT_EQ(actual.size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_TRUE(at::allclose(actual[i], expected[i], 1e-5, 1e-6))
          << "rank " << r << " parameter " << i << " max diff "
          << (actual[i] - expected[i]).abs().max().item<float>();
      // Ranks apply the same averaged gradients: identical, not just close.
      EXPECT_TRUE(at::equal(actual[i], models[0]->parameters()[i]))
          << "rank " << r << " parameter " << i << " differs from rank 0";
    }
  }
  // Sanity: training moved the parameters.
  EXPECT_FALSE(at::allclose(expected[0], initial->parameters()[0]));
}

INSTANTIATE_TEST_SUITE_P(
    AllImplementations, CommunicatorContractTest,
    ::testing::Values(ContractParam{"fake", 1}, ContractParam{"fake", 2},
                      ContractParam{"fake", 3}, ContractParam{"gloo", 1},
                      ContractParam{"gloo", 2}, ContractParam{"gloo", 3},
                      ContractParam{"local", 1}),
    ParamName);

// Fake-only: a lost rank (fault injection) fails the waiting ranks with
// UNAVAILABLE at once, not at the timeout.
TEST(FakeCommunicatorTest, ALostRankFailsTheWaitingRanksAtOnce) {
  FakeCommunicatorGroup fake(3, absl::Seconds(30));
  Group group;
  for (int r = 0; r < 3; ++r) group.push_back(fake.Rank(r));
  std::thread killer([&] {
    absl::SleepFor(absl::Milliseconds(100));
    fake.SetRankDown(2);
  });
  RunOnRanks(group, [&](int rank, Communicator& communicator) {
    if (rank == 2) return;
    std::vector<at::Tensor> tensors = {at::ones({2})};
    const absl::Time start = absl::Now();
    EXPECT_THAT(
        communicator.AllReduceSum(tensors),
        StatusIs(absl::StatusCode::kUnavailable, HasSubstr("lost rank(s) 2")));
    EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  });
  killer.join();
}

TEST(FakeCommunicatorTest, RanksThatDisagreeGetInvalidArgument) {
  FakeCommunicatorGroup fake(2, absl::Seconds(10));
  Group group;
  for (int r = 0; r < 2; ++r) group.push_back(fake.Rank(r));
  RunOnRanks(group, [&](int rank, Communicator& communicator) {
    std::vector<at::Tensor> tensors = {at::ones({rank + 1})};
    EXPECT_THAT(
        communicator.AllReduceSum(tensors),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("disagree")));
  });
}

}  // namespace
}  // namespace fapo::trainer
