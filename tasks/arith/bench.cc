#include "tasks/arith/bench.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tasks/arith/jsonl.h"
#include "tasks/arith/numerals.h"
#include "tasks/arith/random.h"
#include "tasks/arith/slips.h"
#include "tasks/arith/solution.h"

namespace fapo::tasks::arith {
namespace {

constexpr absl::string_view kProblemKey = "problem";
constexpr absl::string_view kGroundTruthKey = "ground_truth";
constexpr absl::string_view kSolutionKey = "solution";
constexpr absl::string_view kFirstErrorStepKey = "first_error_step";
constexpr absl::string_view kKindKey = "kind";

bool ShareIsValid(double share) {
  return std::isfinite(share) && share >= 0.0 && share <= 1.0;
}

absl::Status ValidateBenchOptions(const ArithOptions& arith,
                                  const BenchOptions& bench) {
  if (absl::Status status = ValidateArithOptions(arith); !status.ok()) {
    return status;
  }
  if (bench.num_records < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bench options: num_records must be >= 0, got ", bench.num_records));
  }
  if (!ShareIsValid(bench.half_slip_share) ||
      !ShareIsValid(bench.lucky_slip_share) ||
      bench.half_slip_share + bench.lucky_slip_share > 1.0 + 1e-9) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bench options: half_slip_share and lucky_slip_share must be in "
        "[0, 1] and sum to <= 1, got ",
        bench.half_slip_share, " and ", bench.lucky_slip_share));
  }
  if (bench.half_slip_share > 0 && !HalfSlipsKeepAnswer(arith)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bench options: half_slip_share ", bench.half_slip_share,
        " > 0 needs half slips to keep the answer right, which needs "
        "answer_modulus > 0 and either value_modulus 0 or answer_modulus a "
        "proper divisor of value_modulus; got value_modulus ",
        arith.value_modulus, ", answer_modulus ", arith.answer_modulus));
  }
  return absl::OkStatus();
}

// Builds records of each kind from one problem stream and one slip engine.
class BenchBuilder {
 public:
  BenchBuilder(ProblemGenerator problems, uint64_t seed)
      : problems_(std::move(problems)), slip_rng_(MixSeed(seed, 1)) {}

  std::mt19937_64& slip_rng() { return slip_rng_; }

  absl::StatusOr<BenchRecord> Build(BenchKind kind) {
    const ArithOptions& arith = problems_.options();
    for (int attempt = 0; attempt < internal::kMaxSlipAttempts; ++attempt) {
      const Problem problem = problems_.Next();
      absl::StatusOr<Trace> correct = CorrectTrace(problem, arith);
      if (!correct.ok()) return correct.status();
      BenchRecord record;
      record.problem = FormatPrompt(problem);
      record.ground_truth = correct->stated_answer;
      record.kind = kind;
      if (kind == BenchKind::kSound) {
        record.solution = FormatTrace(problem, *correct);
        return record;
      }
      const int step =
          static_cast<int>(UniformInt(slip_rng_, problem.operations.size()));
      const int64_t correct_value = correct->stated_results[step];
      std::optional<int64_t> value;
      if (kind == BenchKind::kHalfSlip) {
        value = HalfSlipValue(correct_value, arith);
      } else {
        value = internal::DrawWrongValue(slip_rng_, correct_value, arith);
        // Not a disguised half slip (bench.h).
        if (value.has_value() && HalfSlipsKeepAnswer(arith) &&
            AnswerOf(*value, arith.answer_modulus) ==
                AnswerOf(correct_value, arith.answer_modulus)) {
          continue;
        }
      }
      if (!value.has_value()) continue;
      const std::optional<Trace> slipped =
          SlippedTrace(problem, arith, step, *value);
      if (!slipped.has_value() ||
          slipped->stated_answer != correct->stated_answer) {
        continue;
      }
      record.solution = FormatTrace(problem, *slipped);
      record.first_error_step = step;
      return record;
    }
    return absl::FailedPreconditionError(
        absl::StrCat("arith bench: no ", BenchKindName(kind),
                     " with a right answer in ", internal::kMaxSlipAttempts,
                     " draws; under these options (value_modulus ",
                     problems_.options().value_modulus, ", answer_modulus ",
                     problems_.options().answer_modulus, ", operand_max ",
                     problems_.options().operand_max,
                     ") such slips are impossible or too rare"));
  }

 private:
  ProblemGenerator problems_;
  std::mt19937_64 slip_rng_;
};

}  // namespace

absl::string_view BenchKindName(BenchKind kind) {
  switch (kind) {
    case BenchKind::kSound:
      return "sound";
    case BenchKind::kHalfSlip:
      return "half_slip";
    case BenchKind::kLuckySlip:
      return "lucky_slip";
  }
  return "unknown";
}

absl::StatusOr<BenchKind> ParseBenchKind(absl::string_view name) {
  for (BenchKind kind :
       {BenchKind::kSound, BenchKind::kHalfSlip, BenchKind::kLuckySlip}) {
    if (name == BenchKindName(kind)) return kind;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "bench kind must be sound, half_slip or lucky_slip, got \"", name, "\""));
}

bool operator==(const BenchRecord& a, const BenchRecord& b) {
  return a.problem == b.problem && a.ground_truth == b.ground_truth &&
         a.solution == b.solution && a.first_error_step == b.first_error_step &&
         a.kind == b.kind;
}

absl::StatusOr<std::vector<BenchRecord>> GenerateFlawedPositiveBench(
    const ArithOptions& arith_options, const BenchOptions& bench_options,
    uint64_t seed) {
  if (absl::Status status = ValidateBenchOptions(arith_options, bench_options);
      !status.ok()) {
    return status;
  }
  absl::StatusOr<ProblemGenerator> problems =
      ProblemGenerator::Create(arith_options, seed);
  if (!problems.ok()) return problems.status();
  BenchBuilder builder(*std::move(problems), seed);

  // Exact counts by cumulative rounding, so they never sum above
  // num_records.
  const int n = bench_options.num_records;
  const int num_half = static_cast<int>(
      std::min<double>(n, std::floor(bench_options.half_slip_share * n + 0.5)));
  const int num_half_or_lucky = static_cast<int>(std::min<double>(
      n,
      std::floor(
          (bench_options.half_slip_share + bench_options.lucky_slip_share) * n +
          0.5)));
  std::vector<BenchKind> kinds;
  kinds.reserve(n);
  for (int i = 0; i < n; ++i) {
    kinds.push_back(i < num_half            ? BenchKind::kHalfSlip
                    : i < num_half_or_lucky ? BenchKind::kLuckySlip
                                            : BenchKind::kSound);
  }
  Shuffle(builder.slip_rng(), &kinds);

  std::vector<BenchRecord> records;
  records.reserve(n);
  for (BenchKind kind : kinds) {
    absl::StatusOr<BenchRecord> record = builder.Build(kind);
    if (!record.ok()) return record.status();
    records.push_back(*std::move(record));
  }
  return records;
}

absl::Status WriteBenchJsonl(absl::Span<const BenchRecord> records,
                             std::ostream* out) {
  for (const BenchRecord& record : records) {
    internal::Json object;
    object[std::string(kProblemKey)] = record.problem;
    object[std::string(kGroundTruthKey)] = absl::StrCat(record.ground_truth);
    object[std::string(kSolutionKey)] = record.solution;
    object[std::string(kFirstErrorStepKey)] = record.first_error_step;
    object[std::string(kKindKey)] = std::string(BenchKindName(record.kind));
    *out << internal::DumpJsonLine(object) << '\n';
  }
  out->flush();
  if (!*out) return absl::InternalError("bench JSONL: write failed");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<BenchRecord>> ReadBenchJsonl(std::istream* in) {
  std::vector<BenchRecord> records;
  absl::Status status = internal::ForEachJsonLine(
      in, "bench JSONL",
      {kProblemKey, kGroundTruthKey, kSolutionKey, kFirstErrorStepKey,
       kKindKey},
      [&](const internal::Json& object) -> absl::Status {
        BenchRecord record;
        absl::StatusOr<std::string> problem =
            internal::GetString(object, kProblemKey);
        if (!problem.ok()) return problem.status();
        absl::StatusOr<std::string> solution =
            internal::GetString(object, kSolutionKey);
        if (!solution.ok()) return solution.status();
        const internal::Json& truth = object.at(std::string(kGroundTruthKey));
        if (truth.is_string()) {
          const std::string& text = truth.get_ref<const std::string&>();
          size_t pos = 0;
          if (!internal::ConsumeCanonicalInt(text, &pos,
                                             /*allow_negative=*/true,
                                             &record.ground_truth) ||
              pos != text.size()) {
            return absl::InvalidArgumentError(absl::StrCat(
                "\"ground_truth\" must be a canonical integer, got \"", text,
                "\""));
          }
        } else {
          absl::StatusOr<int64_t> value = internal::GetInt(
              object, kGroundTruthKey, std::numeric_limits<int64_t>::min(),
              std::numeric_limits<int64_t>::max());
          if (!value.ok()) {
            return absl::InvalidArgumentError(
                "\"ground_truth\" must be a string or an integer");
          }
          record.ground_truth = *value;
        }
        absl::StatusOr<std::string> kind_name =
            internal::GetString(object, kKindKey);
        if (!kind_name.ok()) return kind_name.status();
        absl::StatusOr<BenchKind> kind = ParseBenchKind(*kind_name);
        if (!kind.ok()) return kind.status();
        absl::StatusOr<int64_t> step = internal::GetInt(
            object, kFirstErrorStepKey, -1, std::numeric_limits<int>::max());
        if (!step.ok()) return step.status();
        if ((*kind == BenchKind::kSound) != (*step == -1)) {
          return absl::InvalidArgumentError(absl::StrCat(
              "first_error_step must be -1 exactly when kind is sound, got ",
              *step, " with kind ", *kind_name));
        }
        record.problem = *std::move(problem);
        record.solution = *std::move(solution);
        record.kind = *kind;
        record.first_error_step = static_cast<int>(*step);
        records.push_back(std::move(record));
        return absl::OkStatus();
      });
  if (!status.ok()) return status;
  return records;
}

absl::Status WriteBenchJsonlFile(const std::string& path,
                                 absl::Span<const BenchRecord> records) {
  return internal::WriteJsonlFile<BenchRecord>(path, records, WriteBenchJsonl);
}

absl::StatusOr<std::vector<BenchRecord>> ReadBenchJsonlFile(
    const std::string& path) {
  return internal::ReadJsonlFile<BenchRecord>(path, ReadBenchJsonl);
}

}  // namespace fapo::tasks::arith
