#include "engine/tokenizer/tokenizer_test_data.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "tests/support/subprocess.h"

namespace fapo::engine::testing {

absl::StatusOr<std::string> Qwen3TokenizerJson() {
  static const absl::StatusOr<std::string>* const json = [] {
    const std::string path = fapo::testing::SourcePath(
        "engine/tokenizer/testdata/qwen3_tokenizer/tokenizer.json.xz");
    auto result =
        fapo::testing::RunCommand({"xz", "-dc", path}, absl::Seconds(120));
    if (!result.ok()) {
      return new absl::StatusOr<std::string>(result.status());
    }
    if (result->exit_code != 0) {
      return new absl::StatusOr<std::string>(absl::InternalError(
          absl::StrCat("xz -dc ", path, " exited with ", result->exit_code,
                       ": ", result->stderr_text)));
    }
    return new absl::StatusOr<std::string>(std::move(result->stdout_text));
  }();
  return *json;
}

absl::StatusOr<const Tokenizer*> Qwen3Tokenizer() {
  static const absl::StatusOr<const Tokenizer*>* const tokenizer = [] {
    absl::StatusOr<std::string> json = Qwen3TokenizerJson();
    if (!json.ok()) return new absl::StatusOr<const Tokenizer*>(json.status());
    auto loaded = Tokenizer::FromJson(*json, "qwen3 tokenizer.json");
    if (!loaded.ok()) {
      return new absl::StatusOr<const Tokenizer*>(loaded.status());
    }
    return new absl::StatusOr<const Tokenizer*>(loaded->release());
  }();
  return *tokenizer;
}

}  // namespace fapo::engine::testing
