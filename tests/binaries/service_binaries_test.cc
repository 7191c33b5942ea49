// The built binaries, run as a user runs them: `fapo` and its subcommands,
// and each service binary's --help, config errors, start-up (ready file,
// health, /metrics), TLS + token from the job spec, and a clean SIGTERM.
#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fapo/v1/genrm.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/rpc/channel.h"
#include "services/rpc/introspection.h"
#include "services/rpc/test_certs.h"
#include "services/status/status_matchers.h"
#include "tests/support/http_client.h"
#include "tests/support/subprocess.h"

namespace fapo {
namespace {

using ::fapo::testing::BinaryPath;
using ::fapo::testing::CommandResult;
using ::fapo::testing::IsOk;
using ::fapo::testing::IsOkAndHolds;
using ::fapo::testing::RunCommand;
using ::fapo::testing::SourcePath;
using ::fapo::testing::StatusIs;
using ::fapo::testing::Subprocess;
using ::testing::HasSubstr;
using ::testing::Not;

const char* const kServiceBinaries[] = {"fapo-scheduler", "fapo-rollout-worker",
                                        "fapo-genrm-server", "fapo-trainer"};

CommandResult RunTool(const std::vector<std::string>& argv) {
  auto result = RunCommand(argv, absl::Seconds(30));
  EXPECT_THAT(result, IsOk());
  return result.ok() ? *result : CommandResult{-1, "", ""};
}

std::string HttpGet(const std::string& url) {
  absl::StatusOr<std::string> body = testing::FetchBody(url);
  EXPECT_THAT(body, IsOk()) << url;
  return body.ok() ? *body : "";
}

class BinariesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = testing::MakeTempDir("fapo-binaries-test-");
    ASSERT_THAT(dir, IsOk());
    dir_ = *dir;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  std::string WriteFile(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    FILE* file = std::fopen(path.c_str(), "w");
    std::fputs(text.c_str(), file);
    std::fclose(file);
    return path;
  }

  // Starts a service binary; returns it with its ready-file JSON.
  std::unique_ptr<Subprocess> StartService(const std::string& binary,
                                           const std::string& config,
                                           nlohmann::json* ready) {
    const std::string ready_file = dir_ + "/" + binary + ".ready";
    log_ = dir_ + "/" + binary + ".log";
    auto process =
        Subprocess::Start({BinaryPath(binary), "--config", config, "--host",
                           "127.0.0.1", "--port", "0", "--ready-file",
                           ready_file, "--drain-timeout-ms", "2000"},
                          log_);
    EXPECT_THAT(process, IsOk());
    if (!process.ok()) return nullptr;
    auto contents = testing::WaitForFile(ready_file, absl::Seconds(30));
    EXPECT_THAT(contents, IsOk()) << testing::TailOfFile(log_);
    if (contents.ok()) *ready = nlohmann::json::parse(*contents);
    return *std::move(process);
  }

  std::string dir_;
  std::string log_;
};

TEST_F(BinariesTest, FapoListsItsCommandsAndRejectsUnknownOnes) {
  CommandResult help = RunTool({BinaryPath("fapo"), "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.stdout_text, HasSubstr("validate"));
  EXPECT_THAT(help.stdout_text, HasSubstr("health"));

  CommandResult none = RunTool({BinaryPath("fapo")});
  EXPECT_EQ(none.exit_code, 2);

  CommandResult unknown = RunTool({BinaryPath("fapo"), "frobnicate"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_THAT(unknown.stderr_text, HasSubstr("unknown command 'frobnicate'"));

  CommandResult version = RunTool({BinaryPath("fapo"), "version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_THAT(version.stdout_text, ::testing::StartsWith("fapo "));
}

TEST_F(BinariesTest, ValidatePrintsTheEffectiveQuickstartConfig) {
  CommandResult result =
      RunTool({BinaryPath("fapo"), "validate",
               SourcePath("configs/quickstart.yaml"), "--set", "job.steps=7"});
  ASSERT_EQ(result.exit_code, 0) << result.stderr_text;
  EXPECT_THAT(result.stdout_text, HasSubstr("name: \"quickstart\""));
  EXPECT_THAT(result.stdout_text, HasSubstr("steps: 7"));
  // Defaults the file does not mention are filled in.
  EXPECT_THAT(result.stdout_text, HasSubstr("queue_capacity: 4096"));

  // The printed config is itself a valid job spec.
  std::string effective = WriteFile("effective.yaml", result.stdout_text);
  CommandResult again =
      RunTool({BinaryPath("fapo"), "validate", "--quiet", effective});
  EXPECT_EQ(again.exit_code, 0) << again.stderr_text;
  EXPECT_EQ(again.stdout_text, "");
}

TEST_F(BinariesTest, ValidateReportsEveryProblemWithItsLocation) {
  std::string bad = WriteFile("bad.yaml",
                              "job:\n"
                              "  name: demo\n"
                              "data:\n"
                              "  task: arith\n"
                              "rollout:\n"
                              "  temperature: hot\n"
                              "  group_sise: 8\n");
  CommandResult result = RunTool({BinaryPath("fapo"), "validate", bad});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.stderr_text,
              HasSubstr(bad + ":6:16: rollout.temperature"));
  EXPECT_THAT(result.stderr_text, HasSubstr(bad + ":7:3: rollout.group_sise"));
  EXPECT_THAT(result.stderr_text, HasSubstr("group_size"));

  CommandResult missing =
      RunTool({BinaryPath("fapo"), "validate", dir_ + "/nope.yaml"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.stderr_text, HasSubstr("nope.yaml"));
}

TEST_F(BinariesTest, ValidateChecksTheTaskToo) {
  // Schema-valid, but 9^40 overflows exact int64 arithmetic.
  CommandResult overflow =
      RunTool({BinaryPath("fapo"), "validate",
               SourcePath("configs/quickstart.yaml"), "--set",
               "data.arith.value_modulus=0", "--set", "data.arith.max_ops=40"});
  EXPECT_EQ(overflow.exit_code, 1);
  EXPECT_THAT(overflow.stderr_text, HasSubstr("data.arith"));
  CommandResult no_data =
      RunTool({BinaryPath("fapo"), "validate",
               SourcePath("configs/quickstart.yaml"), "--set", "data.task=math",
               "--set", "data.math.path=" + dir_ + "/missing.jsonl"});
  EXPECT_EQ(no_data.exit_code, 1);
  EXPECT_THAT(no_data.stderr_text, HasSubstr("data.math.path"));
  EXPECT_THAT(no_data.stderr_text, HasSubstr("missing.jsonl"));
}

TEST_F(BinariesTest, EveryServiceHasHelpAndRefusesBadConfig) {
  std::string bad = WriteFile("bad.yaml", "job:\n  name: [1, 2]\n");
  for (const char* binary : kServiceBinaries) {
    SCOPED_TRACE(binary);
    CommandResult help = RunTool({BinaryPath(binary), "--help"});
    EXPECT_EQ(help.exit_code, 0);
    EXPECT_THAT(help.stdout_text,
                HasSubstr(absl::StrCat("Usage: ", binary, " [flags]")));
    EXPECT_THAT(help.stdout_text, HasSubstr("--config JOB.yaml"));

    CommandResult no_config = RunTool({BinaryPath(binary)});
    EXPECT_EQ(no_config.exit_code, 2);
    EXPECT_THAT(no_config.stderr_text, HasSubstr("--config is required"));

    CommandResult bad_config = RunTool({BinaryPath(binary), "--config", bad});
    EXPECT_EQ(bad_config.exit_code, 2);
    EXPECT_THAT(bad_config.stderr_text, HasSubstr(bad + ":2:9: job.name"));
  }
}

TEST_F(BinariesTest, ServiceServesHealthAndMetricsAndStopsOnSigterm) {
  nlohmann::json ready;
  auto process = StartService("fapo-genrm-server",
                              SourcePath("configs/quickstart.yaml"), &ready);
  ASSERT_NE(process, nullptr);
  const std::string address = ready["grpc_address"];
  EXPECT_EQ(ready["component"], "genrm-server");

  auto channel = rpc::MakeChannel(address, {});
  ASSERT_THAT(channel, IsOk());
  EXPECT_THAT(rpc::CheckHealth(*channel, "", absl::Seconds(5)),
              IsOkAndHolds(rpc::HealthStatus::kServing));
  CommandResult health = RunTool({BinaryPath("fapo"), "health", address});
  EXPECT_EQ(health.exit_code, 0);
  EXPECT_EQ(health.stdout_text, "SERVING\n");

  const std::string metrics = HttpGet(ready["metrics_url"]);
  EXPECT_THAT(metrics, HasSubstr("fapo_build_info{component=\"genrm-server\""));
  EXPECT_THAT(metrics, HasSubstr("fapo_process_start_time_seconds"));

  process->Signal(SIGTERM);
  EXPECT_THAT(process->Wait(absl::Seconds(15)), IsOkAndHolds(0))
      << testing::TailOfFile(log_);
  EXPECT_THAT(testing::ReadFileOrEmpty(log_), HasSubstr("stopped cleanly"));
  CommandResult after =
      RunTool({BinaryPath("fapo"), "health", address, "--timeout-ms", "500"});
  EXPECT_EQ(after.exit_code, 1);
}

TEST_F(BinariesTest, TlsAndTokenFromTheJobSpecGuardTheService) {
  auto certs = rpc::testing::MakeTestCerts(dir_);
  ASSERT_THAT(certs, IsOk());
  std::string config = WriteFile(
      "tls.yaml",
      absl::StrCat("job:\n  name: tls-demo\n"
                   "data:\n  task: arith\n"
                   "security:\n  token_file: ",
                   certs->token_file,
                   "\n  tls:\n    enabled: true\n    cert_file: ",
                   certs->server_cert, "\n    key_file: ", certs->server_key,
                   "\n    ca_file: ", certs->ca_file, "\n"));
  nlohmann::json ready;
  auto process = StartService("fapo-trainer", config, &ready);
  ASSERT_NE(process, nullptr);
  const std::string address = ready["grpc_address"];

  CommandResult with_config =
      RunTool({BinaryPath("fapo"), "health", address, "--config", config});
  EXPECT_EQ(with_config.exit_code, 0)
      << with_config.stdout_text << with_config.stderr_text;
  EXPECT_EQ(with_config.stdout_text, "SERVING\n");

  CommandResult plaintext =
      RunTool({BinaryPath("fapo"), "health", address, "--timeout-ms", "2000"});
  EXPECT_EQ(plaintext.exit_code, 1);

  rpc::ChannelOptions no_token;
  no_token.security.tls = true;
  no_token.security.ca_file = certs->ca_file;
  auto channel = rpc::MakeChannel(address, no_token);
  ASSERT_THAT(channel, IsOk());
  EXPECT_THAT(rpc::CheckHealth(*channel, "", absl::Seconds(5)),
              StatusIs(absl::StatusCode::kUnauthenticated));

  process->Signal(SIGINT);
  EXPECT_THAT(process->Wait(absl::Seconds(15)), IsOkAndHolds(0));
}

}  // namespace
}  // namespace fapo
