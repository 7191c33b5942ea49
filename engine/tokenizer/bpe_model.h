// Byte-level BPE: a vocabulary of byte-level symbol strings (see
// byte_level.h) and merges applied by rank, exactly as Hugging Face
// `tokenizers` applies them (models/bpe/word.rs: a queue ordered by rank,
// then position; no dropout).
#ifndef FAPO_ENGINE_TOKENIZER_BPE_MODEL_H_
#define FAPO_ENGINE_TOKENIZER_BPE_MODEL_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

namespace fapo::engine {

struct BpeModelConfig {
  // Token (byte-level symbols) -> id. Ids need not be dense.
  absl::flat_hash_map<std::string, int> vocab;
  // Merges, best (rank 0) first: the two tokens that merge into their
  // concatenation. A pair listed twice keeps its later rank, as in HF.
  std::vector<std::pair<std::string, std::string>> merges;
  // Token for bytes whose symbol is not in the vocabulary; without one such
  // bytes are dropped (as HF does when unk_token is null).
  std::optional<std::string> unk_token;
  // Consecutive unknown bytes give one unk token instead of one each.
  bool fuse_unk = false;
  // A word that is a vocabulary entry as a whole becomes that token without
  // merging (Llama 3 sets this).
  bool ignore_merges = false;
};

class BpeModel {
 public:
  // InvalidArgument when a merge names a token (or makes a concatenation)
  // missing from the vocabulary, or the unk token is not in it.
  static absl::StatusOr<std::unique_ptr<BpeModel>> Create(
      BpeModelConfig config);

  BpeModel(const BpeModel&) = delete;
  BpeModel& operator=(const BpeModel&) = delete;

  // Appends the ids of one pre-tokenized word, given as raw bytes (each byte
  // is one byte-level symbol). Thread-safe; results of words shorter than
  // kMaxCachedWordBytes are cached (bounded: the cache is emptied when it
  // holds kCacheCapacity words).
  void Tokenize(absl::string_view word_bytes, std::vector<int>* ids) const;
  // The same for several words in a row, taking the cache's lock once for
  // all of them rather than once per word.
  void TokenizeWords(absl::Span<const absl::string_view> words,
                     std::vector<int>* ids) const;

  std::optional<int> TokenToId(absl::string_view token) const;
  // Nullptr when no token has this id.
  const std::string* IdToToken(int id) const;
  // One more than the largest id; 0 when the vocabulary is empty.
  int id_limit() const { return static_cast<int>(id_to_token_.size()); }
  const absl::flat_hash_map<std::string, int>& vocab() const { return vocab_; }

  static constexpr size_t kCacheCapacity = 1 << 16;
  static constexpr size_t kMaxCachedWordBytes = 256;

 private:
  struct Merge {
    int rank;
    int new_id;
  };

  BpeModel() = default;
  void TokenizeUncached(absl::string_view word_bytes,
                        std::vector<int>* ids) const;
  const Merge* FindMerge(int left, int right) const;

  absl::flat_hash_map<std::string, int> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> id_present_;
  absl::flat_hash_map<uint64_t, Merge> merges_;
  std::array<int, 256> byte_to_id_{};
  std::optional<int> unk_id_;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;

  mutable absl::Mutex cache_mutex_;
  mutable absl::flat_hash_map<std::string, std::vector<int>> cache_
      ABSL_GUARDED_BY(cache_mutex_);
};

}  // namespace fapo::engine

#endif  // FAPO_ENGINE_TOKENIZER_BPE_MODEL_H_
