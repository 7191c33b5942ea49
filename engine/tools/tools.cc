#include "engine/tools/tools.h"

#include <torch/torch.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/model/model.h"
#include "engine/tokenizer/character_tokenizer.h"
#include "engine/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"
#include "services/flags/flags.h"
#include "services/status/status_macros.h"

namespace fapo::engine {
namespace {

// Parses "1,2,3" (spaces allowed) into ids; errors name the flag and item.
absl::StatusOr<std::vector<int>> ParseIds(absl::string_view text,
                                          absl::string_view flag) {
  std::vector<int> ids;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    item = absl::StripAsciiWhitespace(item);
    int id;
    if (!absl::SimpleAtoi(item, &id) || id < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--", flag, ": expected comma-separated token ids, got '", item,
          "'"));
    }
    ids.push_back(id);
  }
  if (ids.empty() || text.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " is empty"));
  }
  return ids;
}

// Shared by every command: parse flags, print help or a usage error.
// Returns -1 to go on, else the exit code.
int ParseOrExit(flags::FlagSet& flags, const std::vector<std::string>& args,
                const char* name, std::ostream& out, std::ostream& err) {
  absl::Status parsed = flags.Parse(args);
  if (flags.help_requested()) {
    out << flags.Usage();
    return 0;
  }
  if (!parsed.ok()) {
    err << name << ": " << parsed.message() << "\n";
    return 2;
  }
  return -1;
}

int Fail(const char* name, const absl::Status& status, std::ostream& err) {
  err << name << ": " << status.message() << "\n";
  return 1;
}

}  // namespace

int RunTokenizeCommand(const std::vector<std::string>& args, std::istream& in,
                       std::ostream& out, std::ostream& err) {
  std::string path;
  bool decode = false;
  bool add_special_tokens = false;
  flags::FlagSet flags(
      "fapo tokenize",
      "Encodes each line of stdin (a JSON string) and prints its ids as a "
      "JSON array, one line per input; with --decode, reads JSON arrays of "
      "ids and prints the decoded texts as JSON strings.");
  flags.String("tokenizer", &path, "PATH", "a tokenizer.json (required)");
  flags.Bool("decode", &decode, "ids to text instead of text to ids");
  flags.Bool("add-special-tokens", &add_special_tokens,
             "apply the tokenizer's post-processor when encoding");
  if (int code = ParseOrExit(flags, args, "fapo tokenize", out, err);
      code >= 0) {
    return code;
  }
  if (path.empty()) {
    err << "fapo tokenize: --tokenizer is required\n";
    return 2;
  }
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      Tokenizer::FromFile(path);
  if (!tokenizer.ok()) return Fail("fapo tokenize", tokenizer.status(), err);

  std::string line;
  int line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    nlohmann::json value = nlohmann::json::parse(line, nullptr, false);
    if (decode) {
      if (!value.is_array()) {
        err << "fapo tokenize: stdin line " << line_number
            << ": expected a JSON array of ids\n";
        return 1;
      }
      std::vector<int> ids;
      for (const auto& id : value) {
        if (!id.is_number_integer()) {
          err << "fapo tokenize: stdin line " << line_number
              << ": ids must be integers\n";
          return 1;
        }
        ids.push_back(id.get<int>());
      }
      absl::StatusOr<std::string> text = (*tokenizer)->Decode(ids);
      if (!text.ok()) {
        err << "fapo tokenize: stdin line " << line_number << ": "
            << text.status().message() << "\n";
        return 1;
      }
      out << nlohmann::json(*text).dump(
                 -1, ' ', false, nlohmann::json::error_handler_t::replace)
          << "\n";
    } else {
      if (!value.is_string()) {
        err << "fapo tokenize: stdin line " << line_number
            << ": expected a JSON string\n";
        return 1;
      }
      out << nlohmann::json(
                 (*tokenizer)
                     ->Encode(value.get<std::string>(), add_special_tokens))
                 .dump()
          << "\n";
    }
  }
  return 0;
}

int RunGenerateCommand(const std::vector<std::string>& args, std::ostream& out,
                       std::ostream& err) {
  std::string model_dir, prompt_ids, stop_ids;
  int64_t max_new_tokens = 16, top_k = 0, seed = 0;
  bool greedy = false;
  std::string temperature = "1", top_p = "1";
  flags::FlagSet flags(
      "fapo generate",
      "Samples a continuation of one prompt with the KV cache and prints "
      "{\"token_ids\": [...], \"logprobs\": [...], \"finish_reason\": ...} "
      "as JSON. Log-probs are those of the raw model distribution "
      "(temperature 1) at the chosen tokens.");
  flags.String("model", &model_dir, "DIR", "a Hugging Face checkpoint");
  flags.String("prompt-ids", &prompt_ids, "IDS", "comma-separated token ids");
  flags.Int("max-new-tokens", &max_new_tokens, "tokens to generate at most");
  flags.Bool("greedy", &greedy, "argmax decoding (same as --temperature 0)");
  flags.String("temperature", &temperature, "T", "sampling temperature");
  flags.String("top-p", &top_p, "P", "nucleus sampling threshold");
  flags.Int("top-k", &top_k, "keep the k most likely tokens; 0 = off");
  flags.Int("seed", &seed, "sampling seed");
  flags.String("stop-ids", &stop_ids, "IDS", "ids that end generation");
  if (int code = ParseOrExit(flags, args, "fapo generate", out, err);
      code >= 0) {
    return code;
  }
  if (model_dir.empty() || prompt_ids.empty()) {
    err << "fapo generate: --model and --prompt-ids are required\n";
    return 2;
  }
  SamplingOptions options;
  if (!absl::SimpleAtof(temperature, &options.temperature) ||
      !absl::SimpleAtof(top_p, &options.top_p)) {
    err << "fapo generate: --temperature and --top-p take numbers\n";
    return 2;
  }
  if (greedy) options.temperature = 0;
  options.top_k = static_cast<int>(top_k);
  options.max_new_tokens = static_cast<int>(max_new_tokens);
  options.seed = static_cast<uint64_t>(seed);
  absl::StatusOr<std::vector<int>> prompt = ParseIds(prompt_ids, "prompt-ids");
  if (!prompt.ok()) return Fail("fapo generate", prompt.status(), err);
  if (!stop_ids.empty()) {
    absl::StatusOr<std::vector<int>> stops = ParseIds(stop_ids, "stop-ids");
    if (!stops.ok()) return Fail("fapo generate", stops.status(), err);
    options.stop_token_ids = *stops;
  }
  absl::StatusOr<std::unique_ptr<CausalLM>> model =
      CausalLM::Load(model_dir, LoadOptions{});
  if (!model.ok()) return Fail("fapo generate", model.status(), err);
  absl::StatusOr<std::vector<GenerationResult>> results =
      Generate(**model, {*prompt}, options);
  if (!results.ok()) return Fail("fapo generate", results.status(), err);
  const GenerationResult& result = results->front();
  out << nlohmann::json{{"token_ids", result.token_ids},
                        {"logprobs", result.logprobs},
                        {"finish_reason",
                         FinishReasonName(result.finish_reason)}}
             .dump()
      << "\n";
  return 0;
}

int RunLogprobsCommand(const std::vector<std::string>& args, std::ostream& out,
                       std::ostream& err) {
  std::string model_dir, ids_text;
  bool with_entropy = false;
  flags::FlagSet flags(
      "fapo logprobs",
      "Teacher-forced log-probs of a sequence: prints {\"logprobs\": [...]} "
      "with log p(ids[t+1] | ids[..t]) for t = 0 .. n-2 (and the entropy of "
      "each distribution with --entropy).");
  flags.String("model", &model_dir, "DIR", "a Hugging Face checkpoint");
  flags.String("ids", &ids_text, "IDS", "comma-separated token ids (>= 2)");
  flags.Bool("entropy", &with_entropy, "also print per-token entropy");
  if (int code = ParseOrExit(flags, args, "fapo logprobs", out, err);
      code >= 0) {
    return code;
  }
  if (model_dir.empty() || ids_text.empty()) {
    err << "fapo logprobs: --model and --ids are required\n";
    return 2;
  }
  absl::StatusOr<std::vector<int>> ids = ParseIds(ids_text, "ids");
  if (!ids.ok()) return Fail("fapo logprobs", ids.status(), err);
  absl::StatusOr<std::unique_ptr<CausalLM>> model =
      CausalLM::Load(model_dir, LoadOptions{});
  if (!model.ok()) return Fail("fapo logprobs", model.status(), err);
  std::vector<int64_t> wide(ids->begin(), ids->end());
  at::Tensor input = torch::tensor(wide, torch::kLong).unsqueeze(0);
  absl::StatusOr<TokenLogProbs> result =
      ComputeLogProbs(**model, input, torch::ones_like(input), with_entropy,
                      /*enable_grad=*/false);
  if (!result.ok()) return Fail("fapo logprobs", result.status(), err);
  auto to_vector = [](const at::Tensor& tensor) {
    at::Tensor row = tensor[0].contiguous().to(torch::kFloat);
    return std::vector<float>(row.data_ptr<float>(),
                              row.data_ptr<float>() + row.numel());
  };
  nlohmann::json json{{"logprobs", to_vector(result->logprobs)}};
  if (with_entropy) json["entropy"] = to_vector(result->entropy);
  out << json.dump() << "\n";
  return 0;
}

ModelConfig TinyArithModelConfig() {
  ModelConfig config;
  config.family = ModelFamily::kQwen3;
  config.vocab_size = 19;  // 16 alphabet bytes + 3 special tokens
  config.hidden_size = 64;
  config.intermediate_size = 192;
  config.num_hidden_layers = 3;
  config.num_attention_heads = 4;
  config.num_key_value_heads = 2;
  config.head_dim = 16;
  config.max_position_embeddings = 128;
  config.rms_norm_eps = 1e-6;
  config.rope_theta = 10000.0;
  config.tie_word_embeddings = true;
  config.attention_bias = false;
  config.qk_norm = true;
  config.dtype = "float32";
  return config;
}

absl::Status WriteTinyArithModel(const std::string& directory, uint64_t seed) {
  const std::string tokenizer_json = ArithTokenizerJson();
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer,
                   Tokenizer::FromJson(tokenizer_json, "arith tokenizer"));
  ModelConfig config = TinyArithModelConfig();
  if (tokenizer->vocab_size() != config.vocab_size) {
    return absl::InternalError(
        absl::StrCat("the arith tokenizer has ", tokenizer->vocab_size(),
                     " ids but the tiny model expects ", config.vocab_size));
  }
  std::optional<int> end_of_text = tokenizer->TokenToId("<|endoftext|>");
  if (end_of_text) config.eos_token_ids = {*end_of_text};
  ASSIGN_OR_RETURN(std::unique_ptr<CausalLM> model,
                   CausalLM::FromConfig(config, seed, LoadOptions{}));
  RETURN_IF_ERROR(model->Save(directory));
  const std::string path = absl::StrCat(directory, "/tokenizer.json");
  std::ofstream file(path, std::ios::trunc);
  file << tokenizer_json;
  file.close();
  if (!file) {
    return absl::InternalError(absl::StrCat("cannot write ", path));
  }
  return absl::OkStatus();
}

int RunInitModelCommand(const std::vector<std::string>& args, std::ostream& out,
                        std::ostream& err) {
  std::string directory;
  int64_t seed = 0;
  flags::FlagSet flags(
      "fapo init-model",
      "Writes the embedded default's policy: a tiny Qwen3-shaped model over "
      "the arith tokenizer, initialised from scratch, in the Hugging Face "
      "layout (config.json, model.safetensors, tokenizer.json).");
  flags.String("out", &directory, "DIR", "where to write it (required)");
  flags.Int("seed", &seed, "initialisation seed");
  if (int code = ParseOrExit(flags, args, "fapo init-model", out, err);
      code >= 0) {
    return code;
  }
  if (directory.empty()) {
    err << "fapo init-model: --out is required\n";
    return 2;
  }
  absl::Status written =
      WriteTinyArithModel(directory, static_cast<uint64_t>(seed));
  if (!written.ok()) return Fail("fapo init-model", written, err);
  out << directory << "\n";
  return 0;
}

}  // namespace fapo::engine
