// engine/tokenizer: text <-> token ids for byte-level BPE models (Qwen2,
// Qwen3, Llama 3, GPT-2 style files), read from Hugging Face tokenizer.json,
// and chat formatting. No LibTorch here.
//
//   tokenizer.h            Tokenizer: load tokenizer.json, Encode, Decode
//   bpe_model.h            the BPE merges by rank, with a bounded word cache
//   regex_split.h          the pre-tokenizer regex on PCRE2 (JIT)
//   byte_level.h           the GPT-2 byte <-> unicode table
//   unicode_text.h         UTF-8 repair, NFC (utf8proc), character classes
//   chat_format.h          ChatML / Qwen3 chat template for plain messages
//   character_tokenizer.h  writes a one-symbol-per-byte tokenizer.json
//   tokenizer_test_data.h  (test-only) the Qwen3 tokenizer from testdata/
//   *_test.cc              unit tests; qwen3_reference_test (195 frozen HF
//                          cases); tokenizer_live_test (label "live": HF
//                          and transformers as oracles, fresh seed per run)
//   tokenizer_benchmark.cc encode/decode throughput with Qwen3
//   testdata/              the real Qwen3 tokenizer (tokenizer.json.xz,
//                          tokenizer_config.json), the HF reference ids,
//                          live_reference.py
//
// What is supported, as Hugging Face `tokenizers` 0.23 does it:
//   model             BPE: vocab, merges ("a b" strings or [a, b] pairs),
//                     unk_token/fuse_unk, ignore_merges; dropout null or 0,
//                     byte_fallback false, no subword prefix/suffix
//   normalizer        null, NFC, or a Sequence of NFC
//   pre_tokenizer     ByteLevel (add_prefix_space, use_regex: the GPT-2
//                     pattern), or a Sequence of Split (Regex or String
//                     pattern, behavior Isolated or Removed, invert false)
//                     steps ending in one ByteLevel
//   post_processor    null, ByteLevel, TemplateProcessing (single), or a
//                     Sequence of these; used when add_special_tokens
//   decoder           ByteLevel
//   added_tokens      special or not; lstrip, rstrip, single_word,
//                     normalized; matched longest-first before normalisation
//                     (normalized ones: after it), as HF does
// Anything else is an InvalidArgument error naming the field
// ("pre_tokenizer.pretokenizers[1].type: ..."). Not supported either: HF's
// split_special_tokens (added tokens are always matched), pair encodings,
// offsets, truncation and padding (must be null).
// Character classes come from PCRE2 (Debian 12: Unicode 14) and NFC from
// utf8proc (Unicode 15); HF uses Oniguruma and Rust's tables, so characters
// assigned in very recent Unicode versions could in principle split
// differently (none seen: the live test and spot checks of Unicode 15/16
// letters agree).
#ifndef FAPO_ENGINE_TOKENIZER_TOKENIZER_H_
#define FAPO_ENGINE_TOKENIZER_TOKENIZER_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "engine/tokenizer/bpe_model.h"
#include "engine/tokenizer/regex_split.h"

namespace fapo::engine {

// An entry of tokenizer.json's added_tokens.
struct AddedToken {
  int id = 0;
  std::string content;
  // Special tokens are dropped by Decode(skip_special_tokens=true).
  bool special = false;
  // Whitespace to the left / right of a match becomes part of it.
  bool lstrip = false;
  bool rstrip = false;
  // Matched against normalised text (otherwise against the raw input).
  bool normalized = false;
  // Matches only when not inside a word.
  bool single_word = false;
};

class Tokenizer {
 public:
  // Reads a tokenizer.json. NotFound when the file cannot be read;
  // InvalidArgument (message starts with `path`) when it is not valid JSON
  // or uses something unsupported (see the folder map above).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromFile(
      const std::string& path);
  // The same from the text of a tokenizer.json; `source` names it in
  // error messages.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(
      absl::string_view json_text, absl::string_view source = "<json>");

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Token ids of `text`, identical to HF's
  // Tokenizer.encode(text, add_special_tokens=...).ids. Added and special
  // tokens in the text are always recognised (HF's default). With
  // `add_special_tokens` the post_processor's template is applied (Qwen's
  // files have only ByteLevel there, which adds nothing). Invalid UTF-8 is
  // repaired first (see NOTE [invalid utf-8] in unicode_text.h); never
  // fails. Thread-safe.
  std::vector<int> Encode(absl::string_view text,
                          bool add_special_tokens = false) const;

  // The text of `ids`, as HF's decode: byte-level tokens become their
  // bytes, added tokens their content; byte sequences that are not valid
  // UTF-8 (e.g. a character cut between ids) come out as U+FFFD.
  // InvalidArgument for an id that names no token (HF skips those).
  absl::StatusOr<std::string> Decode(absl::Span<const int> ids,
                                     bool skip_special_tokens = false) const;
  // As Decode, but the raw bytes without the U+FFFD repair: for streaming,
  // where a character may arrive over several calls.
  absl::StatusOr<std::string> DecodeToBytes(
      absl::Span<const int> ids, bool skip_special_tokens = false) const;

  // One more than the largest id (vocabulary and added tokens): the rows an
  // embedding needs. Equals HF's get_vocab_size(with_added_tokens=True)
  // when ids are dense, as they are in real files.
  int vocab_size() const { return vocab_size_; }
  // Added tokens first, then the vocabulary (whose entries are byte-level
  // strings: " hello" is "Ġhello").
  std::optional<int> TokenToId(absl::string_view token) const;
  // The token string (byte-level for vocabulary entries); nullopt when no
  // token has this id.
  std::optional<std::string> IdToToken(int id) const;
  // True for ids of added tokens marked special.
  bool IsSpecialToken(int id) const;
  const std::vector<AddedToken>& added_tokens() const { return added_tokens_; }
  // Whether every pre-tokenizer regex runs JIT-compiled.
  bool regex_jit_compiled() const;

 private:
  struct Impl;
  // A piece of the input after added-token splitting.
  struct Segment {
    absl::string_view text;  // empty when it is an added token
    int added_token_id = -1;
  };

  explicit Tokenizer(std::unique_ptr<Impl> impl);
  void SplitOnAddedTokens(absl::string_view text, bool normalized_tokens,
                          std::vector<Segment>* segments) const;
  void EncodeOrdinaryText(absl::string_view text, std::vector<int>* ids) const;

  std::unique_ptr<Impl> impl_;
  std::vector<AddedToken> added_tokens_;
  int vocab_size_ = 0;
};

}  // namespace fapo::engine

#endif  // FAPO_ENGINE_TOKENIZER_TOKENIZER_H_
