// The GenRM's verdict: its status, parsing its \boxed{} answer, majority
// voting over several samples, and the reward that trains the GenRM itself.
//
// The GenRM answers the prompt of genrm_prompt.h with a critique that ends in
// \boxed{k}: k is the index of the earliest wrong step, or -1 when every step
// is sound. ParseVerdict turns that text into a ParsedVerdict; anything that
// is not a clean integer is kUnparsable, an integer outside [-1, num_steps)
// is kInvalid. For the policy reward both count as "not flawed" (and are
// counted in metrics).
//
// All functions are pure, thread-safe and allocation-free.
#ifndef FAPO_ALGORITHM_VERDICT_H_
#define FAPO_ALGORITHM_VERDICT_H_

#include <array>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace fapo::algorithm {

// Maps 1:1, by name, onto fapo.v1.VerdictStatus (proto/fapo/v1/common.proto):
// kOk <-> VERDICT_STATUS_OK, ..., kSkipped <-> VERDICT_STATUS_SKIPPED. The
// numeric values differ from the wire's (which has UNSPECIFIED = 0 and
// INVALID = 5): convert with a switch, never a cast. The values here are
// dense from 0 so that they index arrays (see kNumVerdictStatuses).
enum class VerdictStatus {
  kOk,          // a usable step index, or -1 for "no error"
  kUnparsable,  // no \boxed{} answer, or not an integer inside it
  kInvalid,     // an integer outside [-1, num_steps)
  kTimeout,     // no answer within the deadline (set by callers, not parsed)
  kSkipped,     // not sent to the GenRM: the answer is wrong anyway
};
inline constexpr int kNumVerdictStatuses = 5;
inline constexpr std::array<VerdictStatus, kNumVerdictStatuses>
    kAllVerdictStatuses = {VerdictStatus::kOk, VerdictStatus::kUnparsable,
                           VerdictStatus::kInvalid, VerdictStatus::kTimeout,
                           VerdictStatus::kSkipped};

// "ok", "unparsable", "invalid", "timeout", "skipped" (metric label values);
// "" for a value outside the enum.
absl::string_view VerdictStatusName(VerdictStatus status) noexcept;
// The inverse of VerdictStatusName (exact match). Returns false, leaving
// *status alone, for an unknown name.
bool ParseVerdictStatusName(absl::string_view name,
                            VerdictStatus* status) noexcept;

struct ParsedVerdict {
  VerdictStatus status = VerdictStatus::kUnparsable;
  // Index of the earliest wrong step; -1 when none, and always -1 unless
  // status is kOk.
  int first_error_step = -1;
};

// Parses a GenRM critique of a solution with `num_steps` steps (< 0 is taken
// as 0).
//
// The answer is the LAST box in the text: \boxed{...} or \fbox{...} (braces
// matched with nesting; \{ and \} are escaped characters, not braces), or
// "\boxed" followed by whitespace and a bare token (up to whitespace or '$').
// "\boxedfoo" is another command, not a box. Text after the last box is
// ignored. From the box's content, surrounding whitespace, $...$ delimiters,
// a plain {...} group and \text, \textbf, \textrm, \mathrm, \mathbf wrappers
// are peeled off, repeatedly. What is left must be an integer: an optional
// sign ('+', '-', or the Unicode minus forms U+2212, U+2013, U+FE63, U+FF0D),
// optional whitespace, ASCII digits, then optionally "." or ".0".
//
//   kUnparsable (-1): no box, an unclosed last box, an empty box, anything
//                     but an integer in it ("2.5", "two", "1, 2").
//   kOk (-1):         -1.
//   kOk (k):          0 <= k < num_steps.
//   kInvalid (-1):    k < -1 or k >= num_steps, however many digits.
ParsedVerdict ParseVerdict(absl::string_view genrm_output,
                           int num_steps) noexcept;

// The outcome of a majority vote over k sampled verdicts.
struct MajorityVerdict {
  VerdictStatus status = VerdictStatus::kUnparsable;
  int first_error_step = -1;  // -1 unless status is kOk
  int num_samples = 0;        // k: all verdicts, usable or not
  int num_agreeing = 0;       // kOk verdicts naming the winning index
};

// Votes over the kOk verdicts only; the most frequent index wins, and a tie
// goes to the earliest flagged step, -1 losing every tie (NOTE
// [vote-tie-break] in verdict.cc). With no kOk verdict (none at all
// included) the status is kInvalid if any verdict is kInvalid, else
// kUnparsable, with first_error_step -1 and num_agreeing 0.
MajorityVerdict MajorityVote(absl::Span<const ParsedVerdict> verdicts) noexcept;

// The GenRM's own RL reward for `predicted` on a solution of `num_steps`
// steps whose true earliest wrong step is `true_first_error_step` (-1: the
// solution is sound). R = R_outcome + R_process:
//   predicted not kOk (or its index outside [-1, num_steps)):  -1
//   truth sound:    +1 if predicted -1, else -1
//   truth flawed:   -1 if predicted -1, else 1 - |t_pred - t_true| / num_steps
// so R_process = -|t_pred - t_true| / num_steps lies in [-1, 0].
// Precondition: -1 <= true_first_error_step < num_steps (a negative truth is
// taken as sound; the result is always within [-1, 1]).
double GenrmTrainingReward(const ParsedVerdict& predicted,
                           int true_first_error_step, int num_steps) noexcept;

}  // namespace fapo::algorithm

#endif  // FAPO_ALGORITHM_VERDICT_H_
