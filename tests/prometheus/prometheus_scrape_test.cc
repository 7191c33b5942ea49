// A real Prometheus server scrapes an exporter built from services/metrics
// (prometheus-cpp's exposer serving our registry),
// and its query API must report exactly the values the exporter set.
//
// What this proves beyond the unit tests: Prometheus's own scraper and parser
// accept our exposition (content type, escaping, float formatting, histogram
// layout), and values survive the trip into its TSDB bit for bit.
//
// Everything stays on loopback: the exporter on 127.0.0.1:<port 0>,
// Prometheus on 127.0.0.1:<a free port>. Prometheus runs as a child process
// with its data, config and log in a temporary directory; both are cleaned up
// by RAII, and the child also dies with this process (PR_SET_PDEATHSIG) if
// the test crashes. The prometheus binary comes from Debian's `prometheus`
// package (installed by the install script); without it the test fails.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/metrics/metrics_registry.h"
#include "services/metrics/metrics_server.h"
#include "services/status/status_matchers.h"
#include "tests/support/http_client.h"
#include "tests/support/subprocess.h"

namespace fapo::metrics {
namespace {

using ::fapo::testing::HttpGet;
using ::fapo::testing::HttpResponse;
using ::fapo::testing::UrlEncode;

// How long Prometheus may take to start and first scrape the target. It
// normally takes 1-3 s; the bound is for a loaded 2-core machine.
constexpr absl::Duration kStartTimeout = absl::Seconds(60);
// How long a changed value may take to show up in queries (scrape interval
// is 1 s).
constexpr absl::Duration kValueTimeout = absl::Seconds(20);
constexpr absl::Duration kPollInterval = absl::Milliseconds(100);

// Label set of a query result without the labels Prometheus adds itself.
using Series = std::map<std::string, std::string>;
using QueryResult = std::map<Series, double>;

std::string Describe(const QueryResult& result) {
  std::string out = "{";
  for (const auto& [series, value] : result) {
    out += "{";
    for (const auto& [name, label] : series) {
      absl::StrAppend(&out, name, "=\"", absl::CEscape(label), "\",");
    }
    absl::StrAppend(&out, "} => ", value, "; ");
  }
  return out + "}";
}

// Prometheus, the exporter, and everything they need.
class Harness {
 public:
  // The exporter's series; also what the tests expect Prometheus to report.
  static constexpr char kOddLabelValue[] =
      "quote\" backslash\\ newline\n caf\xc3\xa9";

  static absl::StatusOr<std::unique_ptr<Harness>> Start() {
    auto harness = std::unique_ptr<Harness>(new Harness());
    absl::Status status = harness->StartExporter();
    if (status.ok()) status = harness->StartPrometheus();
    if (!status.ok()) {
      return absl::Status(
          status.code(),
          absl::StrCat(status.message(), "\n", harness->PrometheusLogTail()));
    }
    return harness;
  }

  std::string PrometheusLogTail() const {
    if (log_path_.empty()) return "";  // Prometheus never started
    return absl::StrCat("--- last lines of ", log_path_.string(), ":\n",
                        fapo::testing::TailOfFile(log_path_.string()));
  }

  // Runs an instant query; the result's series without __name__, job and
  // instance.
  absl::StatusOr<QueryResult> Query(absl::string_view promql) const {
    absl::StatusOr<HttpResponse> response = HttpGet(
        absl::StrCat(api_base_, "/api/v1/query?query=", UrlEncode(promql)));
    if (!response.ok()) return response.status();
    // nlohmann::json throws on malformed input; catch it here, at the edge.
    try {
      const nlohmann::json body = nlohmann::json::parse(response->body);
      if (body.at("status") != "success") {
        return absl::InternalError(absl::StrCat("query ", promql, " gave HTTP ",
                                                response->status_code, ": ",
                                                response->body));
      }
      QueryResult result;
      for (const nlohmann::json& sample : body.at("data").at("result")) {
        Series series;
        for (const auto& [name, value] : sample.at("metric").items()) {
          if (name == "__name__" || name == "job" || name == "instance") {
            continue;
          }
          series[name] = value.get<std::string>();
        }
        // Values come as strings: "12.5", "+Inf", "NaN".
        const std::string value = sample.at("value").at(1).get<std::string>();
        result[series] = std::strtod(value.c_str(), nullptr);
      }
      return result;
    } catch (const nlohmann::json::exception& error) {
      return absl::InternalError(absl::StrCat(
          "query ", promql, ": ", error.what(), " in ", response->body));
    }
  }

  // Polls `promql` until it returns exactly `expected` (values compared
  // exactly) or `timeout` passes; returns the last result or error seen.
  // Polling also covers Prometheus marking a target "up" slightly before the
  // scraped samples are committed.
  absl::StatusOr<QueryResult> WaitForQuery(absl::string_view promql,
                                           const QueryResult& expected,
                                           absl::Duration timeout) const {
    const absl::Time deadline = absl::Now() + timeout;
    absl::StatusOr<QueryResult> result;
    do {
      result = Query(promql);
      if (result.ok() && *result == expected) return result;
      absl::SleepFor(kPollInterval);
    } while (absl::Now() < deadline);
    return result;
  }

  // The exporter's entry in /api/v1/targets (health, lastError, labels...).
  absl::StatusOr<nlohmann::json> ActiveTarget() const {
    absl::StatusOr<HttpResponse> response =
        HttpGet(absl::StrCat(api_base_, "/api/v1/targets?state=active"));
    if (!response.ok()) return response.status();
    try {
      const nlohmann::json body = nlohmann::json::parse(response->body);
      for (const nlohmann::json& target : body.at("data").at("activeTargets")) {
        if (target.value("scrapeUrl", "") == server_->url()) return target;
      }
    } catch (const nlohmann::json::exception& error) {
      return absl::InternalError(
          absl::StrCat("targets API: ", error.what(), " in ", response->body));
    }
    return absl::NotFoundError(absl::StrCat("no active target ", server_->url(),
                                            " in ", response->body));
  }

  MetricsRegistry& registry() { return *registry_; }
  const MetricsServer& server() const { return *server_; }
  Counter& updates() { return *updates_; }

 private:
  Harness() = default;

  absl::Status StartExporter() {
    registry_ = NewMetricsRegistry();
    ASSIGN_OR_RETURN(
        CounterFamily * trajectories,
        registry_->AddCounter("fapo_it_trajectories_total",
                              "Trajectories by state.", {"state"}));
    trajectories->WithLabels({{"state", "scored"}}).Increment(12);
    trajectories->WithLabels({{"state", "dropped"}}).Increment(3);
    ASSIGN_OR_RETURN(CounterFamily * tokens,
                     registry_->AddCounter("fapo_it_tokens_generated_total",
                                           "Tokens generated.", {}));
    tokens->WithLabels({}).Increment(1e6);
    ASSIGN_OR_RETURN(
        CounterFamily * odd,
        registry_->AddCounter("fapo_it_odd_labels_total",
                              "Label values that need escaping.", {"value"}));
    odd->WithLabels({{"value", kOddLabelValue}}).Increment(5);
    ASSIGN_OR_RETURN(CounterFamily * updates,
                     registry_->AddCounter("fapo_it_updates_total",
                                           "Changed by the test.", {}));
    updates_ = &updates->WithLabels({});
    updates_->Increment(1);

    ASSIGN_OR_RETURN(GaugeFamily * depth,
                     registry_->AddGauge("fapo_it_queue_depth",
                                         "Trajectories waiting.", {}));
    depth->WithLabels({}).Set(42);
    ASSIGN_OR_RETURN(GaugeFamily * up, registry_->AddGauge("fapo_it_worker_up",
                                                           "Worker liveness.",
                                                           {"worker", "role"}));
    up->WithLabels({{"worker", "w0"}, {"role", "rollout"}}).Set(1);
    up->WithLabels({{"worker", "w1"}, {"role", "genrm"}}).Set(0);
    ASSIGN_OR_RETURN(GaugeFamily * reward,
                     registry_->AddGauge("fapo_it_reward_mean",
                                         "Mean reward of the last step.", {}));
    reward->WithLabels({}).Set(-0.125);
    ASSIGN_OR_RETURN(
        GaugeFamily * ratio,
        registry_->AddGauge("fapo_it_flawed_positive_ratio",
                            "A value with no short decimal form.", {}));
    ratio->WithLabels({}).Set(1.0 / 3.0);

    ASSIGN_OR_RETURN(
        HistogramFamily * latency,
        registry_->AddHistogram("fapo_it_genrm_latency_seconds",
                                "GenRM latency.", {0.1, 0.5, 1, 5}, {"genrm"}));
    Histogram& rule = latency->WithLabels({{"genrm", "rule"}});
    for (double value : {0.05, 0.3, 0.3, 2.0, 10.0}) rule.Observe(value);

    MetricsServerOptions options;  // 127.0.0.1, port 0
    ASSIGN_OR_RETURN(server_, MetricsServer::Start(registry_.get(), options));
    return absl::OkStatus();
  }

  absl::Status StartPrometheus() {
    const std::string binary = fapo::testing::FindOnPath("prometheus");
    if (binary.empty()) {
      const char* path = std::getenv("PATH");
      return absl::FailedPreconditionError(absl::StrCat(
          "the prometheus binary is not on PATH (",
          path != nullptr ? path : "unset",
          "). It comes with Debian's `prometheus` package, which the install "
          "script installs: apt-get install prometheus"));
    }
    RETURN_IF_ERROR(temp_dir_.status());
    const std::filesystem::path dir(temp_dir_.path());
    log_path_ = dir / "prometheus.log";
    const std::filesystem::path config = dir / "prometheus.yml";
    {
      std::ofstream file(config);
      file << "global:\n"
           << "  scrape_interval: 1s\n"
           << "  scrape_timeout: 1s\n"
           << "  evaluation_interval: 1s\n"
           << "scrape_configs:\n"
           << "  - job_name: fapo_exporter\n"
           << "    metrics_path: /metrics\n"
           << "    static_configs:\n"
           << "      - targets: ['127.0.0.1:" << server_->port() << "']\n";
      if (!file) return absl::InternalError("cannot write prometheus.yml");
    }
    // The web port is picked by binding port 0 and closing, so another
    // process can take it in between: retry with a new port if Prometheus
    // exits during start-up.
    absl::Status status;
    for (int attempt = 0; attempt < 3; ++attempt) {
      ASSIGN_OR_RETURN(const int web_port, fapo::testing::FreeLoopbackPort());
      api_base_ = absl::StrCat("http://127.0.0.1:", web_port);
      const std::vector<std::string> argv = {
          binary,
          absl::StrCat("--config.file=", config.string()),
          absl::StrCat("--storage.tsdb.path=", (dir / "data").string()),
          absl::StrCat("--web.listen-address=127.0.0.1:", web_port),
          // Nothing from /etc. Info logs go to the log file, whose tail is
          // printed when a test fails.
          absl::StrCat("--web.console.templates=", dir.string()),
          absl::StrCat("--web.console.libraries=", dir.string()),
          "--log.level=info",
      };
      ASSIGN_OR_RETURN(prometheus_, fapo::testing::Subprocess::Start(
                                        argv, log_path_.string()));
      status = WaitUntilScraping();
      if (status.ok() || prometheus_->Running()) return status;
      prometheus_.reset();
    }
    return status;
  }

  // Waits for /-/ready, then for the exporter target to report "up".
  absl::Status WaitUntilScraping() {
    const absl::Time deadline = absl::Now() + kStartTimeout;
    std::string last;
    while (absl::Now() < deadline) {
      if (!prometheus_->Running()) {
        return absl::UnavailableError(
            absl::StrCat("prometheus exited with status ",
                         prometheus_->Wait(absl::ZeroDuration()).value_or(-1),
                         " during start-up"));
      }
      absl::StatusOr<nlohmann::json> target = ActiveTarget();
      if (target.ok()) {
        if (target->value("health", "") == "up") return absl::OkStatus();
        last = absl::StrCat("target health \"", target->value("health", ""),
                            "\", lastError \"", target->value("lastError", ""),
                            "\"");
      } else {
        last = std::string(target.status().message());
      }
      absl::SleepFor(kPollInterval);
    }
    return absl::DeadlineExceededError(absl::StrCat(
        "prometheus did not report ", server_->url(), " up within ",
        absl::FormatDuration(kStartTimeout), "; last: ", last));
  }

  // Destroyed in reverse order: Prometheus stops before the exporter, and
  // the temporary directory goes last.
  fapo::testing::TempDir temp_dir_{"fapo-prometheus-"};
  std::filesystem::path log_path_;
  std::unique_ptr<MetricsRegistry> registry_;
  std::unique_ptr<MetricsServer> server_;
  Counter* updates_ = nullptr;
  std::string api_base_;
  std::unique_ptr<fapo::testing::Subprocess> prometheus_;
};

// One Prometheus for the whole suite: starting it takes a few seconds.
class PrometheusScrapeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<Harness>> harness = Harness::Start();
    if (harness.ok()) {
      harness_ = std::move(*harness).release();
    } else {
      *start_error_ = harness.status().ToString();
    }
  }
  static void TearDownTestSuite() {
    delete harness_;
    harness_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(harness_, nullptr)
        << "could not start the harness: " << *start_error_;
  }
  void TearDown() override {
    if (HasFailure() && harness_ != nullptr) {
      std::cerr << harness_->PrometheusLogTail();
    }
  }

  static Harness* harness_;
  static std::string* const start_error_;
};

Harness* PrometheusScrapeTest::harness_ = nullptr;
std::string* const PrometheusScrapeTest::start_error_ = new std::string();

TEST_F(PrometheusScrapeTest, TargetIsUpAndEverySampleWasIngested) {
  ASSERT_OK_AND_ASSIGN(nlohmann::json target, harness_->ActiveTarget());
  EXPECT_EQ(target.value("health", ""), "up");
  EXPECT_EQ(target.value("lastError", "?"), "");
  EXPECT_EQ(target["labels"].value("job", ""), "fapo_exporter");

  ASSERT_OK_AND_ASSIGN(
      QueryResult up, harness_->WaitForQuery("up", {{{}, 1.0}}, kValueTimeout));
  EXPECT_EQ(up, (QueryResult{{{}, 1.0}}));

  // Prometheus counts the samples it parsed from the scrape; it must be
  // every sample line of our exposition (none dropped as unparsable),
  // prometheus-cpp's exposer_* scrape metrics included.
  ASSERT_OK_AND_ASSIGN(HttpResponse served, HttpGet(harness_->server().url()));
  const std::string exposition = served.body;
  int samples = 0;
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (!line.empty() && line[0] != '#') ++samples;
  }
  const QueryResult expected_samples = {{{}, static_cast<double>(samples)}};
  ASSERT_OK_AND_ASSIGN(QueryResult scraped,
                       harness_->WaitForQuery("scrape_samples_scraped",
                                              expected_samples, kValueTimeout));
  EXPECT_EQ(scraped, expected_samples) << exposition;
}

TEST_F(PrometheusScrapeTest, CountersMatch) {
  const QueryResult trajectories = {{{{"state", "scored"}}, 12},
                                    {{{"state", "dropped"}}, 3}};
  ASSERT_OK_AND_ASSIGN(QueryResult result,
                       harness_->WaitForQuery("fapo_it_trajectories_total",
                                              trajectories, kValueTimeout));
  EXPECT_EQ(result, trajectories) << Describe(result);

  const QueryResult tokens = {{{}, 1e6}};
  ASSERT_OK_AND_ASSIGN(
      result, harness_->WaitForQuery("fapo_it_tokens_generated_total", tokens,
                                     kValueTimeout));
  EXPECT_EQ(result, tokens) << Describe(result);
}

TEST_F(PrometheusScrapeTest, GaugesMatch) {
  const QueryResult depth = {{{}, 42}};
  ASSERT_OK_AND_ASSIGN(
      QueryResult result,
      harness_->WaitForQuery("fapo_it_queue_depth", depth, kValueTimeout));
  EXPECT_EQ(result, depth) << Describe(result);

  const QueryResult up = {{{{"worker", "w0"}, {"role", "rollout"}}, 1},
                          {{{"worker", "w1"}, {"role", "genrm"}}, 0}};
  ASSERT_OK_AND_ASSIGN(
      result, harness_->WaitForQuery("fapo_it_worker_up", up, kValueTimeout));
  EXPECT_EQ(result, up) << Describe(result);

  const QueryResult reward = {{{}, -0.125}};
  ASSERT_OK_AND_ASSIGN(result, harness_->WaitForQuery("fapo_it_reward_mean",
                                                      reward, kValueTimeout));
  EXPECT_EQ(result, reward) << Describe(result);

  // 1/3 has no short decimal form: only a shortest round-trip rendering
  // gets the identical double into Prometheus.
  const QueryResult ratio = {{{}, 1.0 / 3.0}};
  ASSERT_OK_AND_ASSIGN(
      result, harness_->WaitForQuery("fapo_it_flawed_positive_ratio", ratio,
                                     kValueTimeout));
  EXPECT_EQ(result, ratio) << Describe(result);
}

TEST_F(PrometheusScrapeTest, HistogramMatches) {
  // Observations 0.05, 0.3, 0.3, 2, 10 against bounds 0.1, 0.5, 1, 5.
  const QueryResult buckets = {
      {{{"genrm", "rule"}, {"le", "0.1"}}, 1},
      {{{"genrm", "rule"}, {"le", "0.5"}}, 3},
      {{{"genrm", "rule"}, {"le", "1"}}, 3},
      {{{"genrm", "rule"}, {"le", "5"}}, 4},
      {{{"genrm", "rule"}, {"le", "+Inf"}}, 5},
  };
  ASSERT_OK_AND_ASSIGN(
      QueryResult result,
      harness_->WaitForQuery("fapo_it_genrm_latency_seconds_bucket", buckets,
                             kValueTimeout));
  EXPECT_EQ(result, buckets) << Describe(result);

  const QueryResult count = {{{{"genrm", "rule"}}, 5}};
  ASSERT_OK_AND_ASSIGN(
      result, harness_->WaitForQuery("fapo_it_genrm_latency_seconds_count",
                                     count, kValueTimeout));
  EXPECT_EQ(result, count) << Describe(result);

  // The sum as this process computed it, bit for bit.
  const double sum = 0.05 + 0.3 + 0.3 + 2.0 + 10.0;
  const QueryResult sums = {{{{"genrm", "rule"}}, sum}};
  ASSERT_OK_AND_ASSIGN(
      result, harness_->WaitForQuery("fapo_it_genrm_latency_seconds_sum", sums,
                                     kValueTimeout));
  EXPECT_EQ(result, sums) << Describe(result);

  // And Prometheus can compute with it: the median falls in (0.1, 0.5].
  ASSERT_OK_AND_ASSIGN(
      result,
      harness_->Query(
          "histogram_quantile(0.5, fapo_it_genrm_latency_seconds_bucket)"));
  ASSERT_EQ(result.size(), 1u) << Describe(result);
  EXPECT_GT(result.begin()->second, 0.1);
  EXPECT_LE(result.begin()->second, 0.5);
}

TEST_F(PrometheusScrapeTest, EscapedLabelValuesArriveUnchanged) {
  const QueryResult odd = {{{{"value", Harness::kOddLabelValue}}, 5}};
  ASSERT_OK_AND_ASSIGN(
      QueryResult result,
      harness_->WaitForQuery("fapo_it_odd_labels_total", odd, kValueTimeout));
  EXPECT_EQ(result, odd) << Describe(result);
}

TEST_F(PrometheusScrapeTest, UpdatedValueIsSeenOnALaterScrape) {
  const QueryResult before = {{{}, 1}};
  ASSERT_OK_AND_ASSIGN(
      QueryResult result,
      harness_->WaitForQuery("fapo_it_updates_total", before, kValueTimeout));
  ASSERT_EQ(result, before) << Describe(result);

  harness_->updates().Increment(41);
  const QueryResult after = {{{}, 42}};
  ASSERT_OK_AND_ASSIGN(result, harness_->WaitForQuery("fapo_it_updates_total",
                                                      after, kValueTimeout));
  EXPECT_EQ(result, after) << Describe(result);
}

}  // namespace
}  // namespace fapo::metrics
