#include "services/metrics/metrics_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/logging/log.h"
#include "services/status/status_matchers.h"
#include "tests/support/http_client.h"

namespace fapo::metrics {
namespace {

using ::fapo::testing::HttpGet;
using ::fapo::testing::HttpResponse;
using ::fapo::testing::StatusIs;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

class MetricsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(
        counter_family_,
        registry_->AddCounter("fapo_requests_total", "Requests.", {"code"}));
    counter_family_->WithLabels({{"code", "200"}}).Increment(7);
    ASSERT_OK_AND_ASSIGN(GaugeFamily * depth,
                         registry_->AddGauge("fapo_queue_depth", "Depth.", {}));
    depth->WithLabels({}).Set(3);
  }

  std::string Base(const MetricsServer& server) {
    return absl::StrCat("http://127.0.0.1:", server.port());
  }

  std::unique_ptr<MetricsRegistry> registry_ = NewMetricsRegistry();
  CounterFamily* counter_family_ = nullptr;
};

TEST_F(MetricsServerTest, ServesTheRegistryOnAFreePort) {
  std::vector<std::string> log_lines;
  logging::SetSink(
      [&](absl::string_view line) { log_lines.emplace_back(line); });
  absl::StatusOr<std::unique_ptr<MetricsServer>> started =
      MetricsServer::Start(registry_.get(), {});
  logging::SetSink(nullptr);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<MetricsServer> server,
                       std::move(started));
  ASSERT_GT(server->port(), 0);
  EXPECT_EQ(server->host(), "127.0.0.1");
  const std::string url =
      absl::StrCat("http://127.0.0.1:", server->port(), "/metrics");
  EXPECT_EQ(server->url(), url);
  EXPECT_THAT(log_lines,
              Contains(HasSubstr("metrics endpoint listening on " + url)));

  ASSERT_OK_AND_ASSIGN(HttpResponse response, HttpGet(url));
  EXPECT_EQ(response.status_code, 200);
  EXPECT_THAT(response.content_type, HasSubstr("text/plain"));
  EXPECT_THAT(response.body, HasSubstr("# HELP fapo_requests_total Requests.\n"
                                       "# TYPE fapo_requests_total counter\n"
                                       "fapo_requests_total{code=\"200\"} 7\n"
                                       "# HELP fapo_queue_depth Depth.\n"
                                       "# TYPE fapo_queue_depth gauge\n"
                                       "fapo_queue_depth 3\n"));
  // prometheus-cpp's exposer counts its own scrapes.
  EXPECT_THAT(response.body, HasSubstr("exposer_scrapes_total"));

  // Every scrape renders current values.
  counter_family_->WithLabels({{"code", "200"}}).Increment();
  counter_family_->WithLabels({{"code", "500"}}).Increment();
  ASSERT_OK_AND_ASSIGN(response, HttpGet(url));
  EXPECT_THAT(response.body,
              HasSubstr("fapo_requests_total{code=\"200\"} 8\n"));
  EXPECT_THAT(response.body,
              HasSubstr("fapo_requests_total{code=\"500\"} 1\n"));

  // Prometheus may append query parameters; the path still matches.
  ASSERT_OK_AND_ASSIGN(response, HttpGet(url + "?x=1"));
  EXPECT_EQ(response.status_code, 200);
}

TEST_F(MetricsServerTest, OtherPathsAre404) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<MetricsServer> server,
                       MetricsServer::Start(registry_.get(), {}));
  for (const char* path : {"/", "/nope", "/healthz", "/metric"}) {
    ASSERT_OK_AND_ASSIGN(HttpResponse response, HttpGet(Base(*server) + path));
    EXPECT_EQ(response.status_code, 404) << path;
  }
}

TEST_F(MetricsServerTest, ServesConcurrentScrapesWhileValuesChange) {
  MetricsServerOptions options;
  options.num_threads = 4;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<MetricsServer> server,
                       MetricsServer::Start(registry_.get(), options));
  std::atomic<bool> done{false};
  std::thread writer([&] {
    Counter& counter = counter_family_->WithLabels({{"code", "200"}});
    while (!done.load()) counter.Increment();
  });
  std::vector<std::thread> scrapers;
  std::atomic<int> good{0};
  for (int t = 0; t < 4; ++t) {
    scrapers.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        absl::StatusOr<HttpResponse> response = HttpGet(server->url());
        if (response.ok() && response->status_code == 200 &&
            absl::StrContains(response->body, "fapo_requests_total")) {
          ++good;
        }
      }
    });
  }
  for (std::thread& scraper : scrapers) scraper.join();
  done = true;
  writer.join();
  EXPECT_EQ(good.load(), 80);
}

TEST_F(MetricsServerTest, PortInUseByAnotherServerIsAClearError) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<MetricsServer> first,
                       MetricsServer::Start(registry_.get(), {}));
  MetricsServerOptions options;
  options.port = first->port();
  const std::string address = absl::StrCat("127.0.0.1:", first->port());
  EXPECT_THAT(MetricsServer::Start(registry_.get(), options),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("cannot listen on " + address),
                             HasSubstr("Address already in use"))));
  // The first server is unaffected.
  ASSERT_OK_AND_ASSIGN(HttpResponse response, HttpGet(first->url()));
  EXPECT_EQ(response.status_code, 200);
}

TEST_F(MetricsServerTest, PortInUseByAPlainSocketIsAClearError) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)),
            0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t length = sizeof(address);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  MetricsServerOptions options;
  options.port = ntohs(address.sin_port);
  EXPECT_THAT(
      MetricsServer::Start(registry_.get(), options),
      StatusIs(absl::StatusCode::kUnavailable,
               AllOf(HasSubstr(absl::StrCat("127.0.0.1:", options.port)),
                     HasSubstr("in use"))));
  close(fd);
}

TEST_F(MetricsServerTest, StopsServingWhenDestroyed) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<MetricsServer> server,
                       MetricsServer::Start(registry_.get(), {}));
  const std::string url = server->url();
  ASSERT_OK(HttpGet(url).status());
  // civetweb alone would take up to 2 s here; see NOTE [civetweb stop].
  const absl::Time before_stop = absl::Now();
  server.reset();
  EXPECT_LT(absl::Now() - before_stop, absl::Seconds(1));
  EXPECT_THAT(HttpGet(url, absl::Seconds(2)),
              StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(MetricsServerTest, TwoServersServeTheirOwnRegistries) {
  std::unique_ptr<MetricsRegistry> other = NewMetricsRegistry();
  ASSERT_OK_AND_ASSIGN(GaugeFamily * gauge,
                       other->AddGauge("fapo_other", "Other.", {}));
  gauge->WithLabels({}).Set(1);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<MetricsServer> first,
                       MetricsServer::Start(registry_.get(), {}));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<MetricsServer> second,
                       MetricsServer::Start(other.get(), {}));
  EXPECT_NE(first->port(), second->port());
  ASSERT_OK_AND_ASSIGN(HttpResponse response, HttpGet(second->url()));
  EXPECT_THAT(response.body,
              HasSubstr("# HELP fapo_other Other.\n# TYPE fapo_other gauge\n"
                        "fapo_other 1\n"));
  EXPECT_THAT(response.body, Not(HasSubstr("fapo_requests_total")));
}

TEST_F(MetricsServerTest, RejectsBadOptions) {
  constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;
  MetricsServerOptions options;
  for (const char* host : {"localhost", "::1", "", "127.0.0.1,8080",
                           "127.0.0.1:80", "300.0.0.1"}) {
    options.host = host;
    EXPECT_THAT(MetricsServer::Start(registry_.get(), options),
                StatusIs(kInvalid, HasSubstr("IPv4")))
        << host;
  }
  options = {};
  options.port = 70000;
  EXPECT_THAT(MetricsServer::Start(registry_.get(), options),
              StatusIs(kInvalid, HasSubstr("70000")));
  options = {};
  options.num_threads = 0;
  EXPECT_THAT(MetricsServer::Start(registry_.get(), options),
              StatusIs(kInvalid, HasSubstr("num_threads")));
  EXPECT_THAT(MetricsServer::Start(nullptr, {}), StatusIs(kInvalid));
}

}  // namespace
}  // namespace fapo::metrics
