// GlooCommunicator on its own: options, rendezvous failures, two real
// processes on loopback (this test binary re-runs itself as rank 1), a peer
// that dies, and MakeCommunicator. The shared contract is in
// communicator_contract_test.cc.
#include "trainer/comm/gloo_communicator.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"
#include "tests/support/subprocess.h"

namespace fapo::trainer {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kChildPortEnv[] = "FAPO_GLOO_TEST_CHILD_PORT";
constexpr char kChildModeEnv[] = "FAPO_GLOO_TEST_CHILD_MODE";

GlooCommunicatorOptions Options(int rank, int world_size, int port,
                                absl::Duration timeout) {
  GlooCommunicatorOptions options;
  options.rank = rank;
  options.world_size = world_size;
  options.store_port = port;
  options.timeout = timeout;
  return options;
}

// A peer that is late and one that is gone can look alike from this side.
bool IsLateOrLost(const absl::Status& status) {
  return status.code() == absl::StatusCode::kDeadlineExceeded ||
         status.code() == absl::StatusCode::kUnavailable;
}

std::string SelfPath() {
  char path[4096];
  const ssize_t length = readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (length <= 0) return "";
  return std::string(path, length);
}

TEST(GlooCommunicatorTest, CreateRefusesBadOptions) {
  EXPECT_THAT(
      GlooCommunicator::Create(Options(2, 2, 29500, absl::Seconds(1))),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rank 2/2")));
  EXPECT_THAT(GlooCommunicator::Create(Options(-1, 2, 29500, absl::Seconds(1))),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(GlooCommunicator::Create(Options(0, 0, 29500, absl::Seconds(1))),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(
      GlooCommunicator::Create(Options(0, 1, 0, absl::Seconds(1))),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("store_port")));
  EXPECT_THAT(
      GlooCommunicator::Create(Options(0, 1, 29500, absl::ZeroDuration())),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("timeout")));
  GlooCommunicatorOptions no_threads = Options(0, 1, 29500, absl::Seconds(1));
  no_threads.threads = 0;
  EXPECT_THAT(GlooCommunicator::Create(no_threads),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(GlooCommunicatorTest, RendezvousFailsInTimeWhenARankNeverShowsUp) {
  ASSERT_OK_AND_ASSIGN(int port, fapo::testing::FreeLoopbackPort());
  constexpr absl::Duration kTimeout = absl::Seconds(1);
  const absl::Time start = absl::Now();
  EXPECT_THAT(GlooCommunicator::Create(Options(0, 2, port, kTimeout)),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       HasSubstr("gloo rank 0/2: Create")));
  EXPECT_LT(absl::Now() - start, kTimeout + absl::Seconds(10));
}

TEST(GlooCommunicatorTest, ARankWithoutAStoreFailsInTime) {
  ASSERT_OK_AND_ASSIGN(int port, fapo::testing::FreeLoopbackPort());
  constexpr absl::Duration kTimeout = absl::Seconds(1);
  const absl::Time start = absl::Now();
  absl::Status status =
      GlooCommunicator::Create(Options(1, 2, port, kTimeout)).status();
  EXPECT_TRUE(IsLateOrLost(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("gloo rank 1/2: Create"));
  EXPECT_LT(absl::Now() - start, kTimeout + absl::Seconds(10));
}

TEST(GlooCommunicatorTest, AStorePortInUseFailsFastAsUnavailable) {
  // Hold a listening socket on a loopback port, as another job would.
  const int holder = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(holder, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  address.sin_port = 0;
  ASSERT_EQ(
      bind(holder, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(listen(holder, 1), 0);
  socklen_t length = sizeof(address);
  ASSERT_EQ(getsockname(holder, reinterpret_cast<sockaddr*>(&address), &length),
            0);
  const int port = ntohs(address.sin_port);
  const absl::Time start = absl::Now();
  EXPECT_THAT(GlooCommunicator::Create(Options(0, 1, port, absl::Seconds(30))),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("gloo rank 0/1: Create")));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  close(holder);
}

TEST(GlooCommunicatorTest, RefusesTensorsOffTheCpu) {
  ASSERT_OK_AND_ASSIGN(int port, fapo::testing::FreeLoopbackPort());
  ASSERT_OK_AND_ASSIGN(auto communicator, GlooCommunicator::Create(Options(
                                              0, 1, port, absl::Seconds(5))));
  std::vector<at::Tensor> meta = {at::empty({2}, at::device(at::kMeta))};
  EXPECT_THAT(
      communicator->AllReduceSum(meta),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("CPU tensors")));
  std::vector<at::Tensor> cpu = {at::ones({2})};
  EXPECT_THAT(communicator->AllReduceSum(cpu), IsOk());
}

// Rank 1 of the two-process tests: this binary, run again with the port and
// the mode in its environment (the test skips without them).
TEST(GlooChildProcess, Rank1) {
  const char* port_text = std::getenv(kChildPortEnv);
  const char* mode = std::getenv(kChildModeEnv);
  if (port_text == nullptr || mode == nullptr) {
    GTEST_SKIP() << "run by the two-process tests only";
  }
  ASSERT_OK_AND_ASSIGN(auto communicator,
                       GlooCommunicator::Create(Options(
                           1, 2, std::atoi(port_text), absl::Seconds(20))));
  std::vector<at::Tensor> tensors = {at::full({4}, 2.0)};
  ASSERT_THAT(communicator->AllReduceSum(tensors), IsOk());
  EXPECT_TRUE(at::equal(tensors[0], at::full({4}, 3.0)));
  if (std::string(mode) == "die") {
    // As a crash would: no goodbye to the peer.
    raise(SIGKILL);
  }
  std::vector<at::Tensor> broadcast = {at::zeros({3}, at::kLong)};
  ASSERT_THAT(communicator->Broadcast(broadcast, 0), IsOk());
  EXPECT_TRUE(at::equal(broadcast[0], at::arange(3, at::kLong)));
  EXPECT_THAT(communicator->Barrier(), IsOk());
}

absl::StatusOr<std::unique_ptr<fapo::testing::Subprocess>> StartRank1(
    int port, const std::string& mode, const std::string& log_path) {
  return fapo::testing::Subprocess::Start(
      {"env", absl::StrCat(kChildPortEnv, "=", port),
       absl::StrCat(kChildModeEnv, "=", mode), "OMP_NUM_THREADS=1", SelfPath(),
       "--gtest_filter=GlooChildProcess.Rank1"},
      log_path);
}

TEST(GlooCommunicatorTest, TwoProcessesReduceBroadcastAndBarrier) {
  fapo::testing::TempDir dir;
  ASSERT_THAT(dir.status(), IsOk());
  ASSERT_OK_AND_ASSIGN(int port, fapo::testing::FreeLoopbackPort());
  const std::string log = dir.path() + "/rank1.log";
  ASSERT_OK_AND_ASSIGN(auto child, StartRank1(port, "collectives", log));
  auto created =
      GlooCommunicator::Create(Options(0, 2, port, absl::Seconds(20)));
  ASSERT_THAT(created.status(), IsOk()) << fapo::testing::TailOfFile(log);
  std::unique_ptr<GlooCommunicator> communicator = std::move(*created);
  std::vector<at::Tensor> tensors = {at::full({4}, 1.0)};
  ASSERT_THAT(communicator->AllReduceSum(tensors), IsOk());
  EXPECT_TRUE(at::equal(tensors[0], at::full({4}, 3.0)));
  std::vector<at::Tensor> broadcast = {at::arange(3, at::kLong)};
  ASSERT_THAT(communicator->Broadcast(broadcast, 0), IsOk());
  EXPECT_THAT(communicator->Barrier(), IsOk());
  ASSERT_OK_AND_ASSIGN(int exit_code, child->Wait(absl::Seconds(30)));
  EXPECT_EQ(exit_code, 0) << fapo::testing::TailOfFile(log);
}

TEST(GlooCommunicatorTest, APeerThatDiesFailsTheNextCollectiveInTime) {
  fapo::testing::TempDir dir;
  ASSERT_THAT(dir.status(), IsOk());
  ASSERT_OK_AND_ASSIGN(int port, fapo::testing::FreeLoopbackPort());
  const std::string log = dir.path() + "/rank1.log";
  ASSERT_OK_AND_ASSIGN(auto child, StartRank1(port, "die", log));
  constexpr absl::Duration kTimeout = absl::Seconds(5);
  auto created = GlooCommunicator::Create(Options(0, 2, port, kTimeout));
  ASSERT_THAT(created.status(), IsOk()) << fapo::testing::TailOfFile(log);
  std::unique_ptr<GlooCommunicator> communicator = std::move(*created);
  std::vector<at::Tensor> tensors = {at::full({4}, 1.0)};
  ASSERT_THAT(communicator->AllReduceSum(tensors), IsOk());
  ASSERT_OK_AND_ASSIGN(int exit_code, child->Wait(absl::Seconds(30)));
  EXPECT_EQ(exit_code, 128 + SIGKILL);

  const absl::Time start = absl::Now();
  std::vector<at::Tensor> again = {at::full({1 << 16}, 1.0)};
  absl::Status status = communicator->AllReduceSum(again);
  EXPECT_TRUE(IsLateOrLost(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("gloo rank 0/2: AllReduceSum"));
  EXPECT_LT(absl::Now() - start, kTimeout + absl::Seconds(10));
  EXPECT_THAT(communicator->Barrier(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(MakeCommunicatorTest, GlooWorksAndParsesNames) {
  ASSERT_OK_AND_ASSIGN(int port, fapo::testing::FreeLoopbackPort());
  ASSERT_OK_AND_ASSIGN(auto gloo,
                       MakeCommunicator(CollectiveBackend::kGloo,
                                        Options(0, 1, port, absl::Seconds(5))));
  EXPECT_EQ(gloo->backend_name(), "gloo");
  EXPECT_EQ(gloo->world_size(), 1);
  EXPECT_THAT(ParseCollectiveBackend("Gloo"),
              ::fapo::testing::IsOkAndHolds(CollectiveBackend::kGloo));
  EXPECT_THAT(ParseCollectiveBackend("nccl"),
              ::fapo::testing::IsOkAndHolds(CollectiveBackend::kNccl));
  EXPECT_THAT(ParseCollectiveBackend("mpi"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// Without NCCL in the build: UNIMPLEMENTED. With it but no GPU (this
// project's CI): FAILED_PRECONDITION. With a GPU: one rank's collectives on
// CUDA tensors (NOTE [nccl]: the only test of the NCCL path).
TEST(MakeCommunicatorTest, NcclSaysWhatItNeedsOrRunsOnAGpu) {
  ASSERT_OK_AND_ASSIGN(int port, fapo::testing::FreeLoopbackPort());
  auto nccl = MakeCommunicator(CollectiveBackend::kNccl,
                               Options(0, 1, port, absl::Seconds(30)));
  if (!NcclCommunicatorBuilt()) {
    EXPECT_THAT(nccl,
                StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("NCCL")));
    return;
  }
  if (at::getNumGPUs() == 0) {
    EXPECT_THAT(nccl, StatusIs(absl::StatusCode::kFailedPrecondition,
                               HasSubstr("needs a CUDA device")));
    return;
  }
  ASSERT_THAT(nccl.status(), IsOk());
  Communicator& communicator = **nccl;
  EXPECT_EQ(communicator.backend_name(), "nccl");
  std::vector<at::Tensor> tensors = {at::full({4}, 2.0, at::device(at::kCUDA))};
  ASSERT_THAT(communicator.AllReduceSum(tensors), IsOk());
  EXPECT_TRUE(at::equal(tensors[0].cpu(), at::full({4}, 2.0)));
  ASSERT_THAT(communicator.Broadcast(tensors, 0), IsOk());
  ASSERT_THAT(communicator.Barrier(), IsOk());
  std::vector<at::Tensor> gathered;
  ASSERT_THAT(communicator.AllGather(tensors[0], &gathered), IsOk());
  ASSERT_EQ(gathered.size(), 1u);
  EXPECT_TRUE(at::equal(gathered[0].cpu(), at::full({4}, 2.0)));
  std::vector<at::Tensor> cpu = {at::ones({2})};
  EXPECT_THAT(communicator.AllReduceSum(cpu),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("takes CUDA tensors")));
}

}  // namespace
}  // namespace fapo::trainer
