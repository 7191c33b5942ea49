// WorkerLease against a fake Scheduler served by a real gRPC server on
// 127.0.0.1: registration, heartbeats, re-registration, the job-finished
// and lost callbacks, and a prompt Stop while the scheduler is down or
// silent.
#include "services/rpc/worker_lease.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/rpc/fake_scheduler_service.h"
#include "services/rpc/server.h"
#include "services/status/status_matchers.h"
#include "tests/support/eventually.h"
#include "tests/support/subprocess.h"

namespace fapo::rpc {
namespace {

using ::fapo::testing::Eventually;

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::HasSubstr;

std::unique_ptr<RpcServer> Serve(FakeSchedulerService* scheduler,
                                 int port = 0) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.port = port;
  options.drain_timeout = absl::Milliseconds(100);
  auto server = RpcServer::Start(
      options, {{scheduler, fapo::v1::Scheduler::service_full_name()}});
  EXPECT_THAT(server, IsOk());
  return server.ok() ? *std::move(server) : nullptr;
}

WorkerLeaseOptions Options(const std::string& scheduler_address) {
  WorkerLeaseOptions options;
  options.scheduler_address = scheduler_address;
  options.worker.set_worker_id("genrm-0");
  options.worker.set_role(fapo::v1::WORKER_ROLE_GENRM);
  options.worker.set_address("10.1.2.3:4567");
  options.worker.set_capacity(64);
  options.worker.set_build_version("0.1.0");
  options.initial_backoff = absl::Milliseconds(20);
  options.max_backoff = absl::Milliseconds(100);
  return options;
}

std::string UnusedAddress() {
  auto port = testing::FreeLoopbackPort();
  EXPECT_THAT(port, IsOk());
  return absl::StrCat("127.0.0.1:", port.ok() ? *port : 1);
}

TEST(WorkerLeaseTest, RegistersAndHeartbeatsWithItsLoad) {
  FakeSchedulerService scheduler(absl::Milliseconds(30));
  auto server = Serve(&scheduler);
  ASSERT_NE(server, nullptr);
  WorkerLeaseOptions options = Options(server->address());
  options.in_flight = [] { return 7; };
  options.policy_version = [] { return int64_t{3}; };
  auto lease = WorkerLease::Start(options);
  ASSERT_THAT(lease, IsOk());

  ASSERT_TRUE(Eventually([&] { return scheduler.heartbeats().size() >= 3; }));
  EXPECT_TRUE((*lease)->registered());
  EXPECT_EQ((*lease)->registrations(), 1);
  EXPECT_EQ((*lease)->heartbeat_interval(), absl::Milliseconds(30));
  const auto registrations = scheduler.registrations();
  ASSERT_EQ(registrations.size(), 1u);
  EXPECT_EQ(registrations[0].worker_id(), "genrm-0");
  EXPECT_EQ(registrations[0].role(), fapo::v1::WORKER_ROLE_GENRM);
  EXPECT_EQ(registrations[0].address(), "10.1.2.3:4567");
  EXPECT_EQ(registrations[0].capacity(), 64);
  EXPECT_EQ(registrations[0].policy_version(), 3);
  EXPECT_EQ(registrations[0].build_version(), "0.1.0");
  const fapo::v1::HeartbeatRequest heartbeat = scheduler.heartbeats().back();
  EXPECT_EQ(heartbeat.worker_id(), "genrm-0");
  EXPECT_EQ(heartbeat.in_flight(), 7);
  EXPECT_EQ(heartbeat.policy_version(), 3);
  (*lease)->Stop();
  // No heartbeats after Stop.
  const size_t after_stop = scheduler.heartbeats().size();
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(scheduler.heartbeats().size(), after_stop);
}

TEST(WorkerLeaseTest, RegistersAgainWhenTheSchedulerForgetsIt) {
  FakeSchedulerService scheduler(absl::Milliseconds(20));
  auto server = Serve(&scheduler);
  ASSERT_NE(server, nullptr);
  auto lease = WorkerLease::Start(Options(server->address()));
  ASSERT_THAT(lease, IsOk());
  ASSERT_TRUE(Eventually([&] { return (*lease)->heartbeats() >= 1; }));
  scheduler.Forget("genrm-0");
  ASSERT_TRUE(
      Eventually([&] { return scheduler.registrations().size() == 2; }));
  EXPECT_TRUE(scheduler.knows("genrm-0"));
  ASSERT_TRUE(Eventually([&] { return (*lease)->registrations() == 2; }));
}

TEST(WorkerLeaseTest, JobFinishedCallbackFiresOnceAndHeartbeatsStop) {
  FakeSchedulerService scheduler(absl::Milliseconds(20));
  auto server = Serve(&scheduler);
  ASSERT_NE(server, nullptr);
  std::atomic<int> calls{0};
  std::atomic<int> state{0};
  absl::Notification finished;
  WorkerLeaseOptions options = Options(server->address());
  options.on_job_finished = [&](fapo::v1::JobState job_state) {
    state = job_state;
    if (calls.fetch_add(1) == 0) finished.Notify();
  };
  auto lease = WorkerLease::Start(options);
  ASSERT_THAT(lease, IsOk());
  ASSERT_TRUE(Eventually([&] { return (*lease)->heartbeats() >= 1; }));
  scheduler.SetJobState(fapo::v1::JOB_STATE_SUCCEEDED);
  ASSERT_TRUE(finished.WaitForNotificationWithTimeout(absl::Seconds(10)));
  const size_t heartbeats = scheduler.heartbeats().size();
  absl::SleepFor(absl::Milliseconds(150));
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(state.load(), fapo::v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(scheduler.heartbeats().size(), heartbeats);
}

TEST(WorkerLeaseTest, StopIsPromptWhileTheSchedulerIsDown) {
  std::atomic<int> lost{0};
  WorkerLeaseOptions options = Options(UnusedAddress());
  options.on_lost = [&](const absl::Status&) { lost.fetch_add(1); };
  auto lease = WorkerLease::Start(options);
  ASSERT_THAT(lease, IsOk());
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_FALSE((*lease)->registered());
  const absl::Time start = absl::Now();
  (*lease)->Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(lost.load(), 0);
}

TEST(WorkerLeaseTest, StopCancelsARegistrationThatHangs) {
  // A socket that listens but never speaks HTTP/2: RegisterWorker waits for
  // its whole deadline unless Stop cancels it.
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(
      bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)),
      0);
  ASSERT_EQ(listen(listener, 16), 0);
  socklen_t length = sizeof(address);
  getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
  WorkerLeaseOptions options =
      Options(absl::StrCat("127.0.0.1:", ntohs(address.sin_port)));
  options.register_timeout = absl::Seconds(30);
  auto lease = WorkerLease::Start(options);
  ASSERT_THAT(lease, IsOk());
  absl::SleepFor(absl::Milliseconds(300));
  const absl::Time start = absl::Now();
  (*lease)->Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  close(listener);
}

TEST(WorkerLeaseTest, RegistersOnceTheSchedulerComesUp) {
  auto port = testing::FreeLoopbackPort();
  ASSERT_THAT(port, IsOk());
  auto lease = WorkerLease::Start(Options(absl::StrCat("127.0.0.1:", *port)));
  ASSERT_THAT(lease, IsOk());
  absl::SleepFor(absl::Milliseconds(500));  // a few failed attempts
  EXPECT_FALSE((*lease)->registered());
  FakeSchedulerService scheduler(absl::Milliseconds(20));
  auto server = Serve(&scheduler, *port);
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(
      Eventually([&] { return (*lease)->registered(); }, absl::Seconds(5)));
  EXPECT_TRUE(scheduler.knows("genrm-0"));
}

TEST(WorkerLeaseTest, GivesUpAndCallsOnLostAfterLostAfter) {
  absl::Notification lost;
  absl::Status reason;
  WorkerLeaseOptions options = Options(UnusedAddress());
  options.lost_after = absl::Milliseconds(300);
  options.on_lost = [&](const absl::Status& status) {
    reason = status;
    lost.Notify();
  };
  const absl::Time start = absl::Now();
  auto lease = WorkerLease::Start(options);
  ASSERT_THAT(lease, IsOk());
  ASSERT_TRUE(lost.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300));
  EXPECT_FALSE(reason.ok());
}

TEST(WorkerLeaseTest, LosesALeaseWhoseSchedulerStopsAnswering) {
  FakeSchedulerService scheduler(absl::Milliseconds(20));
  auto server = Serve(&scheduler);
  ASSERT_NE(server, nullptr);
  absl::Notification lost;
  WorkerLeaseOptions options = Options(server->address());
  options.lost_after = absl::Milliseconds(400);
  options.on_lost = [&](const absl::Status&) { lost.Notify(); };
  auto lease = WorkerLease::Start(options);
  ASSERT_THAT(lease, IsOk());
  ASSERT_TRUE(Eventually([&] { return (*lease)->heartbeats() >= 2; }));
  EXPECT_FALSE(lost.HasBeenNotified());
  server->Shutdown();
  ASSERT_TRUE(lost.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_FALSE((*lease)->registered());
}

TEST(WorkerLeaseTest, StartRejectsIncompleteOptions) {
  WorkerLeaseOptions options = Options("127.0.0.1:1");
  options.worker.clear_worker_id();
  EXPECT_THAT(
      WorkerLease::Start(options),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("worker_id")));
  options = Options("");
  EXPECT_THAT(WorkerLease::Start(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("scheduler_address")));
  options = Options("127.0.0.1:1");
  options.worker.set_role(fapo::v1::WORKER_ROLE_UNSPECIFIED);
  EXPECT_THAT(WorkerLease::Start(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("role")));
}

}  // namespace
}  // namespace fapo::rpc
