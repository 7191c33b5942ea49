// TrainerServer as fapo-trainer runs it, in this process: one rank serving
// the Trainer service and registering as TRAINER; two ranks (Gloo over
// loopback, as threads) where rank 0 leads and rank 1 follows without a
// service or a registration and asks to stop when rank 0 stops; and a bad
// rank address refused before anything starts.
#include "trainer/trainer_server.h"

#include <stdlib.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "engine/tools/tools.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/files/files.h"
#include "services/process/child_process.h"
#include "services/runtime/service_harness.h"
#include "services/status/status_matchers.h"
#include "tests/support/eventually.h"
#include "trainer/comm/gloo_communicator.h"

namespace fapo::trainer {
namespace {

using ::fapo::runtime::testing::ServiceHarness;
using ::fapo::testing::Eventually;
using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class TrainerServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/trainer_server_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    ASSERT_THAT(engine::WriteTinyArithModel(dir_ + "/model", 7), IsOk());
  }
  void TearDown() override {
    ASSERT_THAT(files::RemoveRecursively(dir_), IsOk());
  }

  config::JobSpec Spec(int ranks) {
    absl::StatusOr<config::JobSpec> spec = config::ParseJobSpec(
        absl::StrCat("job: {name: trainer-server-test, output_dir: ", dir_,
                     "/run}\ndata: {task: arith}\npolicy: {model_dir: ", dir_,
                     "/model}\ntrainer: {ranks: ", ranks,
                     ", collective_timeout_ms: 30000}\n"),
        "test.yaml");
    EXPECT_THAT(spec, IsOk());
    return spec.ok() ? *spec : config::JobSpec();
  }

  std::string dir_;
};

TEST_F(TrainerServerTest, OneRankServesTheTrainerAndRegistersAsTrainer) {
  ServiceHarness harness;
  absl::StatusOr<TrainerServer*> server = harness.Serve(TrainerServer::Create(
      harness.Context(Spec(1), "trainer-0"), RankAddress{}));
  ASSERT_THAT(server, IsOk());
  EXPECT_EQ((*server)->rank(), 0);
  ASSERT_NE((*server)->service(), nullptr);
  EXPECT_EQ((*server)->services().size(), 1u);
  ASSERT_TRUE(
      Eventually([&] { return harness.scheduler().knows("trainer-0"); }));
  const fapo::v1::WorkerInfo info = harness.scheduler().registrations()[0];
  EXPECT_EQ(info.role(), fapo::v1::WORKER_ROLE_TRAINER);
  EXPECT_EQ(info.capacity(), 1);
  EXPECT_EQ(info.address(), harness.address());
  harness.Stop();
}

TEST_F(TrainerServerTest, RankOneFollowsRankZeroAndStopsWhenItStops) {
  AllowRanksInOneProcess();
  absl::StatusOr<int> port = process::FreeLoopbackPort();
  ASSERT_THAT(port, IsOk());
  const config::JobSpec spec = Spec(2);
  ServiceHarness leader_harness;
  ServiceHarness follower_harness;
  const runtime::ServiceContext leader_context =
      leader_harness.Context(spec, "trainer-rank-0");
  const runtime::ServiceContext follower_context =
      follower_harness.Context(spec, "trainer-rank-1");
  // Create blocks until both ranks have joined: one thread per rank.
  absl::StatusOr<std::unique_ptr<TrainerServer>> leader, follower;
  auto create = [&](int rank, const runtime::ServiceContext& context,
                    absl::StatusOr<std::unique_ptr<TrainerServer>>* out) {
    RankAddress address;
    address.rank = rank;
    address.rendezvous = absl::StrCat("127.0.0.1:", *port);
    address.timeout = absl::Seconds(30);
    *out = TrainerServer::Create(context, address, absl::Milliseconds(100));
  };
  std::thread rank1_thread(create, 1, std::cref(follower_context), &follower);
  create(0, leader_context, &leader);
  rank1_thread.join();
  ASSERT_THAT(leader, IsOk());
  ASSERT_THAT(follower, IsOk());
  EXPECT_NE((*leader)->service(), nullptr);
  EXPECT_EQ((*follower)->service(), nullptr);
  EXPECT_THAT((*follower)->services(), IsEmpty())
      << "ranks > 0 serve health and /metrics only";
  absl::StatusOr<TrainerServer*> rank0 =
      leader_harness.Serve(std::move(leader));
  ASSERT_THAT(rank0, IsOk());
  absl::StatusOr<TrainerServer*> rank1 =
      follower_harness.Serve(std::move(follower));
  ASSERT_THAT(rank1, IsOk());
  ASSERT_TRUE(Eventually(
      [&] { return leader_harness.scheduler().knows("trainer-rank-0"); }));
  EXPECT_FALSE((*rank1)->registered()) << "only rank 0 registers";
  EXPECT_THAT(follower_harness.scheduler().registrations(), IsEmpty());

  // Rank 0 stops and is destroyed (its leader tells the group): rank 1
  // asks for a clean exit, as fapo-trainer --rank 1 does when the job is
  // over.
  leader_harness.Stop();
  ASSERT_TRUE(
      Eventually([&] { return !follower_harness.shutdown_requests().empty(); },
                 absl::Seconds(30)));
  EXPECT_THAT(follower_harness.shutdown_requests(), ElementsAre(0));
  EXPECT_THAT(leader_harness.shutdown_requests(), IsEmpty());
  follower_harness.Stop();
}

TEST_F(TrainerServerTest, ARankOutsideTheGroupIsRefusedBeforeAnythingStarts) {
  ServiceHarness harness;
  RankAddress address;
  address.rank = 2;
  address.rendezvous = "127.0.0.1:1";
  EXPECT_THAT(
      TrainerServer::Create(harness.Context(Spec(2), "trainer-2"), address),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rank")));
}

}  // namespace
}  // namespace fapo::trainer
