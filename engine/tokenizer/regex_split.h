// The regex of a Split (or GPT-2 ByteLevel) pre-tokenizer, run with PCRE2
// (JIT-compiled when the platform has it), in UTF and Unicode-property mode.
//
// Patterns in tokenizer.json are written for Oniguruma, which HF uses; the
// constructs byte-level files use ((?i:...), \p{L}, \p{N}, \s, lookahead)
// mean the same in PCRE2's UCP mode, U+0085 being \s in both (checked in
// regex_split_test and live in tokenizer_live_test), so patterns are passed
// through unchanged.
#ifndef FAPO_ENGINE_TOKENIZER_REGEX_SPLIT_H_
#define FAPO_ENGINE_TOKENIZER_REGEX_SPLIT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fapo::engine {

class RegexSplitter {
 public:
  // `pattern` is a regex (Oniguruma syntax) or, when `literal`, a plain
  // string. InvalidArgument with PCRE2's message when it does not compile.
  static absl::StatusOr<std::unique_ptr<RegexSplitter>> Create(
      absl::string_view pattern, bool literal);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  // Splits valid UTF-8 `text` into the matches and the gaps between them,
  // in order, leaving out empty pieces (HF's "Isolated" behaviour); with
  // `drop_matches` only the gaps ("Removed"). After an empty match the
  // search goes on one character later, as Oniguruma's iterator does.
  // Thread-safe.
  void Split(absl::string_view text, bool drop_matches,
             std::vector<absl::string_view>* pieces) const;

  bool jit_compiled() const { return jit_compiled_; }

 private:
  RegexSplitter() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  bool jit_compiled_ = false;
};

}  // namespace fapo::engine

#endif  // FAPO_ENGINE_TOKENIZER_REGEX_SPLIT_H_
