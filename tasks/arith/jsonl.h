// JSONL plumbing for the corpus and bench files (internal to tasks/arith).
// nlohmann::json is used without exceptions: parse with allow_exceptions
// false, check types before reading, dump with invalid UTF-8 replaced.
#ifndef FAPO_TASKS_ARITH_JSONL_H_
#define FAPO_TASKS_ARITH_JSONL_H_

#include <fstream>
#include <functional>
#include <initializer_list>
#include <istream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "nlohmann/json.hpp"

namespace fapo::tasks::arith::internal {

// Keeps keys in insertion order, so files read in the documented order.
using Json = nlohmann::ordered_json;

// One line of JSON, no newline.
std::string DumpJsonLine(const Json& json);

// Calls `visit` on each line of `in`, parsed as a JSON object with exactly
// the keys `keys`. Errors (InvalidArgument) and those `visit` returns are
// prefixed with "<what> line <n>: ".
absl::Status ForEachJsonLine(
    std::istream* in, absl::string_view what,
    std::initializer_list<absl::string_view> keys,
    const std::function<absl::Status(const Json& object)>& visit);

// The value of `key` in `object` as a string / an integer in [min, max].
absl::StatusOr<std::string> GetString(const Json& object,
                                      absl::string_view key);
absl::StatusOr<int64_t> GetInt(const Json& object, absl::string_view key,
                               int64_t min, int64_t max);

// Writes `text` to `path` (truncating). Errors name the path.
absl::Status WriteTextFile(const std::string& path, const std::string& text);

// Writes `records` with `write` (a stream writer) to the file at `path`.
template <typename Record>
absl::Status WriteJsonlFile(const std::string& path,
                            absl::Span<const Record> records,
                            absl::Status (*write)(absl::Span<const Record>,
                                                  std::ostream*)) {
  std::ostringstream text;
  if (absl::Status status = write(records, &text); !status.ok()) {
    return status;
  }
  return WriteTextFile(path, text.str());
}

// Reads the file at `path` with `read` (a stream reader); errors are
// prefixed with the path, and a missing file is NotFound.
template <typename Record>
absl::StatusOr<std::vector<Record>> ReadJsonlFile(
    const std::string& path,
    absl::StatusOr<std::vector<Record>> (*read)(std::istream*)) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  absl::StatusOr<std::vector<Record>> records = read(&in);
  if (!records.ok()) {
    return absl::Status(records.status().code(),
                        absl::StrCat(path, ": ", records.status().message()));
  }
  return records;
}

}  // namespace fapo::tasks::arith::internal

#endif  // FAPO_TASKS_ARITH_JSONL_H_
