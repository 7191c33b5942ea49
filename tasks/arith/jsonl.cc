#include "tasks/arith/jsonl.h"

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace fapo::tasks::arith::internal {

std::string DumpJsonLine(const Json& json) {
  // error_handler_t::replace: invalid UTF-8 becomes U+FFFD instead of a
  // type_error exception.
  return json.dump(-1, ' ', /*ensure_ascii=*/false,
                   nlohmann::detail::error_handler_t::replace);
}

absl::Status ForEachJsonLine(
    std::istream* in, absl::string_view what,
    std::initializer_list<absl::string_view> keys,
    const std::function<absl::Status(const Json& object)>& visit) {
  std::string line;
  int line_number = 0;
  while (std::getline(*in, line)) {
    ++line_number;
    auto fail = [&](absl::string_view message) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " line ", line_number, ": ", message));
    };
    const Json object =
        Json::parse(line, /*cb=*/nullptr, /*allow_exceptions=*/false);
    if (object.is_discarded()) return fail("not valid JSON");
    if (!object.is_object()) return fail("not a JSON object");
    for (absl::string_view key : keys) {
      if (!object.contains(std::string(key))) {
        return fail(absl::StrCat("missing key \"", key, "\""));
      }
    }
    for (const auto& item : object.items()) {
      bool known = false;
      for (absl::string_view key : keys) known = known || item.key() == key;
      if (!known) return fail(absl::StrCat("unknown key \"", item.key(), "\""));
    }
    if (absl::Status status = visit(object); !status.ok()) {
      return fail(status.message());
    }
  }
  if (in->bad()) {
    return absl::InternalError(
        absl::StrCat(what, ": read failed after line ", line_number));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> GetString(const Json& object,
                                      absl::string_view key) {
  const Json& value = object.at(std::string(key));
  if (!value.is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", key, "\" must be a string"));
  }
  return value.get<std::string>();
}

absl::StatusOr<int64_t> GetInt(const Json& object, absl::string_view key,
                               int64_t min, int64_t max) {
  const Json& value = object.at(std::string(key));
  int64_t number;
  if (value.is_number_integer() && !value.is_number_unsigned()) {
    number = value.get<int64_t>();
  } else if (value.is_number_unsigned() &&
             value.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX)) {
    number = static_cast<int64_t>(value.get<uint64_t>());
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", key, "\" must be an integer"));
  }
  if (number < min || number > max) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", key, "\" must be in [", min, ", ", max, "], got ", number));
  }
  return number;
}

absl::Status WriteTextFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) {
    return absl::NotFoundError(absl::StrCat(
        "cannot open ", path, " for writing: ", std::strerror(errno)));
  }
  out << text;
  out.close();
  if (!out) {
    return absl::InternalError(absl::StrCat("writing ", path, " failed"));
  }
  return absl::OkStatus();
}

}  // namespace fapo::tasks::arith::internal
