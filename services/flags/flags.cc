#include "services/flags/flags.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace fapo::flags {
namespace {

// Greedy word wrap to `width` columns, each line prefixed by `indent`.
std::string Wrap(absl::string_view text, size_t width,
                 absl::string_view indent) {
  std::string out;
  std::string line(indent);
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (line.size() > indent.size() && line.size() + 1 + word.size() > width) {
      absl::StrAppend(&out, line, "\n");
      line = std::string(indent);
    }
    if (line.size() > indent.size()) line += ' ';
    absl::StrAppend(&line, word);
  }
  if (line.size() > indent.size()) absl::StrAppend(&out, line, "\n");
  return out;
}

}  // namespace

FlagSet::FlagSet(std::string program, std::string summary)
    : program_(std::move(program)), summary_(std::move(summary)) {}

void FlagSet::String(absl::string_view name, std::string* value,
                     absl::string_view value_name, absl::string_view help) {
  flags_.push_back({std::string(name), Kind::kString, value,
                    std::string(value_name), std::string(help),
                    value->empty() ? "" : absl::StrCat("\"", *value, "\"")});
}

void FlagSet::Int(absl::string_view name, int64_t* value,
                  absl::string_view help) {
  flags_.push_back({std::string(name), Kind::kInt, value, "N",
                    std::string(help), absl::StrCat(*value)});
}

void FlagSet::Bool(absl::string_view name, bool* value,
                   absl::string_view help) {
  flags_.push_back({std::string(name), Kind::kBool, value, "",
                    std::string(help), *value ? "true" : ""});
}

void FlagSet::Repeated(absl::string_view name, std::vector<std::string>* values,
                       absl::string_view value_name, absl::string_view help) {
  flags_.push_back({std::string(name), Kind::kRepeated, values,
                    std::string(value_name), std::string(help), ""});
}

void FlagSet::Positional(absl::string_view name, std::string* value,
                         absl::string_view help, bool required) {
  positionals_.push_back(
      {std::string(name), value, std::string(help), required});
}

const FlagSet::Flag* FlagSet::Find(absl::string_view name) const {
  for (const Flag& flag : flags_) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

absl::Status FlagSet::Assign(const Flag& flag, absl::string_view value) const {
  switch (flag.kind) {
    case Kind::kString:
      *static_cast<std::string*>(flag.target) = std::string(value);
      return absl::OkStatus();
    case Kind::kRepeated:
      static_cast<std::vector<std::string>*>(flag.target)
          ->push_back(std::string(value));
      return absl::OkStatus();
    case Kind::kInt: {
      int64_t parsed;
      if (!absl::SimpleAtoi(value, &parsed)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--", flag.name, ": expected an integer, got '", value, "'"));
      }
      *static_cast<int64_t*>(flag.target) = parsed;
      return absl::OkStatus();
    }
    case Kind::kBool:
      if (value == "true") {
        *static_cast<bool*>(flag.target) = true;
      } else if (value == "false") {
        *static_cast<bool*>(flag.target) = false;
      } else {
        return absl::InvalidArgumentError(absl::StrCat(
            "--", flag.name, ": expected true or false, got '", value, "'"));
      }
      return absl::OkStatus();
  }
  return absl::InternalError("unknown flag kind");
}

absl::Status FlagSet::Parse(const std::vector<std::string>& args) {
  size_t next_positional = 0;
  bool flags_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (!flags_done && (arg == "--help" || arg == "-h")) {
      help_requested_ = true;
      return absl::OkStatus();
    }
    if (!flags_done && arg == "--") {
      flags_done = true;
      continue;
    }
    if (!flags_done && absl::StartsWith(arg, "-") && arg.size() > 1) {
      absl::string_view body =
          absl::string_view(arg).substr(absl::StartsWith(arg, "--") ? 2 : 1);
      size_t equals = body.find('=');
      absl::string_view name = body.substr(0, equals);
      const Flag* flag = Find(name);
      if (flag == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(
            "unknown flag '", arg, "' (see ", program_, " --help)"));
      }
      if (equals != absl::string_view::npos) {
        absl::Status status = Assign(*flag, body.substr(equals + 1));
        if (!status.ok()) return status;
        continue;
      }
      if (flag->kind == Kind::kBool) {
        *static_cast<bool*>(flag->target) = true;
        continue;
      }
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--", flag->name, " needs a value (", flag->value_name, ")"));
      }
      absl::Status status = Assign(*flag, args[++i]);
      if (!status.ok()) return status;
      continue;
    }
    if (next_positional >= positionals_.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unexpected argument '", arg, "' (see ", program_, " --help)"));
    }
    *positionals_[next_positional++].target = arg;
  }
  for (size_t p = next_positional; p < positionals_.size(); ++p) {
    if (positionals_[p].required) {
      return absl::InvalidArgumentError(
          absl::StrCat("missing argument ", positionals_[p].name, " (see ",
                       program_, " --help)"));
    }
  }
  return absl::OkStatus();
}

std::string FlagSet::Usage() const {
  std::string usage = absl::StrCat("Usage: ", program_);
  if (!flags_.empty()) absl::StrAppend(&usage, " [flags]");
  for (const PositionalArg& arg : positionals_) {
    absl::StrAppend(&usage, arg.required ? " " : " [", arg.name,
                    arg.required ? "" : "]");
  }
  absl::StrAppend(&usage, "\n\n", Wrap(summary_, 78, ""));
  if (!positionals_.empty()) {
    absl::StrAppend(&usage, "\nArguments:\n");
    for (const PositionalArg& arg : positionals_) {
      absl::StrAppend(&usage, "  ", arg.name, "\n",
                      Wrap(arg.help, 78, "      "));
    }
  }
  absl::StrAppend(&usage, "\nFlags:\n");
  for (const Flag& flag : flags_) {
    std::string spelling = absl::StrCat("  --", flag.name);
    if (flag.kind != Kind::kBool) {
      absl::StrAppend(&spelling, " ", flag.value_name);
    }
    std::string help = flag.help;
    if (flag.kind == Kind::kRepeated) absl::StrAppend(&help, " (repeatable)");
    if (!flag.default_text.empty()) {
      absl::StrAppend(&help, " (default: ", flag.default_text, ")");
    }
    absl::StrAppend(&usage, spelling, "\n", Wrap(help, 78, "      "));
  }
  absl::StrAppend(&usage, "  --help\n      show this help and exit\n");
  return usage;
}

std::vector<std::string> ArgsOf(int argc, char** argv) {
  return std::vector<std::string>(argv + std::min(argc, 1), argv + argc);
}

}  // namespace fapo::flags
