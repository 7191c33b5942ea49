#include "tasks/arith/corpus.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tasks/arith/jsonl.h"
#include "tasks/arith/random.h"
#include "tasks/arith/slips.h"
#include "tasks/arith/solution.h"

namespace fapo::tasks::arith {
namespace {

constexpr absl::string_view kPromptKey = "prompt";
constexpr absl::string_view kResponseKey = "response";
constexpr absl::string_view kKindKey = "kind";
constexpr absl::string_view kFirstErrorStepKey = "first_error_step";

bool ShareIsValid(double share) {
  return std::isfinite(share) && share >= 0.0 && share <= 1.0;
}

}  // namespace

absl::string_view TraceKindName(TraceKind kind) {
  switch (kind) {
    case TraceKind::kClean:
      return "clean";
    case TraceKind::kHalfSlip:
      return "half_slip";
    case TraceKind::kWrongSlip:
      return "wrong_slip";
  }
  return "unknown";
}

absl::StatusOr<TraceKind> ParseTraceKind(absl::string_view name) {
  for (TraceKind kind :
       {TraceKind::kClean, TraceKind::kHalfSlip, TraceKind::kWrongSlip}) {
    if (name == TraceKindName(kind)) return kind;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "trace kind must be clean, half_slip or wrong_slip, got \"", name, "\""));
}

bool operator==(const CorpusRecord& a, const CorpusRecord& b) {
  return a.prompt == b.prompt && a.response == b.response && a.kind == b.kind &&
         a.first_error_step == b.first_error_step;
}

absl::StatusOr<CorpusGenerator> CorpusGenerator::Create(
    const ArithOptions& arith_options, const CorpusOptions& corpus_options,
    uint64_t seed) {
  absl::StatusOr<ProblemGenerator> problems =
      ProblemGenerator::Create(arith_options, seed);
  if (!problems.ok()) return problems.status();
  if (!ShareIsValid(corpus_options.half_slip_share) ||
      !ShareIsValid(corpus_options.wrong_slip_share)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "corpus options: half_slip_share and wrong_slip_share must be in "
        "[0, 1], got ",
        corpus_options.half_slip_share, " and ",
        corpus_options.wrong_slip_share));
  }
  // A small tolerance so that shares written as decimals (0.3 + 0.7) pass.
  if (corpus_options.half_slip_share + corpus_options.wrong_slip_share >
      1.0 + 1e-9) {
    return absl::InvalidArgumentError(absl::StrCat(
        "corpus options: half_slip_share + wrong_slip_share must be <= 1, "
        "got ",
        corpus_options.half_slip_share, " + ",
        corpus_options.wrong_slip_share));
  }
  if (corpus_options.half_slip_share > 0 &&
      !HalfSlipsKeepAnswer(arith_options)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "corpus options: half_slip_share ", corpus_options.half_slip_share,
        " > 0 needs half slips to keep the answer right, which needs "
        "answer_modulus > 0 and either value_modulus 0 or answer_modulus a "
        "proper divisor of value_modulus; got value_modulus ",
        arith_options.value_modulus, ", answer_modulus ",
        arith_options.answer_modulus));
  }
  return CorpusGenerator(*std::move(problems), corpus_options, seed);
}

CorpusGenerator::CorpusGenerator(ProblemGenerator problems,
                                 const CorpusOptions& options, uint64_t seed)
    : problems_(std::move(problems)),
      options_(options),
      slip_rng_(MixSeed(seed, 1)) {}

absl::StatusOr<CorpusRecord> CorpusGenerator::Next() {
  const ArithOptions& arith = problems_.options();
  const Problem problem = problems_.Next();
  absl::StatusOr<Trace> correct = CorrectTrace(problem, arith);
  if (!correct.ok()) return correct.status();
  const int num_ops = static_cast<int>(problem.operations.size());

  CorpusRecord record;
  record.prompt = FormatPrompt(problem);
  const double u = UniformDouble(slip_rng_);
  if (u < options_.half_slip_share) {
    record.kind = TraceKind::kHalfSlip;
  } else if (u < options_.half_slip_share + options_.wrong_slip_share) {
    record.kind = TraceKind::kWrongSlip;
  } else {
    record.response = FormatTrace(problem, *correct);
    return record;
  }

  for (int attempt = 0; attempt < internal::kMaxSlipAttempts; ++attempt) {
    const int step = static_cast<int>(UniformInt(slip_rng_, num_ops));
    const int64_t correct_value = correct->stated_results[step];
    const std::optional<int64_t> value =
        record.kind == TraceKind::kHalfSlip
            ? HalfSlipValue(correct_value, arith)
            : internal::DrawWrongValue(slip_rng_, correct_value, arith);
    if (!value.has_value()) continue;
    const std::optional<Trace> slipped =
        SlippedTrace(problem, arith, step, *value);
    if (!slipped.has_value()) continue;
    // A half slip keeps the answer by construction (HalfSlipsKeepAnswer); a
    // wrong slip must not keep it by chance.
    const bool answer_kept = slipped->stated_answer == correct->stated_answer;
    if (answer_kept != (record.kind == TraceKind::kHalfSlip)) continue;
    record.response = FormatTrace(problem, *slipped);
    record.first_error_step = step;
    return record;
  }
  return absl::InternalError(absl::StrCat(
      "arith corpus: no ", TraceKindName(record.kind), " slip for \"",
      record.prompt, "\" in ", internal::kMaxSlipAttempts, " draws"));
}

absl::StatusOr<std::vector<CorpusRecord>> CorpusGenerator::Generate(int count) {
  std::vector<CorpusRecord> records;
  records.reserve(std::max(count, 0));
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<CorpusRecord> record = Next();
    if (!record.ok()) return record.status();
    records.push_back(*std::move(record));
  }
  return records;
}

absl::Status WriteCorpusJsonl(absl::Span<const CorpusRecord> records,
                              std::ostream* out) {
  for (const CorpusRecord& record : records) {
    internal::Json object;
    object[std::string(kPromptKey)] = record.prompt;
    object[std::string(kResponseKey)] = record.response;
    object[std::string(kKindKey)] = std::string(TraceKindName(record.kind));
    object[std::string(kFirstErrorStepKey)] = record.first_error_step;
    *out << internal::DumpJsonLine(object) << '\n';
  }
  out->flush();
  if (!*out) return absl::InternalError("corpus JSONL: write failed");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<CorpusRecord>> ReadCorpusJsonl(std::istream* in) {
  std::vector<CorpusRecord> records;
  absl::Status status = internal::ForEachJsonLine(
      in, "corpus JSONL",
      {kPromptKey, kResponseKey, kKindKey, kFirstErrorStepKey},
      [&](const internal::Json& object) -> absl::Status {
        CorpusRecord record;
        absl::StatusOr<std::string> prompt =
            internal::GetString(object, kPromptKey);
        if (!prompt.ok()) return prompt.status();
        absl::StatusOr<std::string> response =
            internal::GetString(object, kResponseKey);
        if (!response.ok()) return response.status();
        absl::StatusOr<std::string> kind_name =
            internal::GetString(object, kKindKey);
        if (!kind_name.ok()) return kind_name.status();
        absl::StatusOr<TraceKind> kind = ParseTraceKind(*kind_name);
        if (!kind.ok()) return kind.status();
        absl::StatusOr<int64_t> step = internal::GetInt(
            object, kFirstErrorStepKey, -1, std::numeric_limits<int>::max());
        if (!step.ok()) return step.status();
        if ((*kind == TraceKind::kClean) != (*step == -1)) {
          return absl::InvalidArgumentError(absl::StrCat(
              "first_error_step must be -1 exactly when kind is clean, got ",
              *step, " with kind ", *kind_name));
        }
        record.prompt = *std::move(prompt);
        record.response = *std::move(response);
        record.kind = *kind;
        record.first_error_step = static_cast<int>(*step);
        records.push_back(std::move(record));
        return absl::OkStatus();
      });
  if (!status.ok()) return status;
  return records;
}

absl::Status WriteCorpusJsonlFile(const std::string& path,
                                  absl::Span<const CorpusRecord> records) {
  return internal::WriteJsonlFile<CorpusRecord>(path, records,
                                                WriteCorpusJsonl);
}

absl::StatusOr<std::vector<CorpusRecord>> ReadCorpusJsonlFile(
    const std::string& path) {
  return internal::ReadJsonlFile<CorpusRecord>(path, ReadCorpusJsonl);
}

}  // namespace fapo::tasks::arith
