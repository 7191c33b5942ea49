// Test-only helpers for services/config tests.
#ifndef FAPO_SERVICES_CONFIG_TEST_UTIL_H_
#define FAPO_SERVICES_CONFIG_TEST_UTIL_H_

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_split.h"

namespace fapo::config::testing {

// The repository root (CTest sets FAPO_SOURCE_DIR), or "." when unset.
inline std::string SourceDir() {
  const char* dir = std::getenv("FAPO_SOURCE_DIR");
  return dir != nullptr ? dir : ".";
}

// Path of services/config/testdata/<name>, relative to the repository root.
inline std::string Testdata(const std::string& name) {
  return "services/config/testdata/" + name;
}

// The problem lines of an error status.
inline std::vector<std::string> ErrorLines(const absl::Status& status) {
  return absl::StrSplit(status.message(), '\n');
}

}  // namespace fapo::config::testing

#endif  // FAPO_SERVICES_CONFIG_TEST_UTIL_H_
