// Math problems from JSONL: one JSON object per line, a prompt and a
// ground-truth answer at configurable dotted field paths.
//
// The documented layout is DAPO-Math-17k's (testdata/dapo_math_sample.jsonl):
//
//   {"data_source": "math_dapo",
//    "prompt": [{"role": "user", "content": "Solve ... \\boxed{}."}],
//    "ability": "MATH",
//    "reward_model": {"ground_truth": "34", "style": "rule"},
//    "extra_info": {"index": "0a1b..."}}
//
// with the defaults prompt_field = "prompt" and
// answer_field = "reward_model.ground_truth". Per line:
//
//   prompt   a non-empty string, or a chat list [{"role", "content"}, ...]
//            whose last message with role "user" gives the prompt (its
//            "content" must be a non-empty string; other messages need only
//            a string "role"). The text is kept as written (not trimmed).
//   answer   a non-empty string, kept as written (it is normalised only when
//            compared, see verifier.h), or a JSON number written as its JSON
//            text: 34 -> "34", -7 -> "-7", 0.5 -> "0.5", 3.0 -> "3.0" (which
//            AnswersEqual treats as 3), 1e20 -> "1e+20".
//   id       top-level "id", else "extra_info.index", each a non-empty string
//            or an integer (JSON null counts as absent); else
//            "<file basename>:<line number>". Ids from the data are passed
//            through and are not checked for uniqueness.
//
// A dotted path walks nested objects ("reward_model.ground_truth"); a key
// that itself contains '.' cannot be addressed. Blank lines (whitespace only)
// are skipped but counted, so line numbers are those an editor shows; a
// trailing '\r' (CRLF files) and a UTF-8 byte-order mark are ignored.
//
// Errors: every bad line makes the whole load fail with InvalidArgument
// naming the file and listing the bad lines in order, the first 20 of them
// and then how many more, for example
//
//   train.jsonl: 2 bad lines: line 3: not valid JSON (error at column 7);
//   line 9: missing field "reward_model.ground_truth"
//
// Kinds: "not valid JSON (error at column N)", "not a JSON object (got
// array)", "missing field \"a.b\"", "field \"a\" must be an object, got
// string", "field \"prompt\" must be a string or a list of chat messages, got
// number", "field \"prompt[1]\" must be an object with a string \"role\"",
// "field \"prompt\" has no message with role \"user\"", "field
// \"prompt[0].content\" must be a string, got null", "field \"x.y\" must be a
// string or a number, got boolean", "field \"id\" must be a string or an
// integer, got array", "field \"prompt\" is empty" (whitespace only counts as
// empty). A file that is empty or holds only blank lines is InvalidArgument
// ("no records"); a file that cannot be opened maps errno (NotFound when it
// does not exist), the message naming the path.
//
// Thread-safe: no shared state.
#ifndef FAPO_TASKS_MATH_DATASET_H_
#define FAPO_TASKS_MATH_DATASET_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fapo::tasks::math {

// Where the problems are and where each line keeps its fields. Mirrors the
// job spec's data.math section (services/config maps it; this library does
// not depend on config).
struct MathDataOptions {
  // Training JSONL. Default "" (LoadMathProblems requires it).
  std::string path;
  // Held-out JSONL. Default "" = none here; the caller holds out part of
  // `path` instead.
  std::string eval_path;
  // Dotted path of the prompt in each line. Default "prompt".
  std::string prompt_field = "prompt";
  // Dotted path of the ground-truth answer. Default
  // "reward_model.ground_truth".
  std::string answer_field = "reward_model.ground_truth";
};

// One problem: what the policy is asked and what the verifier compares with.
struct MathProblem {
  std::string id;      // see the header comment
  std::string prompt;  // the user's text (no chat template applied)
  std::string answer;  // the ground truth as written in the data
};

bool operator==(const MathProblem& a, const MathProblem& b);
inline bool operator!=(const MathProblem& a, const MathProblem& b) {
  return !(a == b);
}

// Parses JSONL text. `source_name` names the text in errors and, through its
// basename, in fallback ids ("data/train.jsonl" -> "train.jsonl:12").
// options.path and options.eval_path are not used. Errors as above;
// InvalidArgument also when a field path is empty or has an empty segment.
absl::StatusOr<std::vector<MathProblem>> ParseMathProblems(
    absl::string_view jsonl, absl::string_view source_name,
    const MathDataOptions& options);

// Reads and parses options.path (the whole file in memory).
// InvalidArgument when options.path is empty.
absl::StatusOr<std::vector<MathProblem>> LoadMathProblems(
    const MathDataOptions& options);

// Reads and parses options.eval_path; an empty vector when it is "".
absl::StatusOr<std::vector<MathProblem>> LoadMathEvalProblems(
    const MathDataOptions& options);

}  // namespace fapo::tasks::math

#endif  // FAPO_TASKS_MATH_DATASET_H_
