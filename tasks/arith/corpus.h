// The warm-up corpus: supervised traces for the policy's SFT warm start, some
// of them flawed the way web data is (docs/arith-testbed.md, "Warm-up
// corpus").
//
// Each trace is one of:
//   - clean: the correct solution;
//   - half_slip: one operation's result written as result + answer_modulus
//     (mod value_modulus), the later lines consistent with it, so the answer
//     stays right: a flawed positive. Needs HalfSlipsKeepAnswer(options)
//     (answer_modulus a proper divisor of value_modulus, or exact
//     arithmetic with answer_modulus > 0); otherwise a non-zero
//     half_slip_share is refused at Create, since no fixed offset keeps the
//     answer right;
//   - wrong_slip: one operation's result replaced by a random wrong value
//     (DrawWrongValue in slips.h), the later lines consistent with it, and
//     the final answer wrong: when the answer comes out right by chance the
//     slip (step and value) is redrawn on the same problem.
// The slipped step is uniform over the operations. The kind of each record
// is drawn independently: half_slip with probability half_slip_share,
// wrong_slip with wrong_slip_share, clean otherwise. The testbed's 65/25/10
// split is the default; its harder variant (30/15/55) is
// {half_slip_share = 0.15, wrong_slip_share = 0.55}.
//
// Reproducible from the seed (NOTE [reproducible randomness] in random.h):
// the problems are exactly ProblemGenerator(options, seed)'s sequence; the
// kinds and slips come from a second engine seeded with MixSeed(seed, 1).
//
// JSONL: one object per line, keys in this order:
//   {"prompt":"3+7*4-2","response":"3+7=0\n0*4=0\n0-2=8\n#3",
//    "kind":"clean","first_error_step":-1}
#ifndef FAPO_TASKS_ARITH_CORPUS_H_
#define FAPO_TASKS_ARITH_CORPUS_H_

#include <cstdint>
#include <istream>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "tasks/arith/problem.h"

namespace fapo::tasks::arith {

struct CorpusOptions {
  // Share of half-slip traces (flawed, answer right). Default 0.25. [0, 1].
  double half_slip_share = 0.25;
  // Share of wrong-slip traces (flawed, answer wrong). Default 0.10. [0, 1];
  // half_slip_share + wrong_slip_share <= 1.
  double wrong_slip_share = 0.10;
};

enum class TraceKind { kClean, kHalfSlip, kWrongSlip };

// "clean", "half_slip", "wrong_slip".
absl::string_view TraceKindName(TraceKind kind);
// The inverse of TraceKindName; InvalidArgument for any other text.
absl::StatusOr<TraceKind> ParseTraceKind(absl::string_view name);

struct CorpusRecord {
  std::string prompt;    // FormatPrompt text
  std::string response;  // the trace, one step per line, no final newline
  TraceKind kind = TraceKind::kClean;
  // The slipped step (what the Checker reports); -1 for clean traces.
  int first_error_step = -1;
};

bool operator==(const CorpusRecord& a, const CorpusRecord& b);

// Not thread-safe (holds engines); copyable like ProblemGenerator.
class CorpusGenerator {
 public:
  // InvalidArgument for invalid ArithOptions, shares outside [0, 1] (or NaN)
  // or summing above 1, and a non-zero half_slip_share when
  // !HalfSlipsKeepAnswer(arith_options).
  static absl::StatusOr<CorpusGenerator> Create(
      const ArithOptions& arith_options, const CorpusOptions& corpus_options,
      uint64_t seed);

  // The next record. Internal only if kMaxSlipAttempts redraws cannot place
  // a slip (exact arithmetic at the edge of int64; not reachable with
  // options of a realistic size).
  absl::StatusOr<CorpusRecord> Next();

  // `count` records (Next() repeated).
  absl::StatusOr<std::vector<CorpusRecord>> Generate(int count);

 private:
  CorpusGenerator(ProblemGenerator problems, const CorpusOptions& options,
                  uint64_t seed);

  ProblemGenerator problems_;
  CorpusOptions options_;
  std::mt19937_64 slip_rng_;
};

// Writes one JSON object per record, each followed by '\n'. Internal when
// the stream fails.
absl::Status WriteCorpusJsonl(absl::Span<const CorpusRecord> records,
                              std::ostream* out);
// Reads what WriteCorpusJsonl writes. Strict: every line one object with
// exactly the four keys, of the right types; kind one of the names;
// first_error_step -1 iff kind is clean (else >= 0). InvalidArgument naming
// the line (1-based) otherwise.
absl::StatusOr<std::vector<CorpusRecord>> ReadCorpusJsonl(std::istream* in);

// File versions of the above. NotFound when the file cannot be opened;
// errors name the path.
absl::Status WriteCorpusJsonlFile(const std::string& path,
                                  absl::Span<const CorpusRecord> records);
absl::StatusOr<std::vector<CorpusRecord>> ReadCorpusJsonlFile(
    const std::string& path);

}  // namespace fapo::tasks::arith

#endif  // FAPO_TASKS_ARITH_CORPUS_H_
