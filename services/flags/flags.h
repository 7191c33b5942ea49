// services/flags: FlagSet, the small declarative command-line parser of
// every fapo program and `fapo` subcommand. Each declares its flags once;
// --help text is generated from them.
//
//   FlagSet flags("fapo validate", "Checks a job spec and prints it.");
//   std::string path;
//   std::vector<std::string> overrides;
//   flags.Positional("JOB.yaml", &path, "the job spec");
//   flags.Repeated("set", &overrides, "KEY=VALUE", "override a key");
//   absl::Status status = flags.Parse(args);
//   if (flags.help_requested()) { std::cout << flags.Usage(); return 0; }
//
// Accepted spellings: --name value, --name=value; booleans --name,
// --name=true|false; "--" ends the flags. Unknown flags, missing values,
// malformed numbers and missing or extra positionals are errors that name
// the flag.
#ifndef FAPO_SERVICES_FLAGS_FLAGS_H_
#define FAPO_SERVICES_FLAGS_FLAGS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace fapo::flags {

class FlagSet {
 public:
  FlagSet(std::string program, std::string summary);
  FlagSet(const FlagSet&) = delete;
  FlagSet& operator=(const FlagSet&) = delete;

  // Each registers a flag whose current value is its default. Pointers are
  // not owned and must outlive Parse().
  void String(absl::string_view name, std::string* value,
              absl::string_view value_name, absl::string_view help);
  void Int(absl::string_view name, int64_t* value, absl::string_view help);
  void Bool(absl::string_view name, bool* value, absl::string_view help);
  // May be given many times; values accumulate in order.
  void Repeated(absl::string_view name, std::vector<std::string>* values,
                absl::string_view value_name, absl::string_view help);
  // Positional arguments, in declaration order.
  void Positional(absl::string_view name, std::string* value,
                  absl::string_view help, bool required = true);

  // Parses args (without the program name). --help / -h stop parsing and
  // set help_requested(); the caller prints Usage() and exits 0.
  absl::Status Parse(const std::vector<std::string>& args);
  bool help_requested() const { return help_requested_; }

  std::string Usage() const;

 private:
  enum class Kind { kString, kInt, kBool, kRepeated };
  struct Flag {
    std::string name;
    Kind kind;
    void* target;
    std::string value_name;
    std::string help;
    std::string default_text;
  };
  struct PositionalArg {
    std::string name;
    std::string* target;
    std::string help;
    bool required;
  };

  const Flag* Find(absl::string_view name) const;
  absl::Status Assign(const Flag& flag, absl::string_view value) const;

  std::string program_;
  std::string summary_;
  std::vector<Flag> flags_;
  std::vector<PositionalArg> positionals_;
  bool help_requested_ = false;
};

// argv[1..argc) as strings.
std::vector<std::string> ArgsOf(int argc, char** argv);

}  // namespace fapo::flags

#endif  // FAPO_SERVICES_FLAGS_FLAGS_H_
