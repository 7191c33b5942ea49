// RpcServer and channels over real gRPC on loopback: plaintext, TLS with a
// bearer token, mutual TLS, and the refusals without them; retries for
// idempotent methods only; health, reflection and graceful drain.
#include "services/rpc/server.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "fapo/v1/genrm.grpc.pb.h"
#include "fapo/v1/rollout.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/rpc/channel.h"
#include "services/rpc/introspection.h"
#include "services/rpc/status_conversion.h"
#include "services/rpc/test_certs.h"
#include "services/status/status_matchers.h"
#include "tests/support/subprocess.h"

namespace fapo::rpc {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::Contains;
using ::testing::HasSubstr;

// A GenRM that echoes the trajectory id, optionally failing the first calls
// with UNAVAILABLE or answering after a delay (on its own thread: a reactor
// thread is never blocked).
class TestGenRMService final : public fapo::v1::GenRM::CallbackService {
 public:
  ~TestGenRMService() override {
    for (auto& thread : threads_) thread.join();
  }

  grpc::ServerUnaryReactor* Score(grpc::CallbackServerContext* context,
                                  const fapo::v1::ScoreRequest* request,
                                  fapo::v1::ScoreResponse* response) override {
    ++calls;
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    if (failures_left.fetch_sub(1) > 0) {
      reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "flaky"));
      return reactor;
    }
    response->mutable_verdict()->set_trajectory_id(request->trajectory_id());
    response->mutable_verdict()->set_first_error_step(-1);
    if (delay == absl::ZeroDuration()) {
      reactor->Finish(grpc::Status::OK);
    } else {
      absl::MutexLock lock(&mu_);
      threads_.emplace_back([reactor, delay = delay] {
        absl::SleepFor(delay);
        reactor->Finish(grpc::Status::OK);
      });
    }
    return reactor;
  }

  std::atomic<int> calls{0};
  std::atomic<int> failures_left{0};
  absl::Duration delay = absl::ZeroDuration();

 private:
  absl::Mutex mu_;
  std::vector<std::thread> threads_;
};

// A rollout worker whose Generate always fails with UNAVAILABLE.
class FailingRolloutService final : public fapo::v1::Rollout::CallbackService {
 public:
  class FailingWriter : public grpc::ServerWriteReactor<fapo::v1::Trajectory> {
   public:
    FailingWriter() {
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "busy"));
    }
    void OnDone() override { delete this; }
  };

  grpc::ServerWriteReactor<fapo::v1::Trajectory>* Generate(
      grpc::CallbackServerContext* /*context*/,
      const fapo::v1::GenerateRequest* /*request*/) override {
    ++calls;
    return new FailingWriter();
  }

  std::atomic<int> calls{0};
};

class RpcServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto dir = fapo::testing::MakeTempDir("fapo-rpc-test-");
    ASSERT_THAT(dir, IsOk());
    auto certs = testing::MakeTestCerts(*dir);
    ASSERT_THAT(certs, IsOk());
    certs_ = new testing::TestCerts(*certs);
  }
  static void TearDownTestSuite() {
    std::system(("rm -rf " + certs_->dir).c_str());
    delete certs_;
  }

  void StartServer(const SecurityOptions& security) {
    ServerOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.security = security;
    options.drain_timeout = drain_timeout_;
    auto server = RpcServer::Start(
        options, {{&genrm_, fapo::v1::GenRM::service_full_name()},
                  {&rollout_, fapo::v1::Rollout::service_full_name()}});
    ASSERT_THAT(server, IsOk());
    server_ = *std::move(server);
  }

  std::shared_ptr<grpc::Channel> Dial(const SecurityOptions& security) {
    ChannelOptions options;
    options.security = security;
    options.retry.initial_backoff = absl::Milliseconds(10);
    auto channel = MakeChannel(server_->address(), options);
    EXPECT_THAT(channel, IsOk());
    return channel.ok() ? *channel : nullptr;
  }

  absl::Status CallScore(const std::shared_ptr<grpc::Channel>& channel,
                         const std::string& id = "t-1") {
    auto stub = fapo::v1::GenRM::NewStub(channel);
    fapo::v1::ScoreRequest request;
    request.set_trajectory_id(id);
    fapo::v1::ScoreResponse response;
    auto context = NewContext(absl::Seconds(5));
    absl::Status status =
        FromGrpcStatus(stub->Score(context.get(), request, &response));
    if (status.ok() && response.verdict().trajectory_id() != id) {
      return absl::InternalError("wrong echo");
    }
    return status;
  }

  SecurityOptions ServerTls() const {
    SecurityOptions security;
    security.tls = true;
    security.cert_file = certs_->server_cert;
    security.key_file = certs_->server_key;
    return security;
  }
  SecurityOptions ClientTls() const {
    SecurityOptions security;
    security.tls = true;
    security.ca_file = certs_->ca_file;
    return security;
  }

  static testing::TestCerts* certs_;
  absl::Duration drain_timeout_ = absl::Seconds(5);
  TestGenRMService genrm_;
  FailingRolloutService rollout_;
  std::unique_ptr<RpcServer> server_;
};

testing::TestCerts* RpcServerTest::certs_ = nullptr;

TEST_F(RpcServerTest, PlaintextRoundTripOnPortZero) {
  StartServer({});
  EXPECT_GT(server_->port(), 0);
  EXPECT_EQ(server_->address(), "127.0.0.1:" + std::to_string(server_->port()));
  EXPECT_THAT(CallScore(Dial({})), IsOk());
  EXPECT_EQ(genrm_.calls.load(), 1);
}

TEST_F(RpcServerTest, TlsWithTokenRoundTrip) {
  SecurityOptions server = ServerTls();
  server.token_file = certs_->token_file;
  StartServer(server);
  SecurityOptions client = ClientTls();
  client.token_file = certs_->token_file;
  auto channel = Dial(client);
  EXPECT_THAT(CallScore(channel), IsOk());
  EXPECT_THAT(CheckHealth(channel, "", absl::Seconds(5)),
              fapo::testing::IsOkAndHolds(HealthStatus::kServing));
}

TEST_F(RpcServerTest, TlsServerRefusesCallsWithoutTheRightToken) {
  SecurityOptions server = ServerTls();
  server.token_file = certs_->token_file;
  StartServer(server);

  EXPECT_THAT(CallScore(Dial(ClientTls())),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       HasSubstr("missing bearer token")));
  SecurityOptions wrong = ClientTls();
  wrong.token_file = certs_->wrong_token_file;
  EXPECT_THAT(CallScore(Dial(wrong)),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       HasSubstr("invalid bearer token")));
  // The token guards every service on the port, health included.
  EXPECT_THAT(CheckHealth(Dial(ClientTls()), "", absl::Seconds(5)),
              StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_EQ(genrm_.calls.load(), 0);
}

TEST_F(RpcServerTest, TlsServerRefusesPlaintextAndUnknownCa) {
  StartServer(ServerTls());
  EXPECT_THAT(CallScore(Dial({})), StatusIs(absl::StatusCode::kUnavailable));
  SecurityOptions rogue;
  rogue.tls = true;
  rogue.ca_file = certs_->rogue_ca_file;
  EXPECT_THAT(CallScore(Dial(rogue)), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(genrm_.calls.load(), 0);
  EXPECT_THAT(CallScore(Dial(ClientTls())), IsOk());
}

TEST_F(RpcServerTest, MutualTlsNeedsAClientCertificateFromTheCa) {
  SecurityOptions server = ServerTls();
  server.ca_file = certs_->ca_file;
  server.require_client_cert = true;
  StartServer(server);

  EXPECT_THAT(CallScore(Dial(ClientTls())),
              StatusIs(absl::StatusCode::kUnavailable));
  SecurityOptions rogue = ClientTls();
  rogue.cert_file = certs_->rogue_client_cert;
  rogue.key_file = certs_->rogue_client_key;
  EXPECT_THAT(CallScore(Dial(rogue)), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(genrm_.calls.load(), 0);

  SecurityOptions good = ClientTls();
  good.cert_file = certs_->client_cert;
  good.key_file = certs_->client_key;
  EXPECT_THAT(CallScore(Dial(good)), IsOk());
}

TEST_F(RpcServerTest, TokenWithoutTlsIsRefusedAtStart) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.security.token_file = certs_->token_file;
  EXPECT_THAT(RpcServer::Start(options, {}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("security.token_file")));
}

TEST_F(RpcServerTest, BadCredentialFilesAreNamed) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.security = ServerTls();
  options.security.key_file = certs_->dir + "/missing.key";
  EXPECT_THAT(RpcServer::Start(options, {}),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("security.tls.key_file: cannot read")));

  std::string empty_token = certs_->dir + "/empty-token";
  std::system(("printf '  \\n' > " + empty_token).c_str());
  options.security = ServerTls();
  options.security.token_file = empty_token;
  EXPECT_THAT(
      RpcServer::Start(options, {}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is empty")));
}

TEST_F(RpcServerTest, PortInUseIsAClearError) {
  StartServer({});
  ServerOptions options;
  options.host = "127.0.0.1";
  options.port = server_->port();
  EXPECT_THAT(RpcServer::Start(options, {}),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("cannot listen on " + server_->address())));
}

TEST_F(RpcServerTest, IdempotentCallsAreRetriedOthersAreNot) {
  StartServer({});
  auto channel = Dial({});
  genrm_.failures_left = 2;
  EXPECT_THAT(CallScore(channel), IsOk());
  EXPECT_EQ(genrm_.calls.load(), 3);

  auto stub = fapo::v1::Rollout::NewStub(channel);
  auto context = NewContext(absl::Seconds(5));
  fapo::v1::GenerateRequest request;
  auto reader = stub->Generate(context.get(), request);
  fapo::v1::Trajectory trajectory;
  EXPECT_FALSE(reader->Read(&trajectory));
  EXPECT_THAT(FromGrpcStatus(reader->Finish()),
              StatusIs(absl::StatusCode::kUnavailable, "busy"));
  EXPECT_EQ(rollout_.calls.load(), 1);
}

TEST_F(RpcServerTest, RetriesAreBounded) {
  StartServer({});
  genrm_.failures_left = 100;
  EXPECT_THAT(CallScore(Dial({})), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(genrm_.calls.load(), RetryOptions().max_attempts);
}

TEST_F(RpcServerTest, HealthAndReflectionCoverEveryService) {
  StartServer({});
  auto channel = Dial({});
  EXPECT_THAT(CheckHealth(channel, "fapo.v1.GenRM", absl::Seconds(5)),
              fapo::testing::IsOkAndHolds(HealthStatus::kServing));
  EXPECT_THAT(CheckHealth(channel, "fapo.v1.Trainer", absl::Seconds(5)),
              StatusIs(absl::StatusCode::kNotFound));
  server_->SetServing(false);
  EXPECT_THAT(CheckHealth(channel, "fapo.v1.Rollout", absl::Seconds(5)),
              fapo::testing::IsOkAndHolds(HealthStatus::kNotServing));

  auto services = ListServices(channel, absl::Seconds(5));
  ASSERT_THAT(services, IsOk());
  EXPECT_THAT(*services, Contains("fapo.v1.GenRM"));
  EXPECT_THAT(*services, Contains("fapo.v1.Rollout"));
  EXPECT_THAT(*services, Contains("grpc.health.v1.Health"));
}

TEST_F(RpcServerTest, ShutdownDrainsCallsInFlight) {
  StartServer({});
  genrm_.delay = absl::Milliseconds(500);
  auto channel = Dial({});
  absl::Status in_flight;
  std::thread caller([&] { in_flight = CallScore(channel); });
  while (genrm_.calls.load() == 0) absl::SleepFor(absl::Milliseconds(5));
  server_->Shutdown();
  caller.join();
  EXPECT_THAT(in_flight, IsOk());
  // New calls are refused once the server has stopped.
  EXPECT_THAT(CallScore(channel), StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(RpcServerTest, ShutdownCancelsCallsThatOutliveTheDrain) {
  drain_timeout_ = absl::Milliseconds(100);
  StartServer({});
  genrm_.delay = absl::Seconds(2);
  auto channel = Dial({});
  absl::Status in_flight;
  absl::Time answered;
  std::thread caller([&] {
    in_flight = CallScore(channel);
    answered = absl::Now();
  });
  while (genrm_.calls.load() == 0) absl::SleepFor(absl::Milliseconds(5));
  absl::Time start = absl::Now();
  server_->Shutdown();
  caller.join();
  // The client hears of the cancellation when the drain ends, not when the
  // slow handler finally finishes.
  EXPECT_FALSE(in_flight.ok());
  EXPECT_LT(answered - start, absl::Seconds(1.5));
}

}  // namespace
}  // namespace fapo::rpc
