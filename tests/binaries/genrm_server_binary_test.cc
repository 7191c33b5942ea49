// fapo-genrm-server as a process, with a fake Scheduler in the test
// process: it registers (role GENRM, its advertised address, its capacity),
// heartbeats, answers Score with the rule backend's verdicts, exits 0 on
// SIGTERM, and exits 0 on its own once the job is over.
#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fapo/v1/genrm.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/rpc/channel.h"
#include "services/rpc/fake_scheduler_service.h"
#include "services/rpc/server.h"
#include "services/status/status_matchers.h"
#include "tests/support/eventually.h"
#include "tests/support/http_client.h"
#include "tests/support/subprocess.h"

namespace fapo {
namespace {

using ::fapo::testing::Eventually;

using ::fapo::testing::BinaryPath;
using ::fapo::testing::IsOk;
using ::fapo::testing::IsOkAndHolds;
using ::fapo::testing::SourcePath;
using ::fapo::testing::Subprocess;
using ::testing::HasSubstr;

std::string HttpGet(const std::string& url) {
  absl::StatusOr<std::string> body = testing::FetchBody(url);
  EXPECT_THAT(body, IsOk()) << url;
  return body.ok() ? *body : "";
}

class GenrmServerBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_THAT(dir_.status(), IsOk());
    rpc::ServerOptions options;
    options.host = "127.0.0.1";
    options.drain_timeout = absl::Milliseconds(200);
    auto server = rpc::RpcServer::Start(
        options, {{&scheduler_, fapo::v1::Scheduler::service_full_name()}});
    ASSERT_THAT(server, IsOk());
    scheduler_server_ = *std::move(server);
  }

  // Starts the server registered with the fake scheduler; fills ready_.
  std::unique_ptr<Subprocess> StartServer(
      const std::vector<std::string>& extra_flags) {
    const std::string ready_file = dir_.path() + "/genrm.ready";
    log_ = dir_.path() + "/genrm.log";
    std::vector<std::string> argv = {BinaryPath("fapo-genrm-server"),
                                     "--config",
                                     SourcePath("configs/quickstart.yaml"),
                                     "--set",
                                     "genrm.max_in_flight_per_server=17",
                                     "--host",
                                     "127.0.0.1",
                                     "--port",
                                     "0",
                                     "--worker-id",
                                     "genrm-test-1",
                                     "--scheduler",
                                     scheduler_server_->address(),
                                     "--ready-file",
                                     ready_file,
                                     "--drain-timeout-ms",
                                     "2000"};
    argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
    auto process = Subprocess::Start(argv, log_);
    EXPECT_THAT(process, IsOk());
    if (!process.ok()) return nullptr;
    auto contents = testing::WaitForFile(ready_file, absl::Seconds(30));
    EXPECT_THAT(contents, IsOk()) << testing::TailOfFile(log_);
    if (!contents.ok()) return nullptr;
    ready_ = nlohmann::json::parse(*contents);
    return *std::move(process);
  }

  testing::TempDir dir_{"fapo-genrm-binary-test-"};
  rpc::FakeSchedulerService scheduler_{absl::Milliseconds(50)};
  std::unique_ptr<rpc::RpcServer> scheduler_server_;
  std::string log_;
  nlohmann::json ready_;
};

TEST_F(GenrmServerBinaryTest, RegistersScoresAndStopsOnSigterm) {
  auto process = StartServer({});
  ASSERT_NE(process, nullptr);
  const std::string address = ready_["grpc_address"];
  EXPECT_EQ(ready_["advertised_address"], address);  // --host 127.0.0.1
  // /metrics is up: NOTE [static TLS and small thread stacks].
  EXPECT_NE(ready_["metrics_url"], "");

  ASSERT_TRUE(Eventually([&] { return scheduler_.knows("genrm-test-1"); },
                         absl::Seconds(10)))
      << testing::TailOfFile(log_);
  const fapo::v1::WorkerInfo worker = scheduler_.registrations().front();
  EXPECT_EQ(worker.role(), fapo::v1::WORKER_ROLE_GENRM);
  EXPECT_EQ(worker.address(), address);
  EXPECT_EQ(worker.capacity(), 17);
  EXPECT_FALSE(worker.build_version().empty());
  EXPECT_TRUE(Eventually([&] { return scheduler_.heartbeats().size() >= 2; },
                         absl::Seconds(10)));

  auto channel = rpc::MakeChannel(address, {});
  ASSERT_THAT(channel, IsOk());
  auto stub = fapo::v1::GenRM::NewStub(*channel);
  // quickstart's arith: modulo 10, answer modulo 5; 3+7*4-2 left to right.
  struct Case {
    std::string solution;
    bool answer_correct;
    int first_error_step;
  };
  const Case cases[] = {{"3+7=0\n0*4=0\n0-2=8\n#3", true, -1},
                        {"3+7=5\n5*4=0\n0-2=8\n#3", true, 0},
                        {"3+7=0\n0*4=0\n0-2=7\n#2", false, 2}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.solution);
    fapo::v1::ScoreRequest request;
    request.set_trajectory_id("t");
    request.set_task("arith");
    request.set_problem("3+7*4-2");
    request.set_solution(c.solution);
    fapo::v1::ScoreResponse response;
    auto context = rpc::NewContext(absl::Seconds(10));
    grpc::Status status = stub->Score(context.get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.verdict().answer_correct(), c.answer_correct);
    EXPECT_EQ(response.verdict().first_error_step(), c.first_error_step);
    EXPECT_EQ(response.verdict().genrm_server_id(), "genrm-test-1");
  }
  fapo::v1::ScoreRequest invalid;
  fapo::v1::ScoreResponse response;
  auto context = rpc::NewContext(absl::Seconds(10));
  EXPECT_EQ(stub->Score(context.get(), invalid, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  const std::string metrics = HttpGet(ready_["metrics_url"]);
  EXPECT_THAT(metrics,
              HasSubstr("fapo_genrm_server_requests_total{code=\"OK\"} 3"));
  EXPECT_THAT(metrics, HasSubstr("fapo_genrm_server_requests_total{code="
                                 "\"INVALID_ARGUMENT\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("fapo_genrm_server_batch_size_count 3"));
  EXPECT_THAT(metrics, HasSubstr("fapo_genrm_server_in_flight 0"));

  process->Signal(SIGTERM);
  EXPECT_THAT(process->Wait(absl::Seconds(15)), IsOkAndHolds(0))
      << testing::TailOfFile(log_);
  EXPECT_THAT(testing::ReadFileOrEmpty(log_), HasSubstr("stopped cleanly"));
}

TEST_F(GenrmServerBinaryTest, AdvertisesTheGivenHostAndExitsWhenTheJobEnds) {
  auto process = StartServer({"--advertise-host", "genrm-7.example"});
  ASSERT_NE(process, nullptr);
  const std::string advertised =
      absl::StrCat("genrm-7.example:", ready_["grpc_port"].get<int>());
  EXPECT_EQ(ready_["advertised_address"], advertised);
  ASSERT_TRUE(Eventually([&] { return scheduler_.knows("genrm-test-1"); },
                         absl::Seconds(10)))
      << testing::TailOfFile(log_);
  EXPECT_EQ(scheduler_.registrations().front().address(), advertised);

  scheduler_.SetJobState(fapo::v1::JOB_STATE_SUCCEEDED);
  EXPECT_THAT(process->Wait(absl::Seconds(15)), IsOkAndHolds(0))
      << testing::TailOfFile(log_);
  EXPECT_THAT(testing::ReadFileOrEmpty(log_), HasSubstr("JOB_STATE_SUCCEEDED"));
}

TEST_F(GenrmServerBinaryTest, ServesTheModelBackend) {
  auto init = testing::RunCommand({BinaryPath("fapo"), "init-model", "--out",
                                   dir_.path() + "/genrm-model", "--seed", "3"},
                                  absl::Seconds(60));
  ASSERT_THAT(init, IsOk());
  ASSERT_EQ(init->exit_code, 0) << init->stderr_text;
  auto process =
      StartServer({"--set", "genrm.backend=model", "--set",
                   "genrm.model.model_dir=" + dir_.path() + "/genrm-model",
                   "--set", "genrm.model.max_new_tokens=4"});
  ASSERT_NE(process, nullptr);
  auto channel =
      rpc::MakeChannel(ready_["grpc_address"].get<std::string>(), {});
  ASSERT_THAT(channel, IsOk());
  auto stub = fapo::v1::GenRM::NewStub(*channel);
  fapo::v1::ScoreRequest request;
  request.set_trajectory_id("m");
  request.set_task("arith");
  request.set_problem("3+7*4-2");
  request.set_solution("3+7=0\n0*4=0\n0-2=8\n#3");
  fapo::v1::ScoreResponse response;
  auto context = rpc::NewContext(absl::Seconds(30));
  grpc::Status status = stub->Score(context.get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message()
                           << testing::TailOfFile(log_);
  // An untrained model writes junk: the verdict's status says so, but the
  // mechanics hold.
  EXPECT_EQ(response.verdict().trajectory_id(), "m");
  EXPECT_EQ(response.verdict().num_steps(), 4);
  EXPECT_NE(response.verdict().status(), fapo::v1::VERDICT_STATUS_UNSPECIFIED);
  process->Signal(SIGTERM);
  EXPECT_THAT(process->Wait(absl::Seconds(15)), IsOkAndHolds(0))
      << testing::TailOfFile(log_);
}

}  // namespace
}  // namespace fapo
