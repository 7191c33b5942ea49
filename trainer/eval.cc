#include "trainer/eval.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <optional>
#include <ostream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "engine/model/model.h"
#include "engine/tokenizer/chat_format.h"
#include "engine/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"
#include "services/files/files.h"
#include "services/flags/flags.h"
#include "services/status/status_macros.h"
#include "tasks/arith/random.h"
#include "tasks/task_source.h"

namespace fapo::trainer {
namespace {

namespace arith = ::fapo::tasks::arith;

// The held-out stream's number for MixSeed; any value other than the
// corpus generator's slip stream (1) would do. "eval" in ASCII.
constexpr uint64_t kHeldOutStream = 0x6576616cULL;

Estimate Share(int64_t part, int64_t whole) {
  Estimate estimate;
  if (whole <= 0) return estimate;
  const double p = static_cast<double>(part) / static_cast<double>(whole);
  estimate.value = p;
  estimate.standard_error = std::sqrt(p * (1 - p) / static_cast<double>(whole));
  return estimate;
}

}  // namespace

uint64_t HeldOutProblemSeed(uint64_t job_seed) {
  return arith::MixSeed(job_seed, kHeldOutStream);
}

absl::StatusOr<std::vector<arith::Problem>> HeldOutProblems(
    const arith::ArithOptions& options, uint64_t job_seed, int count) {
  if (count < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("held-out problem count ", count, " is negative"));
  }
  ASSIGN_OR_RETURN(
      arith::ProblemGenerator generator,
      arith::ProblemGenerator::Create(options, HeldOutProblemSeed(job_seed)));
  std::vector<arith::Problem> problems;
  problems.reserve(count);
  for (int i = 0; i < count; ++i) problems.push_back(generator.Next());
  return problems;
}

absl::StatusOr<algorithm::FlawedCounts> GradeResponses(
    const arith::Checker& checker, absl::Span<const arith::Problem> problems,
    absl::Span<const std::string> responses) {
  if (problems.size() != responses.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(problems.size(), " problems but ", responses.size(),
                     " responses to grade"));
  }
  algorithm::FlawedCounts counts;
  for (size_t i = 0; i < problems.size(); ++i) {
    const arith::CheckResult check = checker.Check(problems[i], responses[i]);
    algorithm::RolloutJudgement judgement;
    judgement.answer_correct = check.answer_correct;
    judgement.flawed = check.first_error_step >= 0;
    counts.AddRollout(judgement);
  }
  return counts;
}

EvalSummary SummarizeCounts(const algorithm::FlawedCounts& counts) {
  EvalSummary summary;
  summary.counts = counts;
  summary.samples = counts.total();
  summary.accuracy = Share(counts.correct(), counts.total());
  summary.alpha = Share(counts.sound, counts.total());
  summary.beta = Share(counts.wrong, counts.total());
  summary.gamma = Share(counts.flawed_positive, counts.total());
  summary.flawed_positive_ratio =
      Share(counts.flawed_positive, counts.correct());
  return summary;
}

absl::StatusOr<EvalReport> RunEval(const EvalOptions& options) {
  if (options.model_dir.empty()) {
    return absl::InvalidArgumentError("eval needs a model directory");
  }
  if (options.samples < 1 || options.max_new_tokens < 1 ||
      options.generation_batch_size < 1) {
    return absl::InvalidArgumentError(
        "eval samples, max_new_tokens and generation batch size must be >= 1");
  }
  if (!(options.temperature >= 0)) {
    return absl::InvalidArgumentError("eval temperature must be >= 0");
  }
  const absl::Time start = absl::Now();
  ASSIGN_OR_RETURN(arith::Checker checker,
                   arith::Checker::Create(options.arith));
  ASSIGN_OR_RETURN(
      std::vector<arith::Problem> problems,
      HeldOutProblems(options.arith, options.job_seed, options.samples));
  ASSIGN_OR_RETURN(std::unique_ptr<engine::Tokenizer> tokenizer,
                   engine::Tokenizer::FromFile(
                       absl::StrCat(options.model_dir, "/tokenizer.json")));
  ASSIGN_OR_RETURN(std::unique_ptr<engine::CausalLM> model,
                   engine::CausalLM::Load(options.model_dir));

  const bool chatml = options.chat_format == config::ChatFormat::kChatml;
  std::vector<std::vector<int>> prompts;
  prompts.reserve(problems.size());
  for (const arith::Problem& problem : problems) {
    prompts.push_back(tokenizer->Encode(
        engine::FormatPolicyPrompt(arith::FormatPrompt(problem), chatml)));
  }
  // The stop tokens the rollout workers use: the model's end of sequence,
  // and the end of the assistant turn under chatml.
  std::vector<int> stop_token_ids = model->config().eos_token_ids;
  if (chatml) {
    if (std::optional<int> im_end = tokenizer->TokenToId("<|im_end|>")) {
      stop_token_ids.push_back(*im_end);
    }
  }

  // Batches of similar prompt length finish decoding together (a batch
  // runs until its longest response ends), so generate in length order.
  std::vector<size_t> order(prompts.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return prompts[a].size() < prompts[b].size();
  });
  std::vector<std::string> responses(prompts.size());
  EvalReport report;
  report.temperature = options.temperature;
  int64_t response_tokens = 0;
  const size_t batch_size = static_cast<size_t>(options.generation_batch_size);
  for (size_t begin = 0, batch_index = 0; begin < order.size();
       begin += batch_size, ++batch_index) {
    const size_t end = std::min(begin + batch_size, order.size());
    std::vector<std::vector<int>> batch;
    for (size_t i = begin; i < end; ++i) batch.push_back(prompts[order[i]]);
    engine::SamplingOptions sampling;
    sampling.temperature = static_cast<float>(options.temperature);
    sampling.max_new_tokens = options.max_new_tokens;
    sampling.stop_token_ids = stop_token_ids;
    sampling.seed = arith::MixSeed(options.sampling_seed, batch_index);
    ASSIGN_OR_RETURN(std::vector<engine::GenerationResult> results,
                     engine::Generate(*model, batch, sampling));
    for (size_t i = begin; i < end; ++i) {
      const engine::GenerationResult& result = results[i - begin];
      response_tokens += static_cast<int64_t>(result.token_ids.size());
      if (result.finish_reason == engine::FinishReason::kLength) {
        ++report.truncated;
      }
      ASSIGN_OR_RETURN(responses[order[i]],
                       tokenizer->Decode(result.token_ids,
                                         /*skip_special_tokens=*/true));
    }
  }
  ASSIGN_OR_RETURN(algorithm::FlawedCounts counts,
                   GradeResponses(checker, problems, responses));
  report.summary = SummarizeCounts(counts);
  report.mean_response_tokens = static_cast<double>(response_tokens) /
                                static_cast<double>(prompts.size());
  report.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return report;
}

std::string EvalReportJson(const EvalReport& report) {
  const EvalSummary& s = report.summary;
  nlohmann::json json = {
      {"samples", s.samples},
      {"accuracy", s.accuracy.value},
      {"accuracy_stderr", s.accuracy.standard_error},
      {"alpha", s.alpha.value},
      {"alpha_stderr", s.alpha.standard_error},
      {"beta", s.beta.value},
      {"beta_stderr", s.beta.standard_error},
      {"gamma", s.gamma.value},
      {"gamma_stderr", s.gamma.standard_error},
      {"flawed_positive_ratio", s.flawed_positive_ratio.value},
      {"flawed_positive_ratio_stderr", s.flawed_positive_ratio.standard_error},
      {"sound", s.counts.sound},
      {"flawed_positive", s.counts.flawed_positive},
      {"wrong", s.counts.wrong},
      {"temperature", report.temperature},
      {"truncated", report.truncated},
      {"mean_response_tokens", report.mean_response_tokens},
      {"seconds", report.seconds}};
  return json.dump();
}

int RunEvalCommand(const std::vector<std::string>& args, std::ostream& out,
                   std::ostream& err) {
  EvalOptions options;
  std::string config_path;
  std::string json_path;
  std::string temperature = "1";
  int64_t samples = -1;  // -1: data.eval_size
  int64_t seed = 0;
  int64_t threads = 1;
  flags::FlagSet flags(
      "fapo eval",
      "Samples one response to each of N held-out arith problems (a seed "
      "stream of their own, not the training prompts') and grades them with "
      "the "
      "exact step checker: accuracy, alpha (sound), beta (wrong), gamma "
      "(flawed positive) and the flawed-positive ratio, with standard "
      "errors.");
  flags.String("model", &options.model_dir, "DIR",
               "policy checkpoint with tokenizer.json (required)");
  flags.String("config", &config_path, "JOB.yaml",
               "job spec: data.arith, job.seed (which held-out problems), "
               "data.eval_size, policy.chat_format, rollout.max_new_tokens");
  flags.Int("samples", &samples,
            "held-out problems, one sample each; -1 = data.eval_size");
  flags.String("temperature", &temperature, "T",
               "sampling temperature, 0 = greedy (flawed positives only "
               "show when sampling)");
  flags.Int("seed", &seed, "sampling seed (not the problems')");
  flags.String("json", &json_path, "FILE", "also write the figures as JSON");
  flags.Int("threads", &threads, "LibTorch intra-op threads");
  absl::Status parsed = flags.Parse(args);
  if (flags.help_requested()) {
    out << flags.Usage();
    return 0;
  }
  if (!parsed.ok()) {
    err << "fapo eval: " << parsed.message() << "\n";
    return 2;
  }
  if (options.model_dir.empty()) {
    err << "fapo eval: --model is required\n";
    return 2;
  }
  if (!absl::SimpleAtod(temperature, &options.temperature) ||
      !(options.temperature >= 0)) {
    err << "fapo eval: --temperature must be a number >= 0\n";
    return 2;
  }
  if (threads < 1) {
    err << "fapo eval: --threads must be >= 1\n";
    return 2;
  }
  config::JobSpec spec;
  if (!config_path.empty()) {
    absl::StatusOr<config::JobSpec> loaded =
        config::LoadJobSpecFile(config_path);
    if (!loaded.ok()) {
      err << loaded.status().message() << "\n";
      return 2;
    }
    spec = *std::move(loaded);
    if (spec.data.task != config::Task::kArith) {
      err << "fapo eval: " << config_path
          << ": data.task must be arith (math evaluation is not built yet)\n";
      return 2;
    }
  }
  if (samples == -1) samples = spec.data.eval_size;
  if (samples < 1) {
    err << "fapo eval: --samples (or data.eval_size) must be >= 1\n";
    return 2;
  }
  options.samples = static_cast<int>(std::min<int64_t>(samples, 10'000'000));
  options.arith = tasks::ArithOptionsFromSpec(spec.data.arith);
  options.job_seed = static_cast<uint64_t>(spec.job.seed);
  options.chat_format = spec.policy.chat_format;
  options.max_new_tokens = spec.rollout.max_new_tokens;
  options.sampling_seed = static_cast<uint64_t>(seed);
  at::set_num_threads(static_cast<int>(threads));

  absl::StatusOr<EvalReport> report = RunEval(options);
  if (!report.ok()) {
    err << "fapo eval: " << report.status().message() << "\n";
    return 1;
  }
  const EvalSummary& s = report->summary;
  out << absl::StrFormat(
      "eval %s: %d held-out problems, temperature %g, %.1f s\n"
      "  accuracy               %.3f +- %.3f\n"
      "  alpha (sound)          %.3f +- %.3f\n"
      "  beta (wrong)           %.3f +- %.3f\n"
      "  gamma (flawed pos.)    %.3f +- %.3f\n"
      "  flawed-positive ratio  %.3f +- %.3f  (of %d correct)\n"
      "  truncated %d, mean response %.1f tokens\n",
      options.model_dir, s.samples, report->temperature, report->seconds,
      s.accuracy.value, s.accuracy.standard_error, s.alpha.value,
      s.alpha.standard_error, s.beta.value, s.beta.standard_error,
      s.gamma.value, s.gamma.standard_error, s.flawed_positive_ratio.value,
      s.flawed_positive_ratio.standard_error, s.counts.correct(),
      report->truncated, report->mean_response_tokens);
  const std::string json = EvalReportJson(*report);
  if (!json_path.empty()) {
    absl::Status written = files::WriteFileAtomically(json_path, json + "\n");
    if (!written.ok()) {
      err << "fapo eval: " << written.message() << "\n";
      return 1;
    }
  }
  out << json << "\n";
  return 0;
}

}  // namespace fapo::trainer
