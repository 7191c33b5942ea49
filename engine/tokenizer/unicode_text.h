// UTF-8 and Unicode helpers for the tokenizer: strict decoding, repair of
// invalid UTF-8, NFC (through utf8proc) and the character classes that
// Hugging Face's added-token matching uses.
#ifndef FAPO_ENGINE_TOKENIZER_UNICODE_TEXT_H_
#define FAPO_ENGINE_TOKENIZER_UNICODE_TEXT_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace fapo::engine {

// Appends the UTF-8 encoding of `code_point` (which must be a scalar value).
void AppendUtf8(char32_t code_point, std::string* out);

// Decodes the well-formed UTF-8 sequence at `*position` and advances past
// it; nullopt (and `*position` unchanged) when the bytes there are not one
// (overlong forms, surrogates and values above U+10FFFF are ill-formed).
std::optional<char32_t> NextCodePoint(absl::string_view text, size_t* position);

// True when `text` is well-formed UTF-8.
bool IsValidUtf8(absl::string_view text);

// NOTE [invalid utf-8]: Hugging Face tokenizers only take valid strings, so
// the tokenizer repairs its input first, as Python's
// bytes.decode("utf-8", errors="replace") and Rust's String::from_utf8_lossy
// do: each maximal ill-formed subpart (Unicode 15, section 3.9, "U+FFFD
// substitution of maximal subparts") becomes one U+FFFD. Valid text comes
// back unchanged.
std::string RepairUtf8(absl::string_view text);

// Unicode Normalization Form C of valid UTF-8 `text`.
std::string NfcNormalize(absl::string_view text);

// The Unicode White_Space property (what Rust's char::is_whitespace and the
// regex crate's \s test).
bool IsUnicodeWhitespace(char32_t code_point);

// An approximation of the regex crate's \w: letters, marks, decimal digits,
// letter numbers, connector punctuation and ZWNJ/ZWJ.
bool IsWordCharacter(char32_t code_point);

}  // namespace fapo::engine

#endif  // FAPO_ENGINE_TOKENIZER_UNICODE_TEXT_H_
