// RolloutWorkerServer as fapo-rollout-worker runs it, in this process:
// loads the policy the spec names, registers as ROLLOUT with its capacity
// and the policy version it holds, and refuses a spec without a model.
#include "rollout_worker/rollout_worker_server.h"

#include <stdlib.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/tools/tools.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/files/files.h"
#include "services/runtime/service_harness.h"
#include "services/status/status_matchers.h"
#include "tests/support/eventually.h"

namespace fapo::rollout {
namespace {

using ::fapo::runtime::testing::ServiceHarness;
using ::fapo::testing::Eventually;
using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::HasSubstr;

config::JobSpec Spec(const std::string& model_dir) {
  absl::StatusOr<config::JobSpec> spec = config::ParseJobSpec(
      absl::StrCat("job: {name: rollout-server-test}\ndata: {task: arith}\n",
                   "policy: {model_dir: '", model_dir, "'}\n"),
      "test.yaml");
  EXPECT_THAT(spec, IsOk());
  return spec.ok() ? *spec : config::JobSpec();
}

TEST(RolloutWorkerServerTest, LoadsThePolicyAndRegistersAsRollout) {
  char pattern[] = "/tmp/rollout_worker_server_test.XXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr);
  const std::string dir = pattern;
  ASSERT_THAT(engine::WriteTinyArithModel(dir, 7), IsOk());
  {
    ServiceHarness harness;
    absl::StatusOr<RolloutWorkerServer*> server = harness.Serve(
        RolloutWorkerServer::Create(harness.Context(Spec(dir), "rollout-3")));
    ASSERT_THAT(server, IsOk());
    EXPECT_EQ((*server)->worker()->policy_version(), 0);
    EXPECT_EQ((*server)->services().size(), 1u);
    ASSERT_TRUE(
        Eventually([&] { return harness.scheduler().knows("rollout-3"); }));
    const fapo::v1::WorkerInfo info = harness.scheduler().registrations()[0];
    EXPECT_EQ(info.role(), fapo::v1::WORKER_ROLE_ROLLOUT);
    EXPECT_EQ(info.capacity(), kRolloutCapacity);
    EXPECT_EQ(info.address(), harness.address());
    ASSERT_TRUE(
        Eventually([&] { return !harness.scheduler().heartbeats().empty(); }));
    EXPECT_EQ(harness.scheduler().heartbeats().back().in_flight(), 0);
    harness.Stop();
  }
  ASSERT_THAT(files::RemoveRecursively(dir), IsOk());
}

TEST(RolloutWorkerServerTest, ASpecWithoutAModelIsRefusedWithTheFix) {
  ServiceHarness harness;
  EXPECT_THAT(RolloutWorkerServer::Create(harness.Context(Spec(""), "r")),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("fapo init-model")));
}

}  // namespace
}  // namespace fapo::rollout
