#include "tasks/math/verifier.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <numeric>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace fapo::tasks::math {
namespace {

// Recursion caps. Model output is untrusted: a response of a million '{'
// must neither overflow the stack nor take quadratic time, so every
// recursive step below is bounded and deeper input is kept verbatim.
constexpr int kMaxGroupDepth = 32;      // nested {...} rewritten recursively
constexpr int kMaxStructureDepth = 16;  // nested tuples and lists
constexpr int kMaxFracDepth = 8;        // nested \frac read as one number
constexpr int kMaxPeelRounds = 16;      // rounds of step 2 in the header

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}
bool IsLetter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool IsOneOf(absl::string_view word,
             std::initializer_list<absl::string_view> words) {
  return std::find(words.begin(), words.end(), word) != words.end();
}

// Length of the UTF-8 sequence that starts with `lead`, 1 for ASCII and for
// stray continuation bytes (so garbage still advances).
size_t Utf8Length(unsigned char lead) {
  if (lead >= 0xF0 && lead <= 0xF7) return 4;
  if (lead >= 0xE0) return lead <= 0xEF ? 3 : 1;
  if (lead >= 0xC0) return 2;
  return 1;
}

// ---------------------------------------------------------------------------
// Extraction.

constexpr absl::string_view kBoxCommands[] = {"\\boxed", "\\fbox"};

// Matching (open, close) brace positions, sorted by open. Escaped braces and
// the character after any backslash are skipped. One linear pass, so looking
// up many boxes stays linear overall.
std::vector<std::pair<size_t, size_t>> MatchBraces(absl::string_view text) {
  std::vector<size_t> open_stack;
  std::vector<std::pair<size_t, size_t>> pairs;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\\') {
      ++i;
    } else if (c == '{') {
      open_stack.push_back(i);
    } else if (c == '}' && !open_stack.empty()) {
      pairs.emplace_back(open_stack.back(), i);
      open_stack.pop_back();
    }
  }
  std::sort(pairs.begin(), pairs.end());
  return pairs;
}

}  // namespace

// NOTE [answer line]: DAPO-Math-17k's prompts ask for the final answer on
// its own line as "Answer: ..." rather than in a box, so a response without
// any box falls back to the last "Answer:" (any case, spaces allowed before
// the colon, markdown emphasis around it): the rest of that line.
namespace {

std::optional<std::string> ExtractAnswerLine(absl::string_view response) {
  const std::string lower = absl::AsciiStrToLower(response);
  auto is_padding = [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '*';
  };
  size_t at = lower.size();
  while (at > 0) {
    at = lower.rfind("answer", at - 1);
    if (at == std::string::npos) return std::nullopt;
    size_t colon = at + 6;
    while (colon < lower.size() && is_padding(lower[colon])) ++colon;
    if (colon >= lower.size() || lower[colon] != ':') continue;
    size_t begin = colon + 1;
    size_t end = response.find('\n', begin);
    if (end == absl::string_view::npos) end = response.size();
    while (begin < end && is_padding(response[begin])) ++begin;
    while (end > begin && is_padding(response[end - 1])) --end;
    if (begin == end) return std::nullopt;
    return std::string(response.substr(begin, end - begin));
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> ExtractFinalAnswer(absl::string_view response) {
  constexpr size_t kNone = absl::string_view::npos;
  const size_t size = response.size();
  std::optional<std::vector<std::pair<size_t, size_t>>> braces;
  // The argument of the last top-level box so far; an empty view stands for
  // "that box had no usable argument".
  std::optional<absl::string_view> last;
  // Next occurrence of each command at or after `pos`, refreshed only when
  // passed, so a response with many boxes is still scanned linearly.
  size_t next[2] = {response.find(kBoxCommands[0]),
                    response.find(kBoxCommands[1])};
  size_t pos = 0;
  while (true) {
    for (int k = 0; k < 2; ++k) {
      if (next[k] != kNone && next[k] < pos) {
        next[k] = response.find(kBoxCommands[k], pos);
      }
    }
    const int k = next[1] < next[0] ? 1 : 0;
    const size_t start = next[k];
    if (start == kNone) break;
    const size_t after = start + kBoxCommands[k].size();
    if (after < size && IsLetter(response[after])) {  // \boxedfoo
      pos = start + 1;
      continue;
    }
    size_t arg = after;
    while (arg < size && (response[arg] == ' ' || response[arg] == '\t')) {
      ++arg;
    }
    if (arg < size && response[arg] == '{') {
      if (!braces) braces = MatchBraces(response);
      const auto it = std::lower_bound(braces->begin(), braces->end(),
                                       std::pair<size_t, size_t>(arg, 0));
      if (it != braces->end() && it->first == arg) {
        last = response.substr(arg + 1, it->second - arg - 1);
        pos = it->second + 1;  // boxes inside this one are not top-level
      } else {
        last = absl::string_view();  // unclosed: look on inside it
        pos = arg + 1;
      }
    } else {
      // "\boxed 5": a bare token, up to whitespace or '$'.
      size_t end = arg;
      while (end < size && !IsSpace(response[end]) && response[end] != '$') {
        ++end;
      }
      last = response.substr(arg, end - arg);
      pos = std::max(end, after);
    }
  }
  if (!last.has_value()) return ExtractAnswerLine(response);
  const absl::string_view content = absl::StripAsciiWhitespace(*last);
  if (content.empty()) return std::nullopt;
  return std::string(content);
}

namespace {

// ---------------------------------------------------------------------------
// Step 1: LaTeX clean-up, one left-to-right pass with bounded recursion into
// brace groups. Every input byte is consumed once, plus bounded look-ahead.

class LatexRewriter {
 public:
  explicit LatexRewriter(absl::string_view text) : text_(text) {}

  std::string Rewrite() {
    std::string out;
    out.reserve(text_.size());
    RewriteUntil(out, /*depth=*/0, /*closer=*/'\0');
    return out;
  }

 private:
  bool AtEnd() const { return pos_ >= text_.size(); }

  void SkipSpaces() {
    while (!AtEnd() && IsSpace(text_[pos_])) ++pos_;
  }

  // Rewrites until `closer` (consumed, not written) or the end. '\0' = top
  // level. Inside a [...] argument a '}' ends the bracket early (not
  // consumed), so a malformed \sqrt[ cannot swallow its enclosing group.
  void RewriteUntil(std::string& out, int depth, char closer) {
    while (!AtEnd()) {
      const char c = text_[pos_];
      if (closer != '\0' && c == closer) {
        ++pos_;
        return;
      }
      if (closer == ']' && c == '}') return;
      switch (c) {
        case '{':
          if (text_.substr(pos_, 3) == "{,}") {
            out += ',';
            pos_ += 3;
          } else {
            RewriteGroup(out, depth);
          }
          break;
        case '\\':
          RewriteCommand(out, depth);
          break;
        case '$':
        case '%':
          ++pos_;
          break;
        case '~':
          out += ' ';
          ++pos_;
          break;
        case '^':
          if (SkipDegreeMark()) break;
          [[fallthrough]];
        case '_':
          out += c;
          ++pos_;
          RewriteArgument(out, depth);
          break;
        default:
          if (!RewriteUnicode(out)) {
            out += c;
            ++pos_;
          }
      }
    }
  }

  // pos_ at '{'. Appends "{...}" (always closed).
  void RewriteGroup(std::string& out, int depth) {
    if (depth >= kMaxGroupDepth) {
      CopyGroupVerbatim(out);
      return;
    }
    ++pos_;
    out += '{';
    RewriteUntil(out, depth + 1, '}');
    out += '}';
  }

  // pos_ at '{'. Copies through the matching '}' without rewriting; closes
  // the group if the input ends first.
  void CopyGroupVerbatim(std::string& out) {
    int open = 0;
    while (!AtEnd()) {
      const char c = text_[pos_++];
      out += c;
      if (c == '\\' && !AtEnd()) {
        out += text_[pos_++];
      } else if (c == '{') {
        ++open;
      } else if (c == '}' && --open == 0) {
        return;
      }
    }
    out.append(static_cast<size_t>(std::max(open, 0)), '}');
  }

  // Appends one macro argument, always braced: "{...}" for a group, "{x}"
  // for a bare character, "{\pi}" for a bare control word. False (nothing
  // consumed but spaces) when no argument follows.
  bool RewriteArgument(std::string& out, int depth) {
    SkipSpaces();
    if (AtEnd()) return false;
    const char c = text_[pos_];
    if (c == '{') {
      RewriteGroup(out, depth);
      return true;
    }
    if (c == '\\') {
      if (pos_ + 1 >= text_.size()) return false;
      size_t end = pos_ + 1;
      while (end < text_.size() && IsLetter(text_[end])) ++end;
      if (end == pos_ + 1) ++end;  // a control symbol: one character
      absl::StrAppend(&out, "{", text_.substr(pos_, end - pos_), "}");
      pos_ = end;
      return true;
    }
    if (absl::string_view("}]$%~^_").find(c) != absl::string_view::npos) {
      return false;
    }
    const size_t length = std::min(Utf8Length(static_cast<unsigned char>(c)),
                                   text_.size() - pos_);
    absl::StrAppend(&out, "{", text_.substr(pos_, length), "}");
    pos_ += length;
    return true;
  }

  // pos_ at '\\'.
  void RewriteCommand(std::string& out, int depth) {
    if (pos_ + 1 >= text_.size()) {
      out += '\\';
      ++pos_;
      return;
    }
    const char next = text_[pos_ + 1];
    if (!IsLetter(next)) {
      pos_ += 2;
      switch (next) {
        case ',':
        case '!':
        case ';':
        case ':':
        case ' ':
        case '\t':
        case '\n':
        case '\r':
          out += ' ';
          return;
        case '%':
        case '$':
        case '(':
        case ')':
        case '[':
        case ']':
          return;
        default:
          out += '\\';
          out += next;
          return;
      }
    }
    size_t end = pos_ + 1;
    while (end < text_.size() && IsLetter(text_[end])) ++end;
    const absl::string_view word = text_.substr(pos_ + 1, end - pos_ - 1);
    pos_ = end;

    if (IsOneOf(word, {"left", "right"})) {
      if (!AtEnd() && text_[pos_] == '.') ++pos_;  // invisible delimiter
      return;
    }
    if (IsOneOf(word, {"big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl",
                       "Bigr", "biggl", "biggr", "Biggl", "Biggr", "middle",
                       "displaystyle", "textstyle", "scriptstyle"})) {
      return;
    }
    if (IsOneOf(word,
                {"quad", "qquad", "thinspace", "medspace", "thickspace",
                 "enspace", "negthinspace", "negmedspace", "negthickspace"})) {
      out += ' ';
      return;
    }
    if (IsOneOf(word,
                {"text", "textbf", "textit", "textrm", "textup", "textnormal",
                 "textsf", "texttt", "mathrm", "mathbf", "mathit", "mathsf",
                 "mathtt", "mathnormal", "mbox", "hbox", "boxed", "fbox"})) {
      std::string argument;
      if (RewriteArgument(argument, depth) && argument.size() >= 2) {
        out.append(argument, 1, argument.size() - 2);
      }
      return;
    }
    if (IsOneOf(word, {"cdot", "times"})) {
      out += '*';
      return;
    }
    if (word == "lt" || word == "gt") {
      out += word == "lt" ? '<' : '>';
      return;
    }
    absl::string_view canonical = word;
    if (IsOneOf(word, {"dfrac", "tfrac"})) canonical = "frac";
    if (IsOneOf(word, {"dbinom", "tbinom"})) canonical = "binom";
    if (IsOneOf(word, {"le", "leqslant"})) canonical = "leq";
    if (IsOneOf(word, {"ge", "geqslant"})) canonical = "geq";
    if (word == "ne") canonical = "neq";
    if (word == "varnothing") canonical = "emptyset";
    absl::StrAppend(&out, "\\", canonical);

    if (canonical == "frac" || canonical == "binom") {
      RewriteArgument(out, depth);
      RewriteArgument(out, depth);
    } else if (canonical == "sqrt") {
      SkipSpaces();
      if (!AtEnd() && text_[pos_] == '[' && depth < kMaxGroupDepth) {
        ++pos_;
        out += '[';
        RewriteUntil(out, depth + 1, ']');
        out += ']';
      }
      RewriteArgument(out, depth);
    }
  }

  // pos_ at '^'. Skips "^\circ" or "^{\circ}" (spaces allowed) and returns
  // true; otherwise consumes nothing.
  bool SkipDegreeMark() {
    const size_t size = text_.size();
    auto skip_spaces = [&](size_t i) {
      while (i < size && IsSpace(text_[i])) ++i;
      return i;
    };
    auto circ_at = [&](size_t i) {
      return text_.substr(i, 5) == "\\circ" &&
             (i + 5 >= size || !IsLetter(text_[i + 5]));
    };
    size_t i = skip_spaces(pos_ + 1);
    if (circ_at(i)) {
      pos_ = i + 5;
      return true;
    }
    if (i < size && text_[i] == '{') {
      i = skip_spaces(i + 1);
      if (!circ_at(i)) return false;
      i = skip_spaces(i + 5);
      if (i < size && text_[i] == '}') {
        pos_ = i + 1;
        return true;
      }
    }
    return false;
  }

  // Maps the few non-ASCII characters models write in answers. A control word
  // produced here gets a trailing space so a following letter cannot extend
  // it; step 1's space compression drops that space when not needed.
  bool RewriteUnicode(std::string& out) {
    struct Mapping {
      absl::string_view utf8;
      absl::string_view replacement;
    };
    static constexpr Mapping kMappings[] = {
        {"\xE2\x88\x92", "-"},         // U+2212 minus sign
        {"\xCF\x80", "\\pi "},         // U+03C0 pi
        {"\xE2\x88\x9E", "\\infty "},  // U+221E infinity
        {"\xC2\xB0", ""},              // U+00B0 degree sign
        {"\xC3\x97", "*"},             // U+00D7 multiplication sign
        {"\xC2\xB7", "*"},             // U+00B7 middle dot
        {"\xE2\x8B\x85", "*"},         // U+22C5 dot operator
        {"\xE2\x89\xA4", "\\leq "},    // U+2264
        {"\xE2\x89\xA5", "\\geq "},    // U+2265
        {"\xC2\xA0", " "},             // U+00A0 no-break space
        {"\xE2\x80\x89", " "},         // U+2009 thin space
        {"\xE2\x80\xAF", " "},         // U+202F narrow no-break space
    };
    if (static_cast<unsigned char>(text_[pos_]) < 0x80) return false;
    const absl::string_view rest = text_.substr(pos_);
    for (const Mapping& mapping : kMappings) {
      if (absl::StartsWith(rest, mapping.utf8)) {
        out.append(mapping.replacement.data(), mapping.replacement.size());
        pos_ += mapping.utf8.size();
        return true;
      }
    }
    return false;
  }

  absl::string_view text_;
  size_t pos_ = 0;
};

// Drops whitespace, except one space between a control word and a letter
// ("\pi r" must not become "\pir"). Tracks "ends with a control word" as a
// state instead of scanning back, so it stays linear.
std::string CompressSpaces(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool after_backslash = false;  // last char is an unescaped backslash
  bool in_control_word = false;  // out ends with \ followed by letters
  auto append = [&](char c) {
    out += c;
    const bool letter = IsLetter(c);
    in_control_word = letter && (after_backslash || in_control_word);
    after_backslash = c == '\\' && !after_backslash;
  };
  size_t i = 0;
  while (i < text.size()) {
    if (!IsSpace(text[i])) {
      append(text[i++]);
      continue;
    }
    while (i < text.size() && IsSpace(text[i])) ++i;
    if (i < text.size() && IsLetter(text[i]) && in_control_word) append(' ');
  }
  return out;
}

// ---------------------------------------------------------------------------
// Brackets, shared by steps 2 and 4. '\\' escapes the next character, so
// "\{" is not a brace.

bool IsOpener(char c) { return c == '(' || c == '[' || c == '{'; }
bool IsCloser(char c) { return c == ')' || c == ']' || c == '}'; }

// Index where the bracket opened at text[0] closes, counting all bracket
// kinds alike (intervals mix them), or npos.
size_t MatchingCloser(absl::string_view text) {
  int depth = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\\') {
      ++i;
    } else if (IsOpener(c)) {
      ++depth;
    } else if (IsCloser(c) && --depth == 0) {
      return i;
    }
  }
  return absl::string_view::npos;
}

// Splits on commas outside any bracket.
std::vector<absl::string_view> SplitTopLevelCommas(absl::string_view text) {
  std::vector<absl::string_view> parts;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\\') {
      ++i;
    } else if (IsOpener(c)) {
      ++depth;
    } else if (IsCloser(c)) {
      --depth;
    } else if (c == ',' && depth == 0) {
      parts.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  parts.push_back(text.substr(start));
  return parts;
}

// ---------------------------------------------------------------------------
// Step 2: peeling.

bool IsGreekLetter(absl::string_view word) {
  return IsOneOf(
      word, {"alpha",  "beta",  "gamma",   "delta",    "epsilon", "varepsilon",
             "zeta",   "eta",   "theta",   "vartheta", "iota",    "kappa",
             "lambda", "mu",    "nu",      "xi",       "pi",      "rho",
             "sigma",  "tau",   "upsilon", "phi",      "varphi",  "chi",
             "psi",    "omega", "Gamma",   "Delta",    "Theta",   "Lambda",
             "Xi",     "Pi",    "Sigma",   "Phi",      "Psi",     "Omega"});
}

// One letter or Greek letter command, optionally with a braced subscript of
// letters and digits (step 1 braces every subscript): x, x_{1}, \theta.
bool IsSingleVariable(absl::string_view text) {
  size_t i = 0;
  if (!text.empty() && IsLetter(text[0])) {
    i = 1;
  } else if (!text.empty() && text[0] == '\\') {
    i = 1;
    while (i < text.size() && IsLetter(text[i])) ++i;
    if (!IsGreekLetter(text.substr(1, i - 1))) return false;
  } else {
    return false;
  }
  if (i == text.size()) return true;
  if (!absl::StartsWith(text.substr(i), "_{") || text.back() != '}') {
    return false;
  }
  const absl::string_view subscript = text.substr(i + 2, text.size() - i - 3);
  return !subscript.empty() &&
         std::all_of(subscript.begin(), subscript.end(),
                     [](char c) { return IsLetter(c) || IsDigit(c); });
}

void Peel(std::string& text) {
  for (int round = 0; round < kMaxPeelRounds; ++round) {
    const size_t size_before = text.size();
    while (!text.empty() && (text.back() == '.' || text.back() == ' ')) {
      text.pop_back();
    }
    if (text.size() >= 2 && text.front() == '{' && text.back() == '}' &&
        MatchingCloser(text) == text.size() - 1) {
      text = text.substr(1, text.size() - 2);
    }
    const size_t equals = text.find('=');
    if (equals != std::string::npos && equals + 1 < text.size() &&
        text.find('=', equals + 1) == std::string::npos &&
        IsSingleVariable(absl::string_view(text).substr(0, equals))) {
      text.erase(0, equals + 1);
    }
    if (text.size() == size_before) return;
  }
}

// ---------------------------------------------------------------------------
// Step 3: "1,234,567.5" -> "1234567.5" when the whole answer is one such
// number.

void DropThousandsSeparators(std::string& text) {
  size_t i = 0;
  if (i < text.size() && (text[i] == '-' || text[i] == '+')) ++i;
  const size_t first_digit = i;
  while (i < text.size() && IsDigit(text[i])) ++i;
  if (i == first_digit || i - first_digit > 3) return;
  int groups = 0;
  while (i + 3 < text.size() && text[i] == ',' && IsDigit(text[i + 1]) &&
         IsDigit(text[i + 2]) && IsDigit(text[i + 3])) {
    i += 4;
    ++groups;
  }
  if (groups == 0) return;
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && IsDigit(text[i])) ++i;
  }
  if (i != text.size()) return;
  text.erase(std::remove(text.begin(), text.end(), ','), text.end());
}

// ---------------------------------------------------------------------------
// Step 5: exact rationals on int64.

struct Rational {
  int64_t numerator = 0;
  int64_t denominator = 1;  // > 0, gcd(|numerator|, denominator) == 1
};

constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();

// Reduces num/den; nullopt on a zero denominator or INT64_MIN (whose
// absolute value does not fit).
std::optional<Rational> MakeRational(int64_t numerator, int64_t denominator) {
  if (denominator == 0 || numerator == kInt64Min || denominator == kInt64Min) {
    return std::nullopt;
  }
  if (denominator < 0) {
    numerator = -numerator;
    denominator = -denominator;
  }
  const int64_t divisor = std::gcd(numerator, denominator);
  return Rational{numerator / divisor, denominator / divisor};
}

std::optional<Rational> Negate(const Rational& value) {
  if (value.numerator == kInt64Min) return std::nullopt;
  return Rational{-value.numerator, value.denominator};
}

// a / b, cross-reducing first so that only results that do not fit overflow.
std::optional<Rational> Divide(const Rational& a, const Rational& b) {
  if (b.numerator == 0) return std::nullopt;
  const int64_t numerators_gcd = std::gcd(a.numerator, b.numerator);
  const int64_t denominators_gcd = std::gcd(a.denominator, b.denominator);
  int64_t numerator = 0;
  int64_t denominator = 0;
  if (__builtin_mul_overflow(a.numerator / numerators_gcd,
                             b.denominator / denominators_gcd, &numerator) ||
      __builtin_mul_overflow(a.denominator / denominators_gcd,
                             b.numerator / numerators_gcd, &denominator)) {
    return std::nullopt;
  }
  return MakeRational(numerator, denominator);
}

// Unsigned decimal at text[pos]: "12", "1.5", ".5", "3.", "3.000".
std::optional<Rational> ParseDecimal(absl::string_view text, size_t& pos) {
  int64_t numerator = 0;
  int64_t denominator = 1;
  bool any_digit = false;
  while (pos < text.size() && IsDigit(text[pos])) {
    if (__builtin_mul_overflow(numerator, 10, &numerator) ||
        __builtin_add_overflow(numerator, text[pos] - '0', &numerator)) {
      return std::nullopt;
    }
    any_digit = true;
    ++pos;
  }
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    const size_t fraction_start = pos;
    while (pos < text.size() && IsDigit(text[pos])) ++pos;
    absl::string_view fraction =
        text.substr(fraction_start, pos - fraction_start);
    any_digit = any_digit || !fraction.empty();
    // Trailing zeros carry no value; dropping them keeps "3.000...0" in range.
    while (!fraction.empty() && fraction.back() == '0') {
      fraction.remove_suffix(1);
    }
    for (const char digit : fraction) {
      if (__builtin_mul_overflow(numerator, 10, &numerator) ||
          __builtin_add_overflow(numerator, digit - '0', &numerator) ||
          __builtin_mul_overflow(denominator, 10, &denominator)) {
        return std::nullopt;
      }
    }
  }
  if (!any_digit) return std::nullopt;
  return MakeRational(numerator, denominator);
}

// [sign] ( \frac{value}{value} | decimal [ '/' [sign] decimal ] )
std::optional<Rational> ParseValue(absl::string_view text, size_t& pos,
                                   int depth) {
  bool negative = false;
  if (pos < text.size() && (text[pos] == '-' || text[pos] == '+')) {
    negative = text[pos] == '-';
    ++pos;
  }
  std::optional<Rational> value;
  if (absl::StartsWith(text.substr(pos), "\\frac{")) {
    if (depth >= kMaxFracDepth) return std::nullopt;
    pos += 6;
    const std::optional<Rational> numerator = ParseValue(text, pos, depth + 1);
    if (!numerator || text.substr(pos, 2) != "}{") return std::nullopt;
    pos += 2;
    const std::optional<Rational> denominator =
        ParseValue(text, pos, depth + 1);
    if (!denominator || pos >= text.size() || text[pos] != '}') {
      return std::nullopt;
    }
    ++pos;
    value = Divide(*numerator, *denominator);
  } else {
    value = ParseDecimal(text, pos);
    if (value && pos < text.size() && text[pos] == '/') {
      ++pos;
      bool negative_denominator = false;
      if (pos < text.size() && (text[pos] == '-' || text[pos] == '+')) {
        negative_denominator = text[pos] == '-';
        ++pos;
      }
      std::optional<Rational> denominator = ParseDecimal(text, pos);
      if (denominator && negative_denominator) {
        denominator = Negate(*denominator);
      }
      if (!denominator) return std::nullopt;
      value = Divide(*value, *denominator);
    }
  }
  if (!value) return std::nullopt;
  return negative ? Negate(*value) : value;
}

std::optional<Rational> ParseNumber(absl::string_view text) {
  size_t pos = 0;
  std::optional<Rational> value = ParseValue(text, pos, /*depth=*/0);
  if (!value || pos != text.size()) return std::nullopt;
  return value;
}

std::string RenderRational(const Rational& value) {
  if (value.denominator == 1) return absl::StrCat(value.numerator);
  return absl::StrCat(value.numerator, "/", value.denominator);
}

// ---------------------------------------------------------------------------
// Step 4: structure, then numbers at the leaves.

std::string Canonicalize(absl::string_view text, int depth);

std::string CanonicalizeList(absl::string_view text, int depth) {
  std::string out;
  bool first = true;
  for (const absl::string_view part : SplitTopLevelCommas(text)) {
    if (!first) out += ',';
    first = false;
    out += Canonicalize(part, depth);
  }
  return out;
}

std::string Canonicalize(absl::string_view text, int depth) {
  if (depth >= kMaxStructureDepth) return std::string(text);
  if (text.size() >= 2 && (text.front() == '(' || text.front() == '[') &&
      (text.back() == ')' || text.back() == ']') &&
      MatchingCloser(text) == text.size() - 1) {
    return absl::StrCat(
        text.substr(0, 1),
        CanonicalizeList(text.substr(1, text.size() - 2), depth + 1),
        text.substr(text.size() - 1));
  }
  if (SplitTopLevelCommas(text).size() > 1) {
    return CanonicalizeList(text, depth + 1);
  }
  if (const std::optional<Rational> number = ParseNumber(text)) {
    return RenderRational(*number);
  }
  return std::string(text);
}

}  // namespace

std::string NormalizeAnswer(absl::string_view answer) {
  std::string text = CompressSpaces(LatexRewriter(answer).Rewrite());
  Peel(text);
  DropThousandsSeparators(text);
  return Canonicalize(text, /*depth=*/0);
}

bool AnswersEqual(absl::string_view predicted, absl::string_view ground_truth) {
  const std::string canonical_predicted = NormalizeAnswer(predicted);
  return !canonical_predicted.empty() &&
         canonical_predicted == NormalizeAnswer(ground_truth);
}

bool IsCorrectResponse(absl::string_view response,
                       absl::string_view ground_truth) {
  const std::optional<std::string> answer = ExtractFinalAnswer(response);
  return answer.has_value() && AnswersEqual(*answer, ground_truth);
}

}  // namespace fapo::tasks::math
