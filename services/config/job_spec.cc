#include "services/config/job_spec.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <tuple>
#include <utility>
#include <variant>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/config/scalars.h"
#include "services/config/schema.h"
#include "services/config/spec_reader.h"
#include "services/config/validation.h"
#include "services/config/yaml_document.h"
#include "yaml-cpp/yaml.h"

namespace fapo::config {

// ---------------------------------------------------------------------------
// Enum spellings.

namespace {
constexpr EnumSpelling<Task> kTasks[] = {{Task::kArith, "arith"},
                                         {Task::kMath, "math"}};
constexpr EnumSpelling<Dtype> kDtypes[] = {{Dtype::kFloat32, "float32"},
                                           {Dtype::kBfloat16, "bfloat16"},
                                           {Dtype::kFloat16, "float16"}};
constexpr EnumSpelling<Device> kDevices[] = {{Device::kCpu, "cpu"},
                                             {Device::kCuda, "cuda"}};
constexpr EnumSpelling<ChatFormat> kChatFormats[] = {
    {ChatFormat::kRaw, "raw"}, {ChatFormat::kChatml, "chatml"}};
constexpr EnumSpelling<GenrmBackend> kGenrmBackends[] = {
    {GenrmBackend::kRule, "rule"},
    {GenrmBackend::kModel, "model"},
    {GenrmBackend::kOpenai, "openai"},
    {GenrmBackend::kLatency, "latency"}};
constexpr EnumSpelling<LatencyDistribution> kLatencyDistributions[] = {
    {LatencyDistribution::kConstant, "constant"},
    {LatencyDistribution::kUniform, "uniform"},
    {LatencyDistribution::kNormal, "normal"},
    {LatencyDistribution::kLognormal, "lognormal"}};
constexpr EnumSpelling<RewardKind> kRewardKinds[] = {
    {RewardKind::kRlvr, "rlvr"}, {RewardKind::kFapo, "fapo"}};
constexpr EnumSpelling<AdvantageEstimator> kAdvantageEstimators[] = {
    {AdvantageEstimator::kGrpo, "grpo"},
    {AdvantageEstimator::kDrGrpo, "dr_grpo"}};
constexpr EnumSpelling<LossAggregation> kLossAggregations[] = {
    {LossAggregation::kTokenMean, "token_mean"},
    {LossAggregation::kSequenceMean, "sequence_mean"}};
constexpr EnumSpelling<CollectiveBackend> kCollectiveBackends[] = {
    {CollectiveBackend::kGloo, "gloo"}, {CollectiveBackend::kNccl, "nccl"}};
constexpr EnumSpelling<LrSchedule> kLrSchedules[] = {
    {LrSchedule::kConstant, "constant"}, {LrSchedule::kCosine, "cosine"}};
constexpr EnumSpelling<Backpressure> kBackpressures[] = {
    {Backpressure::kWait, "wait"}, {Backpressure::kReject, "reject"}};
}  // namespace

absl::Span<const EnumSpelling<Task>> EnumSpellings(Task) { return kTasks; }
absl::Span<const EnumSpelling<Dtype>> EnumSpellings(Dtype) { return kDtypes; }
absl::Span<const EnumSpelling<Device>> EnumSpellings(Device) {
  return kDevices;
}
absl::Span<const EnumSpelling<ChatFormat>> EnumSpellings(ChatFormat) {
  return kChatFormats;
}
absl::Span<const EnumSpelling<GenrmBackend>> EnumSpellings(GenrmBackend) {
  return kGenrmBackends;
}
absl::Span<const EnumSpelling<LatencyDistribution>> EnumSpellings(
    LatencyDistribution) {
  return kLatencyDistributions;
}
absl::Span<const EnumSpelling<RewardKind>> EnumSpellings(RewardKind) {
  return kRewardKinds;
}
absl::Span<const EnumSpelling<AdvantageEstimator>> EnumSpellings(
    AdvantageEstimator) {
  return kAdvantageEstimators;
}
absl::Span<const EnumSpelling<LossAggregation>> EnumSpellings(LossAggregation) {
  return kLossAggregations;
}
absl::Span<const EnumSpelling<CollectiveBackend>> EnumSpellings(
    CollectiveBackend) {
  return kCollectiveBackends;
}
absl::Span<const EnumSpelling<LrSchedule>> EnumSpellings(LrSchedule) {
  return kLrSchedules;
}
absl::Span<const EnumSpelling<Backpressure>> EnumSpellings(Backpressure) {
  return kBackpressures;
}

// ---------------------------------------------------------------------------
// Equality: two structs are equal when the schema walk yields equal values.

namespace {

using internal::DoubleRule;
using internal::EnumRule;
using internal::IntRule;
using internal::Problem;
using internal::StringRule;

using FlatValue = std::variant<int64_t, double, bool, std::string>;

class Flattener {
 public:
  template <typename Fn>
  void Section(absl::string_view, Fn&& visit_children) {
    visit_children();
  }
  template <typename T>
  void Int(absl::string_view, const T& value, const IntRule&) {
    values.emplace_back(std::in_place_type<int64_t>, value);
  }
  void Double(absl::string_view, const double& value, const DoubleRule&) {
    values.emplace_back(std::in_place_type<double>, value);
  }
  void Bool(absl::string_view, const bool& value) {
    values.emplace_back(std::in_place_type<bool>, value);
  }
  void String(absl::string_view, const std::string& value, const StringRule&) {
    values.emplace_back(std::in_place_type<std::string>, value);
  }
  template <typename E>
  void Enum(absl::string_view, const E& value, const EnumRule&) {
    values.emplace_back(std::in_place_type<int64_t>,
                        static_cast<int64_t>(value));
  }

  std::vector<FlatValue> values;
};

template <typename T, typename VisitFn>
bool SameFields(const T& a, const T& b, VisitFn visit) {
  Flattener flat_a;
  Flattener flat_b;
  visit(a, flat_a);
  visit(b, flat_b);
  return flat_a.values == flat_b.values;
}

}  // namespace

#define FAPO_CONFIG_DEFINE_EQUALS(Type, VisitFunction)                      \
  bool operator==(const Type& a, const Type& b) {                           \
    return SameFields(a, b, [](const Type& options, Flattener& flattener) { \
      internal::VisitFunction(options, flattener);                          \
    });                                                                     \
  }
FAPO_CONFIG_DEFINE_EQUALS(JobOptions, VisitJob)
FAPO_CONFIG_DEFINE_EQUALS(ArithDataOptions, VisitArithData)
FAPO_CONFIG_DEFINE_EQUALS(MathDataOptions, VisitMathData)
FAPO_CONFIG_DEFINE_EQUALS(DataOptions, VisitData)
FAPO_CONFIG_DEFINE_EQUALS(PolicyOptions, VisitPolicy)
FAPO_CONFIG_DEFINE_EQUALS(RolloutOptions, VisitRollout)
FAPO_CONFIG_DEFINE_EQUALS(GenrmModelOptions, VisitGenrmModel)
FAPO_CONFIG_DEFINE_EQUALS(GenrmOpenaiOptions, VisitGenrmOpenai)
FAPO_CONFIG_DEFINE_EQUALS(GenrmLatencyOptions, VisitGenrmLatency)
FAPO_CONFIG_DEFINE_EQUALS(GenrmOptions, VisitGenrm)
FAPO_CONFIG_DEFINE_EQUALS(OverlongPenaltyOptions, VisitOverlongPenalty)
FAPO_CONFIG_DEFINE_EQUALS(AlgorithmOptions, VisitAlgorithm)
FAPO_CONFIG_DEFINE_EQUALS(TrainerOptions, VisitTrainer)
FAPO_CONFIG_DEFINE_EQUALS(SchedulerOptions, VisitScheduler)
FAPO_CONFIG_DEFINE_EQUALS(MetricsOptions, VisitMetrics)
FAPO_CONFIG_DEFINE_EQUALS(TlsOptions, VisitTls)
FAPO_CONFIG_DEFINE_EQUALS(SecurityOptions, VisitSecurity)
FAPO_CONFIG_DEFINE_EQUALS(JobSpec, VisitJobSpec)
#undef FAPO_CONFIG_DEFINE_EQUALS

// ---------------------------------------------------------------------------
// Emission.

namespace {

class YamlWriter {
 public:
  explicit YamlWriter(YAML::Emitter* out) : out_(*out) {}

  template <typename Fn>
  void Section(absl::string_view key, Fn&& visit_children) {
    out_ << YAML::Key << std::string(key) << YAML::Value << YAML::BeginMap;
    visit_children();
    out_ << YAML::EndMap;
  }
  template <typename T>
  void Int(absl::string_view key, const T& value, const IntRule&) {
    Plain(key, absl::StrCat(value));
  }
  void Double(absl::string_view key, const double& value, const DoubleRule&) {
    Plain(key, internal::FormatYamlFloat(value));
  }
  void Bool(absl::string_view key, const bool& value) {
    Plain(key, value ? "true" : "false");
  }
  void String(absl::string_view key, const std::string& value,
              const StringRule&) {
    // Always quoted, so that no YAML reader takes "123" or "true" for
    // anything but a string.
    out_ << YAML::Key << std::string(key) << YAML::Value << YAML::DoubleQuoted
         << value;
  }
  template <typename E>
  void Enum(absl::string_view key, const E& value, const EnumRule&) {
    Plain(key, std::string(EnumName(value)));
  }

 private:
  void Plain(absl::string_view key, const std::string& text) {
    out_ << YAML::Key << std::string(key) << YAML::Value << text;
  }

  YAML::Emitter& out_;
};

}  // namespace

std::string JobSpecToYaml(const JobSpec& spec) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  YamlWriter writer(&out);
  internal::VisitJobSpec(spec, writer);
  out << YAML::EndMap;
  return absl::StrCat(
      "# fapo job spec: the effective config, every key with defaults filled "
      "in.\n",
      out.c_str(), "\n");
}

std::ostream& operator<<(std::ostream& os, const JobSpec& spec) {
  return os << JobSpecToYaml(spec);
}

// ---------------------------------------------------------------------------
// Validation and parsing.

namespace {

// Sorts problems into reading order: whole-file problems, then by line and
// column, then --set overrides in the order given (`override_order` maps each
// override's source name to its position), then unlocated ones.
absl::Status ProblemsToStatus(
    std::vector<Problem> problems,
    const std::map<std::string, int>& override_order = {}) {
  auto order = [&](const Problem& problem) {
    const internal::Location& location = problem.location;
    if (location.line > 0) {
      return std::make_tuple(1, location.line, location.column);
    }
    if (absl::StartsWith(location.source, "--set ")) {
      auto it = override_order.find(location.source);
      return std::make_tuple(2, it == override_order.end() ? 0 : it->second, 0);
    }
    return std::make_tuple(location.empty() ? 3 : 0, 0, 0);
  };
  std::stable_sort(
      problems.begin(), problems.end(),
      [&](const Problem& a, const Problem& b) { return order(a) < order(b); });
  std::vector<std::string> lines;
  lines.reserve(problems.size());
  for (const Problem& problem : problems) lines.push_back(problem.ToString());
  return absl::InvalidArgumentError(absl::StrJoin(lines, "\n"));
}

// Whether `path` is `failed` or lies under it.
bool IsAtOrUnder(absl::string_view path, absl::string_view failed) {
  return path == failed ||
         (absl::StartsWith(path, failed) && path.size() > failed.size() &&
          path[failed.size()] == '.');
}

// A rule about keys whose values failed to parse judges defaults the user
// never wrote: drop it; the parse problem already names the key.
bool InvolvesFailedKey(const internal::Violation& violation,
                       const std::set<std::string>& failed_paths) {
  for (const std::string& failed : failed_paths) {
    if (IsAtOrUnder(violation.path, failed)) return true;
    for (const std::string& other : violation.involves) {
      if (IsAtOrUnder(other, failed)) return true;
    }
  }
  return false;
}

// Where the document sets `path`, else where it sets the nearest ancestor.
internal::Location Locate(
    const std::map<std::string, internal::Location>& locations,
    std::string path) {
  while (true) {
    auto it = locations.find(path);
    if (it != locations.end()) return it->second;
    if (path.empty()) return internal::Location{};
    size_t dot = path.rfind('.');
    path.resize(dot == std::string::npos ? 0 : dot);
  }
}

constexpr std::uintmax_t kMaxJobSpecBytes = 16 << 20;

}  // namespace

void ResolveDerivedDefaults(JobSpec* spec) {
  if (spec->job.output_dir.empty() && !spec->job.name.empty()) {
    spec->job.output_dir = absl::StrCat("runs/", spec->job.name);
  }
  PolicyOptions& policy = spec->policy;
  if (policy.tokenizer_path.empty() && !policy.model_dir.empty()) {
    absl::string_view dir = policy.model_dir;
    if (dir.size() > 1 && absl::EndsWith(dir, "/")) dir.remove_suffix(1);
    policy.tokenizer_path =
        absl::StrCat(dir, dir == "/" ? "" : "/", "tokenizer.json");
  }
}

absl::Status ValidateJobSpec(const JobSpec& spec) {
  std::vector<Problem> problems;
  for (internal::Violation& violation : internal::CheckJobSpec(spec)) {
    problems.push_back({internal::Location{}, std::move(violation.path),
                        std::move(violation.message)});
  }
  if (problems.empty()) return absl::OkStatus();
  return ProblemsToStatus(std::move(problems));
}

absl::StatusOr<JobSpec> ParseJobSpec(
    absl::string_view yaml_text, absl::string_view source_name,
    const std::vector<std::string>& overrides) {
  std::vector<Problem> problems;
  std::optional<internal::DocNode> root =
      internal::LoadYamlDocument(yaml_text, source_name, &problems);
  if (!root.has_value()) return ProblemsToStatus(std::move(problems));
  if (root->kind == internal::NodeKind::kNull) {
    problems.push_back({internal::Location{std::string(source_name)}, "",
                        "is empty (a job spec needs at least job.name and "
                        "data.task)"});
    return ProblemsToStatus(std::move(problems));
  }
  if (root->kind != internal::NodeKind::kMap) {
    problems.push_back({root->location, "",
                        absl::StrCat("the top level must be a map of sections "
                                     "(job, data, ...), got ",
                                     internal::Describe(*root))});
    return ProblemsToStatus(std::move(problems));
  }
  std::map<std::string, int> override_order;
  for (size_t i = 0; i < overrides.size(); ++i) {
    internal::ApplyOverride(overrides[i], &*root, &problems);
    // Problems name an override by its key, or by its text when malformed.
    absl::string_view key = overrides[i];
    key = absl::StripAsciiWhitespace(key.substr(0, key.find('=')));
    override_order[absl::StrCat("--set ", key)] = static_cast<int>(i);
    override_order[absl::StrCat("--set ", overrides[i])] = static_cast<int>(i);
  }

  internal::ReadResult read = internal::ReadJobSpec(*root);
  problems.insert(problems.end(), read.problems.begin(), read.problems.end());
  ResolveDerivedDefaults(&read.spec);
  for (internal::Violation& violation : internal::CheckJobSpec(read.spec)) {
    if (InvolvesFailedKey(violation, read.failed_paths)) continue;
    internal::Location location = Locate(read.locations, violation.path);
    problems.push_back({std::move(location), std::move(violation.path),
                        std::move(violation.message)});
  }
  if (!problems.empty()) {
    return ProblemsToStatus(std::move(problems), override_order);
  }
  return std::move(read.spec);
}

absl::StatusOr<JobSpec> LoadJobSpecFile(
    const std::string& path, const std::vector<std::string>& overrides) {
  // POSIX stat: NOTE [no std::filesystem] in services/files/files.h.
  // Other stat failures fall through to the open below, which names them.
  struct stat info;
  if (stat(path.c_str(), &info) != 0) {
    if (errno == ENOENT) {
      return absl::NotFoundError(absl::StrCat(path, ": no such job spec file"));
    }
  } else if (S_ISDIR(info.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": is a directory, not a job spec file"));
  } else if (S_ISREG(info.st_mode) &&
             static_cast<uint64_t>(info.st_size) > kMaxJobSpecBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": is larger than 16 MiB, too large for a job spec"));
  }
  errno = 0;
  std::ifstream stream(path, std::ios::binary);
  if (!stream.is_open()) {
    return absl::ErrnoToStatus(errno != 0 ? errno : EIO,
                               absl::StrCat(path, ": cannot open"));
  }
  std::string text((std::istreambuf_iterator<char>(stream)),
                   std::istreambuf_iterator<char>());
  if (stream.bad()) {
    return absl::DataLossError(absl::StrCat(path, ": read failed"));
  }
  return ParseJobSpec(text, path, overrides);
}

}  // namespace fapo::config
