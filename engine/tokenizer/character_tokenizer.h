// Writes the tokenizer.json of a character-level byte-level BPE: one token
// per distinct byte of an alphabet, no merges, plus special tokens. Both
// Tokenizer and Hugging Face `tokenizers` load it and agree on it (checked
// live in tokenizer_live_test).
#ifndef FAPO_ENGINE_TOKENIZER_CHARACTER_TOKENIZER_H_
#define FAPO_ENGINE_TOKENIZER_CHARACTER_TOKENIZER_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace fapo::engine {

// The arith task's alphabet and the special tokens of the embedded default
// model.
inline constexpr absl::string_view kArithAlphabet = "0123456789+-*=#\n";
std::vector<std::string> ArithSpecialTokens();  // endoftext, im_start, im_end

// Ids: the distinct bytes of `alphabet` in order of first appearance
// (0, 1, ...; a multi-byte character gives one token per byte), then the
// distinct `special_tokens`. Vocabulary entries are byte-level symbols
// ("\n" is "Ċ"); the special tokens are in the vocabulary and in
// added_tokens (special, matched before pre-tokenisation). Pre-tokenizer and
// decoder are ByteLevel (GPT-2 regex, no prefix space); no normalizer.
// Bytes outside the alphabet have no token: encoding drops them, as HF does
// for a BPE without unk_token.
std::string MakeCharacterTokenizerJson(absl::string_view alphabet,
                                       std::vector<std::string> special_tokens);

// MakeCharacterTokenizerJson(kArithAlphabet, ArithSpecialTokens()).
std::string ArithTokenizerJson();

}  // namespace fapo::engine

#endif  // FAPO_ENGINE_TOKENIZER_CHARACTER_TOKENIZER_H_
