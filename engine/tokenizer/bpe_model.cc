#include "engine/tokenizer/bpe_model.h"

#include <queue>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/tokenizer/byte_level.h"

namespace fapo::engine {
namespace {

uint64_t PairKey(int left, int right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
         static_cast<uint32_t>(right);
}

}  // namespace

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::Create(
    BpeModelConfig config) {
  std::unique_ptr<BpeModel> model(new BpeModel);
  int id_limit = 0;
  for (const auto& [token, id] : config.vocab) {
    if (id < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model.vocab: negative id ", id, " for \"", token, "\""));
    }
    id_limit = std::max(id_limit, id + 1);
  }
  model->id_to_token_.resize(id_limit);
  model->id_present_.assign(id_limit, false);
  for (const auto& [token, id] : config.vocab) {
    if (model->id_present_[id]) {
      return absl::InvalidArgumentError(
          absl::StrCat("model.vocab: id ", id, " is used twice (\"",
                       model->id_to_token_[id], "\", \"", token, "\")"));
    }
    model->id_present_[id] = true;
    model->id_to_token_[id] = token;
  }
  for (int byte = 0; byte < 256; ++byte) {
    const auto found =
        config.vocab.find(BytesToByteLevel(std::string(1, char(byte))));
    model->byte_to_id_[byte] = found == config.vocab.end() ? -1 : found->second;
  }
  model->merges_.reserve(config.merges.size());
  for (size_t rank = 0; rank < config.merges.size(); ++rank) {
    const auto& [left, right] = config.merges[rank];
    const auto left_id = config.vocab.find(left);
    const auto right_id = config.vocab.find(right);
    const auto merged_id = config.vocab.find(absl::StrCat(left, right));
    if (left_id == config.vocab.end() || right_id == config.vocab.end() ||
        merged_id == config.vocab.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model.merges[", rank, "]: \"", left, "\" + \"", right,
                       "\" needs tokens missing from model.vocab"));
    }
    // Insert-or-assign: a repeated pair keeps its later rank, as HF's
    // HashMap collection does.
    model->merges_[PairKey(left_id->second, right_id->second)] =
        Merge{static_cast<int>(rank), merged_id->second};
  }
  if (config.unk_token.has_value()) {
    const auto found = config.vocab.find(*config.unk_token);
    if (found == config.vocab.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model.unk_token: \"", *config.unk_token,
                       "\" is not in model.vocab"));
    }
    model->unk_id_ = found->second;
  }
  model->fuse_unk_ = config.fuse_unk;
  model->ignore_merges_ = config.ignore_merges;
  model->vocab_ = std::move(config.vocab);
  return model;
}

std::optional<int> BpeModel::TokenToId(absl::string_view token) const {
  const auto found = vocab_.find(token);
  if (found == vocab_.end()) return std::nullopt;
  return found->second;
}

const std::string* BpeModel::IdToToken(int id) const {
  if (id < 0 || id >= id_limit() || !id_present_[id]) return nullptr;
  return &id_to_token_[id];
}

const BpeModel::Merge* BpeModel::FindMerge(int left, int right) const {
  const auto found = merges_.find(PairKey(left, right));
  return found == merges_.end() ? nullptr : &found->second;
}

void BpeModel::Tokenize(absl::string_view word_bytes,
                        std::vector<int>* ids) const {
  TokenizeWords(absl::MakeConstSpan(&word_bytes, 1), ids);
}

void BpeModel::TokenizeWords(absl::Span<const absl::string_view> words,
                             std::vector<int>* ids) const {
  // Words merged here that the cache should learn: the word and where its
  // ids sit in `ids`.
  struct Miss {
    absl::string_view word;
    size_t first;
    size_t end;
  };
  std::vector<Miss> misses;
  {
    // One reader lock for the whole run: per-word locking cost more than
    // the lookups themselves.
    absl::ReaderMutexLock lock(&cache_mutex_);
    for (absl::string_view word : words) {
      if (word.empty()) continue;
      if (ignore_merges_) {
        const auto found = vocab_.find(BytesToByteLevel(word));
        if (found != vocab_.end()) {
          ids->push_back(found->second);
          continue;
        }
      }
      const bool cacheable = word.size() < kMaxCachedWordBytes;
      if (cacheable) {
        const auto found = cache_.find(word);
        if (found != cache_.end()) {
          ids->insert(ids->end(), found->second.begin(), found->second.end());
          continue;
        }
      }
      const size_t first = ids->size();
      TokenizeUncached(word, ids);
      if (cacheable) misses.push_back(Miss{word, first, ids->size()});
    }
  }
  if (misses.empty()) return;
  absl::MutexLock lock(&cache_mutex_);
  for (const Miss& miss : misses) {
    // Emptying a full cache keeps memory bounded and is cheap; the words
    // that matter come back at once.
    if (cache_.size() >= kCacheCapacity) cache_.clear();
    cache_.emplace(miss.word, std::vector<int>(ids->begin() + miss.first,
                                               ids->begin() + miss.end));
  }
}

void BpeModel::TokenizeUncached(absl::string_view word_bytes,
                                std::vector<int>* ids) const {
  struct Symbol {
    int id;
    int prev;
    int next;
    bool removed;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word_bytes.size());
  const auto add_symbol = [&symbols](int id) {
    const int index = static_cast<int>(symbols.size());
    if (index > 0) symbols.back().next = index;
    symbols.push_back(Symbol{id, index - 1, -1, false});
  };
  // Unknown bytes: HF's merge_word, without subword prefixes (rejected at
  // load time). `pending_unk` is an unk symbol not yet added.
  bool pending_unk = false;
  for (char byte : word_bytes) {
    const int id = byte_to_id_[static_cast<uint8_t>(byte)];
    if (id >= 0) {
      if (pending_unk) add_symbol(*unk_id_);
      pending_unk = false;
      add_symbol(id);
    } else if (unk_id_.has_value()) {
      if (pending_unk && !fuse_unk_) add_symbol(*unk_id_);
      pending_unk = true;
    }
  }
  if (pending_unk) add_symbol(*unk_id_);

  struct QueuedMerge {
    int position;
    int rank;
    int new_id;
  };
  // Lowest rank first, then leftmost.
  const auto worse = [](const QueuedMerge& a, const QueuedMerge& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.position > b.position;
  };
  std::vector<QueuedMerge> storage;
  storage.reserve(symbols.size());
  std::priority_queue<QueuedMerge, std::vector<QueuedMerge>, decltype(worse)>
      queue(worse, std::move(storage));
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (const Merge* merge = FindMerge(symbols[i].id, symbols[i + 1].id)) {
      queue.push(QueuedMerge{static_cast<int>(i), merge->rank, merge->new_id});
    }
  }
  while (!queue.empty()) {
    const QueuedMerge top = queue.top();
    queue.pop();
    Symbol& current = symbols[top.position];
    if (current.removed || current.next < 0) continue;
    const int next_position = current.next;
    const Symbol right = symbols[next_position];
    // Entries go stale when a neighbour merged first; HF checks only that
    // the pair still makes the same token.
    const Merge* merge = FindMerge(current.id, right.id);
    if (merge == nullptr || merge->new_id != top.new_id) continue;
    current.id = top.new_id;
    current.next = right.next;
    symbols[next_position].removed = true;
    if (right.next >= 0) symbols[right.next].prev = top.position;
    if (current.prev >= 0) {
      if (const Merge* left_merge =
              FindMerge(symbols[current.prev].id, current.id)) {
        queue.push(
            QueuedMerge{current.prev, left_merge->rank, left_merge->new_id});
      }
    }
    if (current.next >= 0) {
      if (const Merge* right_merge =
              FindMerge(current.id, symbols[current.next].id)) {
        queue.push(
            QueuedMerge{top.position, right_merge->rank, right_merge->new_id});
      }
    }
  }
  for (const Symbol& symbol : symbols) {
    if (!symbol.removed) ids->push_back(symbol.id);
  }
}

}  // namespace fapo::engine
