// The arith flawed-positive bench: a labelled evaluation set for GenRM
// quality. Every record is a solution whose final answer is right, labelled
// sound (first_error_step -1) or flawed (the index of its first wrong step,
// as the Checker reports it). Kinds:
//   - sound: the correct solution;
//   - half_slip: one result written as result + answer_modulus (mod
//     value_modulus), later lines consistent (see corpus.h); needs
//     HalfSlipsKeepAnswer(options) when its share is non-zero;
//   - lucky_slip: one result replaced by a random wrong value, later lines
//     consistent, kept only when the answer comes out right anyway. A lucky
//     slip is never a disguised half slip: when HalfSlipsKeepAnswer(options),
//     values congruent to the correct result modulo answer_modulus are not
//     drawn, so the answer survives only through a later step (under the
//     default options, a later "*5" under mod 10). Each draw takes a fresh
//     problem, step and value; options under which lucky slips are
//     impossible or very rare (e.g. exact arithmetic with answer_modulus 0,
//     or answer_modulus a prime above operand_max) fail with
//     FailedPrecondition after internal::kMaxSlipAttempts draws.
//
// Proportions are exact, not sampled: round(half_slip_share * num_records)
// half slips, round((half_slip_share + lucky_slip_share) * num_records)
// minus that many lucky slips, the rest sound, in a seeded shuffled order.
// Reproducible from the seed (NOTE [reproducible randomness] in random.h).
//
// JSONL: one object per line, keys in this order:
//   {"problem":"3+7*4-2","ground_truth":"3","solution":"3+7=0\n...\n#3",
//    "first_error_step":-1,"kind":"sound"}
// ground_truth is the answer as decimal text (as the GenRM prompt shows
// it); the reader accepts a JSON integer too. A bench file does not record
// its ArithOptions: read and check it under the options that wrote it (the
// job spec's data.arith).
#ifndef FAPO_TASKS_ARITH_BENCH_H_
#define FAPO_TASKS_ARITH_BENCH_H_

#include <cstdint>
#include <istream>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "tasks/arith/problem.h"

namespace fapo::tasks::arith {

struct BenchOptions {
  // Records in the bench. Default 1000. >= 0.
  int num_records = 1000;
  // Share of half slips. Default 0.25. [0, 1].
  double half_slip_share = 0.25;
  // Share of lucky slips. Default 0.25. [0, 1]; the two shares sum to <= 1
  // and the rest (default 0.5) is sound.
  double lucky_slip_share = 0.25;
};

enum class BenchKind { kSound, kHalfSlip, kLuckySlip };

// "sound", "half_slip", "lucky_slip".
absl::string_view BenchKindName(BenchKind kind);
// The inverse of BenchKindName; InvalidArgument for any other text.
absl::StatusOr<BenchKind> ParseBenchKind(absl::string_view name);

struct BenchRecord {
  std::string problem;  // FormatPrompt text
  int64_t ground_truth = 0;
  std::string solution;  // one step per line, no final newline
  // The first wrong step per the Checker; -1 for sound records.
  int first_error_step = -1;
  BenchKind kind = BenchKind::kSound;
};

bool operator==(const BenchRecord& a, const BenchRecord& b);

// The bench for `seed`. InvalidArgument for invalid options (ArithOptions,
// num_records < 0, shares outside [0, 1] or summing above 1, a non-zero
// half_slip_share without HalfSlipsKeepAnswer); FailedPrecondition when
// lucky slips cannot be drawn (see above).
absl::StatusOr<std::vector<BenchRecord>> GenerateFlawedPositiveBench(
    const ArithOptions& arith_options, const BenchOptions& bench_options,
    uint64_t seed);

// Writes one JSON object per record, each followed by '\n'.
absl::Status WriteBenchJsonl(absl::Span<const BenchRecord> records,
                             std::ostream* out);
// Reads what WriteBenchJsonl writes. Strict: exactly the five keys, of the
// right types (ground_truth a canonical decimal string or an integer); kind
// one of the names; first_error_step -1 iff kind is sound. InvalidArgument
// naming the line (1-based) otherwise.
absl::StatusOr<std::vector<BenchRecord>> ReadBenchJsonl(std::istream* in);

// File versions. NotFound when the file cannot be opened; errors name the
// path.
absl::Status WriteBenchJsonlFile(const std::string& path,
                                 absl::Span<const BenchRecord> records);
absl::StatusOr<std::vector<BenchRecord>> ReadBenchJsonlFile(
    const std::string& path);

}  // namespace fapo::tasks::arith

#endif  // FAPO_TASKS_ARITH_BENCH_H_
