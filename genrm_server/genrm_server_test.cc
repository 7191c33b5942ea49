// GenrmServer as fapo-genrm-server runs it, in this process: built from a
// job spec, registered with a fake scheduler as GENRM with the spec's
// capacity, scoring over gRPC, stopping when the job ends, and draining.
#include "genrm_server/genrm_server.h"

#include <memory>
#include <string>

#include "fapo/v1/genrm.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/config/job_spec.h"
#include "services/rpc/channel.h"
#include "services/rpc/status_conversion.h"
#include "services/runtime/service_harness.h"
#include "services/status/status_matchers.h"
#include "tests/support/eventually.h"

namespace fapo::genrm {
namespace {

using ::fapo::runtime::testing::ServiceHarness;
using ::fapo::testing::Eventually;
using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

config::JobSpec Spec(const std::string& genrm_yaml) {
  absl::StatusOr<config::JobSpec> spec = config::ParseJobSpec(
      "job: {name: genrm-server-test}\ndata: {task: arith}\ngenrm: " +
          genrm_yaml + "\n",
      "test.yaml");
  EXPECT_THAT(spec, IsOk());
  return spec.ok() ? *spec : config::JobSpec();
}

absl::StatusOr<fapo::v1::Verdict> Score(const std::string& address) {
  auto channel = rpc::MakeChannel(address, {});
  if (!channel.ok()) return channel.status();
  auto stub = fapo::v1::GenRM::NewStub(*channel);
  fapo::v1::ScoreRequest request;
  request.set_request_id("req-1");
  request.set_trajectory_id("sound");
  request.set_task("arith");
  // Modulo 10: 3+7=0, 0*4=0, 0-2=8; the answer modulo 5 is 3.
  request.set_problem("3+7*4-2");
  request.set_solution("3+7=0\n0*4=0\n0-2=8\n#3");
  auto context = rpc::NewContext(absl::Seconds(10));
  fapo::v1::ScoreResponse response;
  grpc::Status status = stub->Score(context.get(), request, &response);
  if (!status.ok()) return rpc::FromGrpcStatus(status);
  return response.verdict();
}

TEST(GenrmServerTest, RegistersAsGenrmScoresAndStopsWhenTheJobEnds) {
  ServiceHarness harness;
  absl::StatusOr<GenrmServer*> server =
      harness.Serve(GenrmServer::Create(harness.Context(
          Spec("{backend: rule, max_in_flight_per_server: 7}"), "genrm-7")));
  ASSERT_THAT(server, IsOk());
  EXPECT_TRUE((*server)->registered());

  ASSERT_TRUE(Eventually([&] { return harness.scheduler().knows("genrm-7"); }));
  const fapo::v1::WorkerInfo info = harness.scheduler().registrations()[0];
  EXPECT_EQ(info.role(), fapo::v1::WORKER_ROLE_GENRM);
  EXPECT_EQ(info.capacity(), 7);
  EXPECT_EQ(info.address(), harness.address());
  EXPECT_EQ(info.build_version(), runtime::kBuildVersion);

  absl::StatusOr<fapo::v1::Verdict> verdict = Score(harness.address());
  ASSERT_THAT(verdict, IsOk());
  EXPECT_TRUE(verdict->answer_correct());
  EXPECT_EQ(verdict->first_error_step(), -1);
  EXPECT_EQ(verdict->genrm_server_id(), "genrm-7");

  // The job's end reaches the server through its lease: a clean stop.
  harness.scheduler().SetJobState(fapo::v1::JOB_STATE_SUCCEEDED);
  ASSERT_TRUE(Eventually([&] { return !harness.shutdown_requests().empty(); }));
  EXPECT_THAT(harness.shutdown_requests(), ElementsAre(0));
  harness.Stop();
}

TEST(GenrmServerTest, StoppingEndsTheLeaseAndRefusesNewWork) {
  ServiceHarness harness;
  absl::StatusOr<GenrmServer*> server = harness.Serve(
      GenrmServer::Create(harness.Context(Spec("{backend: rule}"), "genrm-1")));
  ASSERT_THAT(server, IsOk());
  ASSERT_THAT(Score(harness.address()), IsOk());
  // What the program does on SIGTERM before the gRPC server drains: the
  // batcher refuses what comes next, so the scheduler sends it elsewhere.
  (*server)->OnStopping();
  EXPECT_THAT(Score(harness.address()),
              StatusIs(absl::StatusCode::kUnavailable));
  const size_t heartbeats = harness.scheduler().heartbeats().size();
  absl::SleepFor(absl::Milliseconds(200));  // 4 heartbeat intervals
  EXPECT_EQ(harness.scheduler().heartbeats().size(), heartbeats)
      << "the lease still heartbeats after OnStopping";
}

TEST(GenrmServerTest, WithoutASchedulerServesWithoutRegistering) {
  ServiceHarness harness;
  absl::StatusOr<GenrmServer*> server = harness.Serve(GenrmServer::Create(
      harness.Context(Spec("{backend: rule}"), "genrm-alone",
                      /*with_scheduler=*/false)));
  ASSERT_THAT(server, IsOk());
  EXPECT_FALSE((*server)->registered());
  EXPECT_THAT(Score(harness.address()), IsOk());
  EXPECT_TRUE(harness.scheduler().registrations().empty());
}

TEST(GenrmServerTest, ABackendThatCannotStartIsAnError) {
  ServiceHarness harness;
  auto server = GenrmServer::Create(harness.Context(
      Spec("{backend: model, model: {model_dir: /nonexistent/genrm}}"),
      "genrm-bad"));
  EXPECT_THAT(server, StatusIs(absl::StatusCode::kNotFound,
                               HasSubstr("/nonexistent/genrm")));
}

}  // namespace
}  // namespace fapo::genrm
