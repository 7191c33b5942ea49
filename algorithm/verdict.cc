#include "algorithm/verdict.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>

namespace fapo::algorithm {
namespace {

// NOTE [verdict-parsing]: the parser is deliberately strict about what an
// answer is (an integer, nothing else) and lenient about how LaTeX dresses
// it, because a misread index changes a policy reward while an unparsable
// verdict only costs one "not flawed" call and a metric tick. Everything is
// one backward scan plus one forward brace match over string_views: linear
// in the output length, no allocation, whatever the model emits.

constexpr absl::string_view kBoxCommands[] = {"\\boxed", "\\fbox"};

// Wrappers peeled off the box content. Bold is included: a model that
// emphasises its final index means the same index.
constexpr absl::string_view kWrappers[] = {
    "{", "\\text{", "\\textbf{", "\\textrm{", "\\mathrm{", "\\mathbf{"};

// UTF-8 minus forms: U+2212 MINUS SIGN, U+2013 EN DASH, U+FE63 SMALL
// HYPHEN-MINUS, U+FF0D FULLWIDTH HYPHEN-MINUS.
constexpr absl::string_view kUnicodeMinuses[] = {
    "\xE2\x88\x92", "\xE2\x80\x93", "\xEF\xB9\xA3", "\xEF\xBC\x8D"};

// Beyond any step count: parsing stops accumulating digits here.
constexpr int64_t kHugeIndex = int64_t{1} << 40;

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}

bool IsAsciiLetter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool StartsWith(absl::string_view text, absl::string_view prefix) {
  return text.size() >= prefix.size() &&
         text.substr(0, prefix.size()) == prefix;
}

absl::string_view TrimSpaces(absl::string_view text) {
  size_t begin = 0;
  size_t end = text.size();
  while (begin < end && IsSpace(text[begin])) ++begin;
  while (end > begin && IsSpace(text[end - 1])) --end;
  return text.substr(begin, end - begin);
}

// Position just past the name of the last box command in `text` (a command
// name followed by a letter, like \boxedfoo, is another command), or npos.
size_t FindLastBoxCommand(absl::string_view text) {
  for (size_t i = text.size(); i-- > 0;) {
    if (text[i] != '\\') continue;
    const absl::string_view rest = text.substr(i);
    for (absl::string_view command : kBoxCommands) {
      // Cheap first-letter test before the full compare.
      if (rest.size() < 2 || rest[1] != command[1]) continue;
      if (!StartsWith(rest, command)) continue;
      const size_t name_end = i + command.size();
      if (name_end < text.size() && IsAsciiLetter(text[name_end])) continue;
      return name_end;
    }
  }
  return absl::string_view::npos;
}

// The content of the box whose command name ends at `name_end`; false when
// the box is unclosed or has no argument.
bool ExtractBoxContent(absl::string_view text, size_t name_end,
                       absl::string_view* content) {
  size_t i = name_end;
  while (i < text.size() && IsSpace(text[i])) ++i;
  if (i < text.size() && text[i] == '{') {
    int depth = 0;
    for (size_t j = i; j < text.size(); ++j) {
      const char c = text[j];
      if (c == '\\') {
        ++j;  // \{ \} \\ are characters, not grouping
      } else if (c == '{') {
        ++depth;
      } else if (c == '}' && --depth == 0) {
        *content = text.substr(i + 1, j - i - 1);
        return true;
      }
    }
    return false;  // unclosed
  }
  // "\boxed 4": TeX takes the next token; we take a bare word.
  if (i == name_end || i == text.size()) return false;
  size_t end = i;
  while (end < text.size() && !IsSpace(text[end]) && text[end] != '$') ++end;
  *content = text.substr(i, end - i);
  return end > i;
}

// Peels whitespace, $...$ and {...}/\text{...}-style wrappers off `content`.
// Each peel removes one opening prefix and the final '}', so when what is
// left holds no brace, the peeled layers were properly nested.
absl::string_view PeelWrappers(absl::string_view content) {
  for (;;) {
    content = TrimSpaces(content);
    if (content.size() >= 2 && content.front() == '$' &&
        content.back() == '$') {
      content = content.substr(1, content.size() - 2);
      continue;
    }
    if (content.empty() || content.back() != '}') return content;
    bool peeled = false;
    for (absl::string_view wrapper : kWrappers) {
      if (StartsWith(content, wrapper)) {
        content =
            content.substr(wrapper.size(), content.size() - wrapper.size() - 1);
        peeled = true;
        break;
      }
    }
    if (!peeled) return content;
  }
}

enum class IntegerParse { kNotAnInteger, kValue };

// Parses [sign] [spaces] digits ["." | ".0"]. Magnitudes beyond kHugeIndex
// saturate there (they are out of range whatever num_steps is).
IntegerParse ParseIndex(absl::string_view text, int64_t* value) {
  bool negative = false;
  if (!text.empty() && (text.front() == '-' || text.front() == '+')) {
    negative = text.front() == '-';
    text.remove_prefix(1);
  } else {
    for (absl::string_view minus : kUnicodeMinuses) {
      if (StartsWith(text, minus)) {
        negative = true;
        text.remove_prefix(minus.size());
        break;
      }
    }
  }
  text = TrimSpaces(text);  // "- 1" reads as -1 in math mode
  size_t i = 0;
  int64_t magnitude = 0;
  while (i < text.size() && IsDigit(text[i])) {
    magnitude = std::min(kHugeIndex, magnitude * 10 + (text[i] - '0'));
    ++i;
  }
  if (i == 0) return IntegerParse::kNotAnInteger;
  const absl::string_view suffix = text.substr(i);
  if (!suffix.empty() && suffix != "." && suffix != ".0") {
    return IntegerParse::kNotAnInteger;
  }
  *value = negative ? -magnitude : magnitude;
  return IntegerParse::kValue;
}

// NOTE [vote-tie-break]: a tie goes to the earliest flagged step, and -1
// ("no error") loses every tie. For FAPO the conservative mistake is to
// penalise: when as many samples name a concrete wrong step as call the
// solution sound, the GenRM found a plausible error, and rewarding the
// rollout as sound would teach the policy the very shortcut FAPO is there to
// remove. Among steps the earliest wins, which is what the prompt asks for
// (the earliest error) and makes the result independent of sample order.
bool WinsTie(int candidate, int incumbent) {
  if (candidate == -1) return false;
  return incumbent == -1 || candidate < incumbent;
}

}  // namespace

absl::string_view VerdictStatusName(VerdictStatus status) noexcept {
  switch (status) {
    case VerdictStatus::kOk:
      return "ok";
    case VerdictStatus::kUnparsable:
      return "unparsable";
    case VerdictStatus::kInvalid:
      return "invalid";
    case VerdictStatus::kTimeout:
      return "timeout";
    case VerdictStatus::kSkipped:
      return "skipped";
  }
  return "";
}

bool ParseVerdictStatusName(absl::string_view name,
                            VerdictStatus* status) noexcept {
  for (VerdictStatus candidate : kAllVerdictStatuses) {
    if (name == VerdictStatusName(candidate)) {
      *status = candidate;
      return true;
    }
  }
  return false;
}

ParsedVerdict ParseVerdict(absl::string_view genrm_output,
                           int num_steps) noexcept {
  constexpr ParsedVerdict kUnparsable{VerdictStatus::kUnparsable, -1};
  constexpr ParsedVerdict kInvalid{VerdictStatus::kInvalid, -1};
  const size_t name_end = FindLastBoxCommand(genrm_output);
  if (name_end == absl::string_view::npos) return kUnparsable;
  absl::string_view content;
  if (!ExtractBoxContent(genrm_output, name_end, &content)) return kUnparsable;
  int64_t index = 0;
  if (ParseIndex(PeelWrappers(content), &index) != IntegerParse::kValue) {
    return kUnparsable;
  }
  // -1 ("sound") is valid whatever num_steps is; a negative num_steps
  // admits no step index.
  if (index != -1 && (index < 0 || index >= num_steps)) return kInvalid;
  return ParsedVerdict{VerdictStatus::kOk, static_cast<int>(index)};
}

MajorityVerdict MajorityVote(
    absl::Span<const ParsedVerdict> verdicts) noexcept {
  MajorityVerdict result;
  result.num_samples = static_cast<int>(verdicts.size());
  bool any_invalid = false;
  bool any_ok = false;
  // Quadratic in k, allocation-free: k is a handful of samples.
  for (size_t i = 0; i < verdicts.size(); ++i) {
    if (verdicts[i].status == VerdictStatus::kInvalid) any_invalid = true;
    if (verdicts[i].status != VerdictStatus::kOk) continue;
    const int candidate = verdicts[i].first_error_step;
    int votes = 0;
    for (const ParsedVerdict& other : verdicts) {
      if (other.status == VerdictStatus::kOk &&
          other.first_error_step == candidate) {
        ++votes;
      }
    }
    if (!any_ok || votes > result.num_agreeing ||
        (votes == result.num_agreeing &&
         WinsTie(candidate, result.first_error_step))) {
      result.first_error_step = candidate;
      result.num_agreeing = votes;
    }
    any_ok = true;
  }
  if (any_ok) {
    result.status = VerdictStatus::kOk;
  } else {
    result.status =
        any_invalid ? VerdictStatus::kInvalid : VerdictStatus::kUnparsable;
    result.first_error_step = -1;
    result.num_agreeing = 0;
  }
  return result;
}

double GenrmTrainingReward(const ParsedVerdict& predicted,
                           int true_first_error_step, int num_steps) noexcept {
  if (predicted.status != VerdictStatus::kOk) return -1.0;
  const int predicted_step = predicted.first_error_step;
  if (predicted_step != -1 &&
      (predicted_step < 0 || predicted_step >= num_steps)) {
    return -1.0;
  }
  const bool truly_sound = true_first_error_step < 0;
  if (truly_sound) return predicted_step == -1 ? 1.0 : -1.0;
  if (predicted_step == -1) return -1.0;
  // Here 0 <= predicted_step < num_steps, so num_steps >= 1.
  const double distance = std::abs(predicted_step - true_first_error_step);
  const double process = -std::min(1.0, distance / num_steps);
  return 1.0 + process;
}

}  // namespace fapo::algorithm
