// deploy/grafana/fapo-job.json, the dashboard users import: it parses, its
// panels are laid out and bound to the data source variable, and every
// PromQL expression in it is valid (Debian's promtool checks them as
// recording rules). That each metric it reads is exported by a service is
// checked against the live services in tests/loopback/end_to_end_test.cc.
#include <fstream>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/status/status_matchers.h"
#include "tests/support/subprocess.h"

namespace fapo {
namespace {

using ::fapo::testing::IsOk;
using ::testing::HasSubstr;

nlohmann::json LoadDashboard() {
  std::ifstream file(testing::SourcePath("deploy/grafana/fapo-job.json"));
  return nlohmann::json::parse(file, nullptr, /*allow_exceptions=*/false);
}

TEST(GrafanaDashboardTest, PanelsAreLaidOutAndBoundToTheDataSource) {
  const nlohmann::json dashboard = LoadDashboard();
  ASSERT_FALSE(dashboard.is_discarded()) << "fapo-job.json is not JSON";
  EXPECT_EQ(dashboard.value("uid", ""), "fapo-job");
  std::set<std::string> variables;
  for (const nlohmann::json& variable : dashboard["templating"]["list"]) {
    variables.insert(variable.value("name", ""));
  }
  EXPECT_EQ(variables, (std::set<std::string>{"datasource", "fapo_job"}));
  std::set<std::string> titles;
  int queries = 0;
  for (const nlohmann::json& panel : dashboard["panels"]) {
    const std::string title = panel.value("title", "");
    EXPECT_TRUE(titles.insert(title).second) << "two panels named " << title;
    const nlohmann::json& grid = panel["gridPos"];
    EXPECT_LE(grid.value("x", 99) + grid.value("w", 99), 24) << title;
    if (panel.value("type", "") == "row") continue;
    EXPECT_EQ(panel["datasource"].value("uid", ""), "${datasource}") << title;
    ASSERT_FALSE(panel["targets"].empty()) << title;
    for (const nlohmann::json& target : panel["targets"]) {
      // One job at a time: every series is selected by the variable.
      EXPECT_THAT(target.value("expr", ""),
                  HasSubstr("fapo_job=\"$fapo_job\""))
          << title;
      ++queries;
    }
  }
  EXPECT_GE(queries, 20);
}

TEST(GrafanaDashboardTest, EveryExpressionIsValidPromQL) {
  const nlohmann::json dashboard = LoadDashboard();
  ASSERT_FALSE(dashboard.is_discarded());
  testing::TempDir dir("fapo-dashboard-");
  ASSERT_THAT(dir.status(), IsOk());
  // Each expression as a recording rule; a JSON string is a valid YAML
  // scalar. Grafana fills $fapo_job in before Prometheus sees it.
  std::string rules = "groups:\n- name: fapo_dashboard\n  rules:\n";
  int index = 0;
  for (const nlohmann::json& panel : dashboard["panels"]) {
    if (!panel.contains("targets")) continue;
    for (const nlohmann::json& target : panel["targets"]) {
      const std::string expr = absl::StrReplaceAll(
          target.value("expr", ""), {{"$fapo_job", "quickstart"}});
      absl::StrAppend(&rules, "  - record: fapo_dashboard:expr_", index++,
                      "\n    expr: ", nlohmann::json(expr).dump(), "\n");
    }
  }
  const std::string path = dir.path() + "/rules.yml";
  std::ofstream(path) << rules;
  absl::StatusOr<testing::CommandResult> checked = testing::RunCommand(
      {"promtool", "check", "rules", path}, absl::Seconds(60));
  ASSERT_THAT(checked, IsOk()) << "promtool (Debian's prometheus package, "
                                  "from scripts/install-deps.sh) is missing";
  EXPECT_EQ(checked->exit_code, 0)
      << checked->stdout_text << checked->stderr_text << rules;
  EXPECT_THAT(checked->stdout_text,
              HasSubstr(absl::StrCat("SUCCESS: ", index, " rules found")));
}

}  // namespace
}  // namespace fapo
