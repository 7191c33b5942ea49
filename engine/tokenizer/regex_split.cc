#include "engine/tokenizer/regex_split.h"

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace fapo::engine {
namespace {

constexpr size_t kJitStackStartBytes = 32 * 1024;
constexpr size_t kJitStackMaxBytes = 4 * 1024 * 1024;

// One JIT stack per thread: a stack must not be shared by concurrent
// matches, and long whitespace runs need more than PCRE2's default 32 KiB.
pcre2_jit_stack* ThreadJitStack(void*) {
  struct Holder {
    pcre2_jit_stack* stack = nullptr;
    ~Holder() {
      if (stack != nullptr) pcre2_jit_stack_free(stack);
    }
  };
  thread_local Holder holder;
  if (holder.stack == nullptr) {
    holder.stack =
        pcre2_jit_stack_create(kJitStackStartBytes, kJitStackMaxBytes, nullptr);
  }
  return holder.stack;
}

size_t Utf8SequenceLength(uint8_t lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

}  // namespace

struct RegexSplitter::Impl {
  pcre2_code* code = nullptr;
  pcre2_match_context* match_context = nullptr;
  ~Impl() {
    if (match_context != nullptr) pcre2_match_context_free(match_context);
    if (code != nullptr) pcre2_code_free(code);
  }
};

absl::StatusOr<std::unique_ptr<RegexSplitter>> RegexSplitter::Create(
    absl::string_view pattern, bool literal) {
  std::unique_ptr<RegexSplitter> splitter(new RegexSplitter);
  splitter->impl_ = std::make_unique<Impl>();
  // PCRE2 refuses UCP together with LITERAL (it would mean nothing there).
  const uint32_t options =
      literal ? PCRE2_UTF | PCRE2_LITERAL : PCRE2_UTF | PCRE2_UCP;
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  splitter->impl_->code = pcre2_compile(
      reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options,
      &error_code, &error_offset, nullptr);
  if (splitter->impl_->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    return absl::InvalidArgumentError(absl::StrCat(
        "regex \"", pattern, "\" does not compile (PCRE2, at offset ",
        error_offset, "): ", reinterpret_cast<const char*>(message)));
  }
  splitter->jit_compiled_ =
      pcre2_jit_compile(splitter->impl_->code, PCRE2_JIT_COMPLETE) == 0;
  splitter->impl_->match_context = pcre2_match_context_create(nullptr);
  if (splitter->jit_compiled_) {
    pcre2_jit_stack_assign(splitter->impl_->match_context, ThreadJitStack,
                           nullptr);
  }
  return splitter;
}

RegexSplitter::~RegexSplitter() = default;

void RegexSplitter::Split(absl::string_view text, bool drop_matches,
                          std::vector<absl::string_view>* pieces) const {
  if (text.empty()) return;
  pcre2_match_data* match_data =
      pcre2_match_data_create_from_pattern(impl_->code, nullptr);
  const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t gap_start = 0;
  size_t search_from = 0;
  while (search_from <= text.size()) {
    // pcre2_jit_match skips pcre2_match's checks: the subject is valid UTF-8
    // (the tokenizer repairs its input) and the options are fixed.
    int result =
        jit_compiled_
            ? pcre2_jit_match(impl_->code, subject, text.size(), search_from, 0,
                              match_data, impl_->match_context)
            : pcre2_match(impl_->code, subject, text.size(), search_from,
                          PCRE2_NO_UTF_CHECK, match_data, impl_->match_context);
    if (result < 0 && result != PCRE2_ERROR_NOMATCH) {
      // The JIT stack ran out (or another resource limit): the interpreter
      // keeps its backtracking state on the heap instead.
      result = pcre2_match(impl_->code, subject, text.size(), search_from,
                           PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, match_data,
                           impl_->match_context);
    }
    // No (further) match, or still an error: the rest is one gap.
    if (result < 0) break;
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match_data);
    const size_t match_start = ovector[0];
    const size_t match_end = ovector[1];
    if (match_start > gap_start) {
      pieces->push_back(text.substr(gap_start, match_start - gap_start));
    }
    if (match_end > match_start && !drop_matches) {
      pieces->push_back(text.substr(match_start, match_end - match_start));
    }
    gap_start = std::max(gap_start, match_end);
    if (match_end > match_start) {
      search_from = match_end;
    } else if (match_end >= text.size()) {
      break;
    } else {
      search_from =
          match_end + Utf8SequenceLength(static_cast<uint8_t>(text[match_end]));
    }
  }
  if (gap_start < text.size()) pieces->push_back(text.substr(gap_start));
  pcre2_match_data_free(match_data);
}

}  // namespace fapo::engine
