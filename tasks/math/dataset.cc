#include "tasks/math/dataset.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "services/files/files.h"
#include "services/status/status_macros.h"

namespace fapo::tasks::math {
namespace {

using Json = nlohmann::json;

// Enough to see the pattern of a broken file without flooding the log.
constexpr int kMaxListedBadLines = 20;

struct FieldPath {
  std::string dotted;
  std::vector<std::string> keys;
};

absl::StatusOr<FieldPath> ParseFieldPath(absl::string_view option_name,
                                         absl::string_view dotted) {
  FieldPath path{std::string(dotted), absl::StrSplit(dotted, '.')};
  for (const std::string& key : path.keys) {
    if (key.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("math data: ", option_name, " \"", dotted,
                       "\" is not a dotted field path"));
    }
  }
  return path;
}

std::string TypeName(const Json& value) {
  if (value.is_number_integer()) return "integer";
  if (value.is_number_float()) return "float";
  return value.type_name();  // null, boolean, string, array, object
}

std::string Quoted(absl::string_view field) {
  return absl::StrCat("\"", field, "\"");
}

// Walks `path` from `record`. Returns the value, or nullptr when absent (a
// missing key, or, with `null_is_absent`, a null on the way). Sets *error
// when a step that must be an object is not one.
const Json* Lookup(const Json& record, const std::vector<std::string>& keys,
                   bool null_is_absent, std::string* error) {
  const Json* value = &record;
  std::string walked;
  for (const std::string& key : keys) {
    if (!value->is_object()) {
      if (null_is_absent && value->is_null()) return nullptr;
      *error = absl::StrCat("field ", Quoted(walked),
                            " must be an object, got ", TypeName(*value));
      return nullptr;
    }
    const auto it = value->find(key);
    if (it == value->end()) return nullptr;
    value = &*it;
    absl::StrAppend(&walked, walked.empty() ? "" : ".", key);
  }
  if (null_is_absent && value->is_null()) return nullptr;
  return value;
}

bool IsBlank(absl::string_view text) {
  return absl::StripAsciiWhitespace(text).empty();
}

// The helpers below return what is wrong with the line, "" when nothing is.

// The value at a required path, or nullptr with *error set.
const Json* RequiredField(const Json& record, const FieldPath& path,
                          std::string* error) {
  const Json* value =
      Lookup(record, path.keys, /*null_is_absent=*/false, error);
  if (value == nullptr && error->empty()) {
    *error = absl::StrCat("missing field ", Quoted(path.dotted));
  }
  return value;
}

// The prompt text, from a string or from the last "user" message of a chat
// list.
std::string ReadPrompt(const Json& value, const FieldPath& path,
                       std::string* prompt) {
  if (value.is_string()) {
    *prompt = value.get<std::string>();
    if (IsBlank(*prompt)) {
      return absl::StrCat("field ", Quoted(path.dotted), " is empty");
    }
    return "";
  }
  if (!value.is_array()) {
    return absl::StrCat("field ", Quoted(path.dotted),
                        " must be a string or a list of chat messages, got ",
                        TypeName(value));
  }
  const Json* last_user = nullptr;
  size_t last_user_index = 0;
  for (size_t i = 0; i < value.size(); ++i) {
    const Json& message = value[i];
    const auto role =
        message.is_object() ? message.find("role") : message.end();
    if (!message.is_object() || role == message.end() || !role->is_string()) {
      return absl::StrCat("field ",
                          Quoted(absl::StrCat(path.dotted, "[", i, "]")),
                          " must be an object with a string \"role\"");
    }
    if (role->get_ref<const std::string&>() == "user") {
      last_user = &message;
      last_user_index = i;
    }
  }
  if (last_user == nullptr) {
    return absl::StrCat("field ", Quoted(path.dotted),
                        " has no message with role \"user\"");
  }
  const std::string content_field =
      absl::StrCat(path.dotted, "[", last_user_index, "].content");
  const auto content = last_user->find("content");
  if (content == last_user->end()) {
    return absl::StrCat("missing field ", Quoted(content_field));
  }
  if (!content->is_string()) {
    return absl::StrCat("field ", Quoted(content_field),
                        " must be a string, got ", TypeName(*content));
  }
  *prompt = content->get<std::string>();
  if (IsBlank(*prompt)) {
    return absl::StrCat("field ", Quoted(content_field), " is empty");
  }
  return "";
}

std::string ReadAnswer(const Json& value, const FieldPath& path,
                       std::string* answer) {
  if (value.is_string()) {
    *answer = value.get<std::string>();
  } else if (value.is_number()) {
    // JSON text of the number as nlohmann prints it: integers exactly,
    // floats as the shortest text that reads back the same double.
    *answer = value.dump();
  } else {
    return absl::StrCat("field ", Quoted(path.dotted),
                        " must be a string or a number, got ", TypeName(value));
  }
  if (IsBlank(*answer)) {
    return absl::StrCat("field ", Quoted(path.dotted), " is empty");
  }
  return "";
}

// "id", else "extra_info.index", else "<basename>:<line>".
std::string ReadId(const Json& record, absl::string_view basename,
                   int line_number, std::string* id) {
  static const std::vector<std::string> kIdPaths[] = {{"id"},
                                                      {"extra_info", "index"}};
  for (const std::vector<std::string>& keys : kIdPaths) {
    std::string error;
    const Json* value = Lookup(record, keys, /*null_is_absent=*/true, &error);
    if (!error.empty()) return error;
    if (value == nullptr) continue;
    const std::string dotted = absl::StrJoin(keys, ".");
    if (value->is_string()) {
      *id = value->get<std::string>();
      if (IsBlank(*id)) {
        return absl::StrCat("field ", Quoted(dotted), " is empty");
      }
    } else if (value->is_number_integer()) {
      *id = value->dump();
    } else {
      return absl::StrCat("field ", Quoted(dotted),
                          " must be a string or an integer, got ",
                          TypeName(*value));
    }
    return "";
  }
  *id = absl::StrCat(basename, ":", line_number);
  return "";
}

// The problem on one line, or what is wrong with it in *error (without the
// "line N: " prefix the caller adds).
std::optional<MathProblem> ParseLine(absl::string_view line, int line_number,
                                     absl::string_view basename,
                                     const FieldPath& prompt_path,
                                     const FieldPath& answer_path,
                                     std::string* error) {
  // nlohmann::json throws; nothing escapes this function.
  Json record;
  try {
    record = Json::parse(line.begin(), line.end());
  } catch (const Json::parse_error& e) {
    *error = absl::StrCat("not valid JSON (error at column ", e.byte, ")");
    return std::nullopt;
  } catch (const Json::exception& e) {
    *error = absl::StrCat("not valid JSON (", e.what(), ")");
    return std::nullopt;
  }
  if (!record.is_object()) {
    *error = absl::StrCat("not a JSON object (got ", TypeName(record), ")");
    return std::nullopt;
  }
  try {
    MathProblem problem;
    const Json* prompt = RequiredField(record, prompt_path, error);
    if (prompt == nullptr) return std::nullopt;
    *error = ReadPrompt(*prompt, prompt_path, &problem.prompt);
    if (!error->empty()) return std::nullopt;
    const Json* answer = RequiredField(record, answer_path, error);
    if (answer == nullptr) return std::nullopt;
    *error = ReadAnswer(*answer, answer_path, &problem.answer);
    if (!error->empty()) return std::nullopt;
    *error = ReadId(record, basename, line_number, &problem.id);
    if (!error->empty()) return std::nullopt;
    return problem;
  } catch (const Json::exception& e) {
    // Not expected: every access above checks the type first.
    *error = absl::StrCat("unreadable record (", e.what(), ")");
    return std::nullopt;
  }
}

// files::ReadFile (NOTE [no std::filesystem]), its error naming the file
// as the math data.
absl::StatusOr<std::string> ReadFile(const std::string& path) {
  absl::StatusOr<std::string> contents = files::ReadFile(path);
  if (!contents.ok()) {
    return absl::Status(
        contents.status().code(),
        absl::StrCat("math data file ", contents.status().message()));
  }
  return contents;
}

}  // namespace

bool operator==(const MathProblem& a, const MathProblem& b) {
  return a.id == b.id && a.prompt == b.prompt && a.answer == b.answer;
}

absl::StatusOr<std::vector<MathProblem>> ParseMathProblems(
    absl::string_view jsonl, absl::string_view source_name,
    const MathDataOptions& options) {
  ASSIGN_OR_RETURN(const FieldPath prompt_path,
                   ParseFieldPath("prompt_field", options.prompt_field));
  ASSIGN_OR_RETURN(const FieldPath answer_path,
                   ParseFieldPath("answer_field", options.answer_field));
  const size_t slash = source_name.rfind('/');
  const absl::string_view basename = slash == absl::string_view::npos
                                         ? source_name
                                         : source_name.substr(slash + 1);
  const bool empty_file = jsonl.empty();
  absl::ConsumePrefix(&jsonl, "\xEF\xBB\xBF");  // UTF-8 byte-order mark

  std::vector<MathProblem> problems;
  std::vector<std::string> listed_errors;
  int bad_lines = 0;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(jsonl, '\n')) {
    ++line_number;
    absl::ConsumeSuffix(&line, "\r");
    if (IsBlank(line)) continue;
    std::string error;
    std::optional<MathProblem> problem = ParseLine(
        line, line_number, basename, prompt_path, answer_path, &error);
    if (problem.has_value()) {
      problems.push_back(*std::move(problem));
      continue;
    }
    ++bad_lines;
    if (bad_lines <= kMaxListedBadLines) {
      listed_errors.push_back(absl::StrCat("line ", line_number, ": ", error));
    }
  }
  if (bad_lines > 0) {
    std::string message =
        absl::StrCat(source_name, ": ", bad_lines,
                     bad_lines == 1 ? " bad line: " : " bad lines: ",
                     absl::StrJoin(listed_errors, "; "));
    if (bad_lines > kMaxListedBadLines) {
      absl::StrAppend(&message, "; and ", bad_lines - kMaxListedBadLines,
                      " more");
    }
    return absl::InvalidArgumentError(message);
  }
  if (problems.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source_name, ": no records (",
                     empty_file ? "empty file" : "only blank lines", ")"));
  }
  return problems;
}

absl::StatusOr<std::vector<MathProblem>> LoadMathProblems(
    const MathDataOptions& options) {
  if (options.path.empty()) {
    return absl::InvalidArgumentError("math data: path is empty");
  }
  ASSIGN_OR_RETURN(const std::string contents, ReadFile(options.path));
  return ParseMathProblems(contents, options.path, options);
}

absl::StatusOr<std::vector<MathProblem>> LoadMathEvalProblems(
    const MathDataOptions& options) {
  if (options.eval_path.empty()) return std::vector<MathProblem>();
  ASSIGN_OR_RETURN(const std::string contents, ReadFile(options.eval_path));
  return ParseMathProblems(contents, options.eval_path, options);
}

}  // namespace fapo::tasks::math
