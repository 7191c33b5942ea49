// The folders are floors (docs/architecture.md): a file includes project
// headers from its own component or from the floors below, never from a
// floor above and never from a sibling component of its own floor; the
// programs in apps/ are included by nothing but apps/. Test helpers
// (tests/support) may be included by tests and benchmarks anywhere.
//
// Reads every .h/.cc under the source tree (FAPO_SOURCE_DIR) and checks
// each `#include "component/..."` line against the table below. A new
// top-level folder must be placed in it: the test fails naming the folder.
#include <dirent.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"

namespace fapo {
namespace {

// The floor of each top-level folder (and of "fapo/", the generated protos).
const std::map<std::string, int>& Floors() {
  static const auto* floors = new std::map<std::string, int>{
      {"fapo", 0},         {"proto", 0},          {"services", 1},
      {"algorithm", 2},    {"tasks", 2},          {"engine", 2},
      {"genrm_server", 3}, {"rollout_worker", 3}, {"scheduler", 3},
      {"trainer", 3},      {"apps", 4},           {"tests", 5},
  };
  return *floors;
}

// Folders with sources that are not part of the floors.
bool Skipped(const std::string& name) {
  return name.empty() || name[0] == '.' || name == "build" ||
         absl::StartsWith(name, "build-") || name == "cmake" ||
         name == "configs" || name == "deploy" || name == "docs" ||
         name == "scripts";
}

bool IsSource(const std::string& name) {
  return absl::EndsWith(name, ".h") || absl::EndsWith(name, ".cc");
}

// Test code (tests, benchmarks, test utilities, fakes, harnesses): may
// include tests/support from any floor.
bool IsTestCode(const std::string& path) {
  const std::string name = path.substr(path.rfind('/') + 1);
  return absl::StartsWith(path, "tests/") ||
         absl::EndsWith(name, "_benchmark.cc") ||
         absl::StrContains(name, "_test") || absl::StrContains(name, "test_") ||
         absl::StrContains(name, "testing") ||
         absl::StartsWith(name, "fake_") ||
         absl::StartsWith(name, "service_harness");
}

void ListSources(const std::string& root, const std::string& relative,
                 std::vector<std::string>* out) {
  DIR* dir = opendir((root + "/" + relative).c_str());
  if (dir == nullptr) return;
  while (dirent* entry = readdir(dir)) {
    const std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    const std::string path = relative.empty() ? name : relative + "/" + name;
    struct stat info;
    if (stat((root + "/" + path).c_str(), &info) != 0) continue;
    if (S_ISDIR(info.st_mode)) {
      if (relative.empty() && Skipped(name)) continue;
      if (name == "testdata") continue;
      ListSources(root, path, out);
    } else if (IsSource(name) && !relative.empty()) {
      out->push_back(path);
    }
  }
  closedir(dir);
}

std::string TopFolder(const std::string& path) {
  return path.substr(0, path.find('/'));
}

TEST(IncludeFloorsTest, NoIncludePointsUpOrSideways) {
  const char* source_dir = std::getenv("FAPO_SOURCE_DIR");
  ASSERT_NE(source_dir, nullptr) << "CTest sets FAPO_SOURCE_DIR";
  std::vector<std::string> sources;
  ListSources(source_dir, "", &sources);
  ASSERT_GT(sources.size(), 200u)
      << "found too few sources under " << source_dir;
  std::vector<std::string> problems;
  for (const std::string& path : sources) {
    const std::string component = TopFolder(path);
    auto floor = Floors().find(component);
    if (floor == Floors().end()) {
      problems.push_back(absl::StrCat(
          path, ": folder '", component,
          "' has no floor (add it to Floors() and docs/architecture.md)"));
      continue;
    }
    std::ifstream in(std::string(source_dir) + "/" + path);
    std::string line;
    int number = 0;
    while (std::getline(in, line)) {
      ++number;
      if (!absl::StartsWith(line, "#include \"")) continue;
      const std::string target = line.substr(10, line.find('"', 10) - 10);
      if (target.find('/') == std::string::npos) continue;
      const std::string included = TopFolder(target);
      auto target_floor = Floors().find(included);
      if (target_floor == Floors().end()) continue;  // a library's header
      if (included == component) continue;
      const std::string where = absl::StrCat(path, ":", number, ": ");
      if (included == "tests") {
        if (!IsTestCode(path) || !absl::StartsWith(target, "tests/support/")) {
          problems.push_back(
              absl::StrCat(where, "includes ", target,
                           " (only tests may, and only tests/support)"));
        }
        continue;
      }
      if (target_floor->second > floor->second) {
        problems.push_back(absl::StrCat(
            where, component, " (floor ", floor->second, ") includes ", target,
            " from a floor above (", target_floor->second, ")"));
      } else if (target_floor->second == floor->second && floor->second > 0) {
        problems.push_back(absl::StrCat(where, component, " includes ", target,
                                        " from its sibling '", included,
                                        "' on the same floor"));
      }
    }
  }
  EXPECT_TRUE(problems.empty()) << absl::StrJoin(problems, "\n");
}

}  // namespace
}  // namespace fapo
