// The GPT-2 byte <-> unicode table that byte-level BPE vocabularies use.
//
// Every byte 0..255 has one printable code point standing for it: the bytes
// '!'..'~', 0xA1..0xAC and 0xAE..0xFF stand for themselves (as code points),
// the other 68 bytes get U+0100, U+0101, ... in byte order (so ' ' is 'Ġ',
// U+0120, and '\n' is 'Ċ', U+010A). Vocabulary entries in tokenizer.json are
// strings of these code points.
#ifndef FAPO_ENGINE_TOKENIZER_BYTE_LEVEL_H_
#define FAPO_ENGINE_TOKENIZER_BYTE_LEVEL_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace fapo::engine {

// The code point standing for `byte`.
char32_t ByteToCodePoint(uint8_t byte);

// The byte a code point stands for, or nullopt when it is not in the table.
std::optional<uint8_t> CodePointToByte(char32_t code_point);

// Maps every byte of `bytes` to its symbol, UTF-8 encoded.
std::string BytesToByteLevel(absl::string_view bytes);

// The inverse: the bytes a byte-level string stands for; nullopt when
// `symbols` is not valid UTF-8 or has a code point outside the table.
std::optional<std::string> ByteLevelToBytes(absl::string_view symbols);

}  // namespace fapo::engine

#endif  // FAPO_ENGINE_TOKENIZER_BYTE_LEVEL_H_
