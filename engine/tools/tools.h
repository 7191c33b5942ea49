// engine/tools: the `fapo` subcommands for people debugging a checkpoint,
// and the embedded default's policy.
//
//   fapo tokenize --tokenizer PATH [--decode]     stdin lines <-> id arrays
//   fapo generate --model DIR --prompt-ids 1,2,3 --max-new-tokens N
//                 [--greedy | --temperature T --top-p P --top-k K --seed S]
//   fapo logprobs --model DIR --ids 1,2,3,...
//   fapo init-model --out DIR [--seed S]         the tiny arith policy
//
// Every command reads and writes JSON, one value per line, so scripts and
// tests can drive it. Any Hugging Face checkpoint of the supported families
// works, not only the tiny model.
#ifndef FAPO_ENGINE_TOOLS_TOOLS_H_
#define FAPO_ENGINE_TOOLS_TOOLS_H_

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/checkpoint/model_config.h"

namespace fapo::engine {

// Each returns the process exit code: 0 success, 1 failure (message on
// `err`), 2 bad usage. `args` exclude the subcommand's name.
int RunTokenizeCommand(const std::vector<std::string>& args, std::istream& in,
                       std::ostream& out, std::ostream& err);
int RunGenerateCommand(const std::vector<std::string>& args, std::ostream& out,
                       std::ostream& err);
int RunLogprobsCommand(const std::vector<std::string>& args, std::ostream& out,
                       std::ostream& err);
int RunInitModelCommand(const std::vector<std::string>& args, std::ostream& out,
                        std::ostream& err);

// The embedded default's policy shape (docs/arith-testbed.md: 3 layers, width
// 64, 4 heads, ~160k parameters), Qwen3-shaped (q/k norms, GQA with 2 KV
// heads, tied embeddings), over the arith tokenizer's 19 ids.
ModelConfig TinyArithModelConfig();

// Writes config.json, model.safetensors (random init from `seed`) and the
// arith tokenizer.json to `directory`, in the Hugging Face layout.
absl::Status WriteTinyArithModel(const std::string& directory, uint64_t seed);

}  // namespace fapo::engine

#endif  // FAPO_ENGINE_TOOLS_TOOLS_H_
