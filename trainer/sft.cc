#include "trainer/sft.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <numeric>
#include <optional>
#include <ostream>
#include <random>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "engine/tokenizer/character_tokenizer.h"
#include "engine/tokenizer/chat_format.h"
#include "engine/tools/tools.h"
#include "nlohmann/json.hpp"
#include "services/files/files.h"
#include "services/flags/flags.h"
#include "services/status/status_macros.h"
#include "trainer/checkpoint_manager.h"

namespace fapo::trainer {
namespace {

// The default generated corpus is capped (about 60 MB of JSONL): beyond it
// examples repeat.
constexpr int64_t kMaxGeneratedCorpusSize = 1'000'000;

}  // namespace

std::string PolicyPromptText(absl::string_view prompt,
                             config::ChatFormat chat_format) {
  return engine::FormatPolicyPrompt(prompt,
                                    chat_format == config::ChatFormat::kChatml);
}

absl::StatusOr<std::vector<SftExample>> TokenizeCorpus(
    const std::vector<tasks::arith::CorpusRecord>& records,
    const engine::Tokenizer& tokenizer, config::ChatFormat chat_format,
    int eos_token_id) {
  std::vector<SftExample> examples;
  examples.reserve(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    SftExample example;
    example.prompt_token_ids =
        tokenizer.Encode(PolicyPromptText(records[i].prompt, chat_format));
    example.response_token_ids = tokenizer.Encode(records[i].response);
    if (example.prompt_token_ids.empty() ||
        example.response_token_ids.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("corpus record ", i,
                       ": the prompt or the response has no tokens "
                       "under this tokenizer"));
    }
    example.response_token_ids.push_back(eos_token_id);
    examples.push_back(std::move(example));
  }
  return examples;
}

absl::StatusOr<SftReport> RunSft(
    const SftOptions& options,
    const std::function<void(const std::string&)>& progress) {
  if (options.out_dir.empty()) {
    return absl::InvalidArgumentError("sft needs an output dir");
  }
  if (options.steps < 1 || options.batch_size < 1 ||
      options.micro_batch_size < 1 || options.generated_corpus_size < 0) {
    return absl::InvalidArgumentError(
        "sft steps, batch size and micro-batch size must be >= 1 and the "
        "generated corpus size >= 0");
  }
  const absl::Time start = absl::Now();
  RETURN_IF_ERROR(files::MakeDirectories(options.out_dir));
  std::vector<tasks::arith::CorpusRecord> records;
  if (!options.corpus_path.empty()) {
    ASSIGN_OR_RETURN(records,
                     tasks::arith::ReadCorpusJsonlFile(options.corpus_path));
  } else {
    ASSIGN_OR_RETURN(tasks::arith::CorpusGenerator generator,
                     tasks::arith::CorpusGenerator::Create(
                         tasks::arith::ArithOptions{},
                         tasks::arith::CorpusOptions{}, options.seed));
    // By default every example of the run is a fresh trace: a corpus
    // smaller than steps x batch_size is repeated, and repeated traces
    // teach their particular slips rather than the corpus's rates.
    const int64_t size =
        options.generated_corpus_size > 0
            ? options.generated_corpus_size
            : std::min<int64_t>(options.steps * options.batch_size,
                                kMaxGeneratedCorpusSize);
    ASSIGN_OR_RETURN(records, generator.Generate(static_cast<int>(size)));
    RETURN_IF_ERROR(tasks::arith::WriteCorpusJsonlFile(
        absl::StrCat(options.out_dir, "/sft_corpus.jsonl"), records));
  }
  if (records.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.corpus_path, " holds no records"));
  }
  // The starting policy stays in memory until training ends: out_dir
  // holds a model only once it is the trained one, so a caller that takes
  // an existing model.safetensors for a finished warm start (fapo launch
  // on resume) never picks up a fresh initialisation.
  const std::string model_dir = options.init_model_dir.empty()
                                    ? std::string("the tiny arith policy")
                                    : options.init_model_dir;
  std::string tokenizer_json;
  std::unique_ptr<engine::CausalLM> policy;
  if (options.init_model_dir.empty()) {
    tokenizer_json = engine::ArithTokenizerJson();
    engine::ModelConfig config = engine::TinyArithModelConfig();
    ASSIGN_OR_RETURN(std::unique_ptr<engine::Tokenizer> arith_tokenizer,
                     engine::Tokenizer::FromJson(tokenizer_json, model_dir));
    if (std::optional<int> eos = arith_tokenizer->TokenToId("<|endoftext|>")) {
      config.eos_token_ids = {*eos};
    }
    // The same weights as `fapo init-model --seed` (WriteTinyArithModel).
    ASSIGN_OR_RETURN(policy,
                     engine::CausalLM::FromConfig(config, options.seed));
  } else {
    ASSIGN_OR_RETURN(tokenizer_json, files::ReadFile(absl::StrCat(
                                         model_dir, "/tokenizer.json")));
    ASSIGN_OR_RETURN(policy, engine::CausalLM::Load(model_dir));
  }
  ASSIGN_OR_RETURN(
      std::unique_ptr<engine::Tokenizer> tokenizer,
      engine::Tokenizer::FromJson(tokenizer_json,
                                  absl::StrCat(model_dir, "/tokenizer.json")));
  int eos_token_id = -1;
  if (!policy->config().eos_token_ids.empty()) {
    eos_token_id = policy->config().eos_token_ids.front();
  } else if (auto id = tokenizer->TokenToId("<|endoftext|>")) {
    eos_token_id = *id;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(model_dir,
                     ": no eos_token_id in config.json and no <|endoftext|> "
                     "token: the policy could not learn to stop"));
  }
  ASSIGN_OR_RETURN(
      std::vector<SftExample> examples,
      TokenizeCorpus(records, *tokenizer, options.chat_format, eos_token_id));

  TrainerSettings settings;
  settings.trainer.learning_rate = options.learning_rate;
  settings.trainer.weight_decay = options.weight_decay;
  settings.trainer.warmup_steps = options.warmup_steps;
  settings.trainer.lr_schedule = config::LrSchedule::kCosine;
  settings.trainer.min_lr_ratio = options.min_lr_ratio;
  settings.trainer.grad_clip = options.grad_clip;
  settings.trainer.minibatches_per_step = 1;
  settings.trainer.micro_batch_size = options.micro_batch_size;
  settings.total_steps = options.steps;
  ASSIGN_OR_RETURN(std::unique_ptr<Trainer> trainer,
                   Trainer::CreateWithPolicy(settings, std::move(policy)));

  std::mt19937_64 rng(options.seed);
  std::vector<size_t> order(examples.size());
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  size_t cursor = 0;
  SftReport report;
  report.examples = static_cast<int64_t>(examples.size());
  report.out_dir = options.out_dir;
  std::vector<SftExample> batch;
  for (int64_t step = 1; step <= options.steps; ++step) {
    batch.clear();
    for (int i = 0; i < options.batch_size; ++i) {
      if (cursor == order.size()) {
        std::shuffle(order.begin(), order.end(), rng);
        cursor = 0;
      }
      batch.push_back(examples[order[cursor++]]);
    }
    // Micro-batches are padded to their longest sequence, and arith traces
    // run from 21 to 53 tokens: in length order each micro-batch pads only
    // to its neighbours. The step's gradient is a sum over the batch, so
    // the order within it does not change the update.
    std::stable_sort(
        batch.begin(), batch.end(),
        [](const SftExample& a, const SftExample& b) {
          return a.prompt_token_ids.size() + a.response_token_ids.size() <
                 b.prompt_token_ids.size() + b.response_token_ids.size();
        });
    ASSIGN_OR_RETURN(TrainStepResult result, trainer->SftStep(step, batch));
    if (step == 1) report.first_loss = result.metrics.loss();
    report.last_loss = result.metrics.loss();
    if (progress && options.log_every > 0 &&
        (step % options.log_every == 0 || step == options.steps)) {
      progress(absl::StrFormat(
          "sft step %d/%d  loss %.4f  lr %.2e  grad_norm %.3f  %.1f s", step,
          options.steps, result.metrics.loss(), result.metrics.learning_rate(),
          result.metrics.grad_norm(),
          absl::ToDoubleSeconds(absl::Now() - start)));
    }
  }
  report.steps = options.steps;
  // The tokenizer first: the model's files complete the directory.
  RETURN_IF_ERROR(files::WriteFile(
      absl::StrCat(options.out_dir, "/tokenizer.json"), tokenizer_json));
  RETURN_IF_ERROR(trainer->policy().Save(options.out_dir));
  report.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return report;
}

int RunSftCommand(const std::vector<std::string>& args, std::ostream& out,
                  std::ostream& err) {
  SftOptions options;
  int64_t steps = options.steps;
  int64_t batch_size = options.batch_size;
  int64_t micro_batch_size = options.micro_batch_size;
  int64_t warmup_steps = options.warmup_steps;
  int64_t log_every = options.log_every;
  int64_t seed = 0;
  int64_t corpus_size = 0;
  int64_t threads = 1;
  std::string learning_rate = absl::StrCat(options.learning_rate);
  std::string chat_format = "raw";
  flags::FlagSet flags(
      "fapo sft",
      "Supervised warm start of the policy on a JSONL corpus of {prompt, "
      "response} traces (by default a generated arith warm-up corpus): "
      "cross-entropy on the response tokens, AdamW with warm-up then "
      "cosine, written as a Hugging Face checkpoint for policy.model_dir.");
  // FlagSet appends each flag's default to its help.
  flags.String("corpus", &options.corpus_path, "FILE",
               "JSONL corpus (when absent, one is generated)");
  flags.Int("corpus-size", &corpus_size,
            "without --corpus: generate this many arith warm-up records "
            "(65% clean, 25% half slips, 10% wrong slips); 0 = steps x "
            "batch size, a fresh trace for every example");
  flags.String("out", &options.out_dir, "DIR", "output model dir (required)");
  flags.String("init-model", &options.init_model_dir, "DIR",
               "starting model (when absent: a fresh tiny arith policy)");
  flags.Int("steps", &steps, "optimizer steps");
  flags.Int("batch-size", &batch_size, "examples per step");
  flags.Int("micro-batch-size", &micro_batch_size,
            "sequences per forward/backward (sorted by length, so each pads "
            "little)");
  flags.String("learning-rate", &learning_rate, "X",
               "peak LR (warm-up, then cosine to 0.1x)");
  flags.Int("warmup-steps", &warmup_steps, "linear warm-up steps");
  flags.Int("seed", &seed, "init, corpus and shuffle seed");
  flags.String("chat-format", &chat_format, "raw|chatml", "prompt wrapping");
  flags.Int("log-every", &log_every, "a progress line every N steps, 0 = none");
  flags.Int("threads", &threads,
            "LibTorch intra-op threads (the tiny policy trains fastest on "
            "one)");
  absl::Status parsed = flags.Parse(args);
  if (flags.help_requested()) {
    out << flags.Usage();
    return 0;
  }
  if (!parsed.ok()) {
    err << "fapo sft: " << parsed.message() << "\n";
    return 2;
  }
  if (options.out_dir.empty()) {
    err << "fapo sft: --out is required\n";
    return 2;
  }
  if (corpus_size < 0 || corpus_size > kMaxGeneratedCorpusSize) {
    err << "fapo sft: --corpus-size must be in [0, " << kMaxGeneratedCorpusSize
        << "] (0: steps x batch size)\n";
    return 2;
  }
  if (steps < 1 || batch_size < 1 || micro_batch_size < 1 ||
      batch_size > 1'000'000 || micro_batch_size > 1'000'000) {
    err << "fapo sft: --steps, --batch-size and --micro-batch-size must be "
           ">= 1\n";
    return 2;
  }
  if (warmup_steps < 0 || log_every < 0 || threads < 1) {
    err << "fapo sft: --warmup-steps and --log-every must be >= 0, "
           "--threads >= 1\n";
    return 2;
  }
  options.generated_corpus_size = static_cast<int>(corpus_size);
  if (!absl::SimpleAtod(learning_rate, &options.learning_rate) ||
      !(options.learning_rate > 0)) {
    err << "fapo sft: --learning-rate must be a number > 0\n";
    return 2;
  }
  if (chat_format != "raw" && chat_format != "chatml") {
    err << "fapo sft: --chat-format must be raw or chatml\n";
    return 2;
  }
  options.chat_format = chat_format == "chatml" ? config::ChatFormat::kChatml
                                                : config::ChatFormat::kRaw;
  options.steps = steps;
  options.batch_size = static_cast<int>(batch_size);
  options.micro_batch_size = static_cast<int>(micro_batch_size);
  options.warmup_steps = static_cast<int>(warmup_steps);
  options.log_every = static_cast<int>(log_every);
  options.seed = static_cast<uint64_t>(seed);
  at::set_num_threads(static_cast<int>(threads));
  // Flushed per line: a log file or a pipe shows progress as it happens.
  absl::StatusOr<SftReport> report = RunSft(
      options, [&out](const std::string& line) { out << line << std::endl; });
  if (!report.ok()) {
    err << "fapo sft: " << report.status().message() << "\n";
    return 1;
  }
  nlohmann::json summary = {
      {"out", report->out_dir},         {"steps", report->steps},
      {"examples", report->examples},   {"first_loss", report->first_loss},
      {"last_loss", report->last_loss}, {"seconds", report->seconds}};
  out << summary.dump() << "\n";
  return 0;
}

}  // namespace fapo::trainer
