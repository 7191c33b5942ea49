// Test-only: the Qwen3 tokenizer kept in testdata/ (xz-compressed, so
// testdata stays small in git; `xz -dc` unpacks it at test time).
#ifndef FAPO_ENGINE_TOKENIZER_TOKENIZER_TEST_DATA_H_
#define FAPO_ENGINE_TOKENIZER_TOKENIZER_TEST_DATA_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/tokenizer/tokenizer.h"

namespace fapo::engine::testing {

// The text of testdata/qwen3_tokenizer/tokenizer.json (unpacked once per
// process). Needs $FAPO_SOURCE_DIR and xz on $PATH.
absl::StatusOr<std::string> Qwen3TokenizerJson();

// The Qwen3 Tokenizer, loaded once per process and shared (it is
// thread-safe and immutable).
absl::StatusOr<const Tokenizer*> Qwen3Tokenizer();

}  // namespace fapo::engine::testing

#endif  // FAPO_ENGINE_TOKENIZER_TOKENIZER_TEST_DATA_H_
