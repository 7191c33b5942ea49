#include "genrm_server/model/model_backend.h"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "algorithm/genrm_prompt.h"
#include "algorithm/verdict.h"
#include "engine/model/model.h"
#include "engine/tokenizer/chat_format.h"
#include "engine/tokenizer/tokenizer.h"
#include "services/status/status_macros.h"

namespace fapo::genrm {
namespace {

absl::Status ValidateOptions(const ModelBackendOptions& options) {
  if (options.model_dir.empty()) {
    return absl::InvalidArgumentError("model backend: model_dir is required");
  }
  if (options.samples < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model backend: samples must be >= 1, got ", options.samples));
  }
  if (!(options.temperature >= 0.0f)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model backend: temperature must be >= 0, got ", options.temperature));
  }
  if (!(options.top_p > 0.0f && options.top_p <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model backend: top_p must be in (0, 1], got ", options.top_p));
  }
  if (options.max_new_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("model backend: max_new_tokens must be >= 1, got ",
                     options.max_new_tokens));
  }
  if (options.max_batch_prompts < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model backend: max_batch_prompts must be >= 0, got ",
                     options.max_batch_prompts));
  }
  return absl::OkStatus();
}

}  // namespace

std::string GenrmModelInputText(const fapo::v1::ScoreRequest& request,
                                GenrmPromptFormat format) {
  const std::vector<std::string> steps = GenrmSteps(request);
  std::string prompt = algorithm::BuildGenrmPrompt(
      request.problem(), request.ground_truth(), steps);
  switch (format) {
    case GenrmPromptFormat::kChatML: {
      const engine::ChatMessage message{"user", std::move(prompt)};
      return engine::FormatChatML({message}, /*add_generation_prompt=*/true);
    }
    case GenrmPromptFormat::kRaw:
      return prompt;
  }
  return prompt;
}

// NOTE [model answer_correct]: the model backend judges steps, not answers:
// the scheduler sends a trajectory to a GenRM only when its answer is
// correct (its own verifier decided that), so every verdict here says
// answer_correct = true, as the request's premise. Consumers take the answer
// check from the task's verifier, never from a model verdict.

absl::StatusOr<std::unique_ptr<ModelBackend>> ModelBackend::Create(
    ModelBackendOptions options) {
  RETURN_IF_ERROR(ValidateOptions(options));
  if (options.tokenizer_path.empty()) {
    options.tokenizer_path = absl::StrCat(options.model_dir, "/tokenizer.json");
  }
  auto tokenizer = engine::Tokenizer::FromFile(options.tokenizer_path);
  if (!tokenizer.ok()) {
    return Annotate(tokenizer.status(), "model backend: tokenizer");
  }
  absl::StatusOr<std::unique_ptr<engine::CausalLM>> model;
  // The engine returns Status, but LibTorch may still throw on the way (an
  // allocation failure): stop it at this edge.
  try {
    model = engine::CausalLM::Load(options.model_dir);
  } catch (const std::exception& e) {
    model = absl::InternalError(e.what());
  }
  if (!model.ok()) {
    return Annotate(model.status(),
                    absl::StrCat("model backend: model ", options.model_dir));
  }
  return std::unique_ptr<ModelBackend>(new ModelBackend(
      std::move(options), *std::move(tokenizer), *std::move(model)));
}

ModelBackend::ModelBackend(ModelBackendOptions options,
                           std::unique_ptr<engine::Tokenizer> tokenizer,
                           std::unique_ptr<engine::CausalLM> model)
    : options_(std::move(options)),
      tokenizer_(std::move(tokenizer)),
      model_(std::move(model)) {
  for (absl::string_view stop : {"<|im_end|>", "<|endoftext|>"}) {
    if (std::optional<int> id = tokenizer_->TokenToId(stop)) {
      stop_token_ids_.push_back(*id);
    }
  }
  worker_ = std::thread([this] { WorkerLoop(); });
}

ModelBackend::~ModelBackend() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  // The worker finishes the batch it is generating, cancels the queued ones
  // (so `done` still runs on the worker thread only) and exits.
  worker_.join();
}

void ModelBackend::ScoreBatch(std::vector<fapo::v1::ScoreRequest> requests,
                              BatchDone done) {
  // Even an empty batch goes through the queue: `done` never runs on the
  // caller's thread, so callers may hold their own locks around ScoreBatch.
  absl::MutexLock lock(&mu_);
  queue_.push_back(Batch{std::move(requests), std::move(done)});
}

std::vector<int> ModelBackend::ModelInput(
    const fapo::v1::ScoreRequest& request) const {
  return tokenizer_->Encode(
      GenrmModelInputText(request, options_.prompt_format));
}

void ModelBackend::WorkerLoop() {
  for (;;) {
    Batch batch;
    std::deque<Batch> cancelled;
    bool stop = false;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &ModelBackend::HasWorkOrStopping));
      if (stopping_) {
        stop = true;
        cancelled.swap(queue_);
      } else {
        batch = std::move(queue_.front());
        queue_.pop_front();
      }
    }
    if (stop) {
      for (Batch& owed : cancelled) {
        BatchResults results(
            owed.requests.size(),
            absl::CancelledError("model backend: shutting down"));
        owed.done(std::move(results));
      }
      return;
    }
    batch.done(Score(batch.requests));
  }
}

BatchResults ModelBackend::Score(
    const std::vector<fapo::v1::ScoreRequest>& requests) {
  BatchResults results(requests.size(),
                       absl::InternalError("model backend: not scored"));
  const int samples = options_.samples;
  const int max_positions = model_->config().max_position_embeddings;

  // Requests that get a Generate row, with their inputs.
  struct Pending {
    size_t index;  // into requests
    int num_steps;
    std::vector<int> input;
  };
  std::vector<Pending> pending;
  for (size_t i = 0; i < requests.size(); ++i) {
    const fapo::v1::ScoreRequest& request = requests[i];
    std::vector<int> input = ModelInput(request);
    if (max_positions > 0 &&
        static_cast<int64_t>(input.size()) > max_positions) {
      results[i] = absl::InvalidArgumentError(absl::StrCat(
          "model backend: trajectory ", request.trajectory_id(),
          ": the GenRM prompt is ", input.size(),
          " tokens, more than the model's max_position_embeddings (",
          max_positions, ")"));
      continue;
    }
    if (input.empty()) {
      // Impossible with the paper's prompt and a byte-level BPE, but a
      // tokenizer that drops every byte would give Generate an empty row.
      results[i] = absl::InvalidArgumentError(
          absl::StrCat("model backend: trajectory ", request.trajectory_id(),
                       ": the GenRM prompt encodes to no tokens"));
      continue;
    }
    pending.push_back(Pending{i, static_cast<int>(GenrmSteps(request).size()),
                              std::move(input)});
  }

  // Chunks of whole requests, each one Generate call.
  const size_t requests_per_call =
      options_.max_batch_prompts == 0
          ? std::max<size_t>(pending.size(), 1)
          : std::max<size_t>(options_.max_batch_prompts / samples, 1);
  for (size_t begin = 0; begin < pending.size(); begin += requests_per_call) {
    const size_t end = std::min(pending.size(), begin + requests_per_call);
    std::vector<std::vector<int>> prompts;
    prompts.reserve((end - begin) * samples);
    for (size_t p = begin; p < end; ++p) {
      for (int s = 0; s < samples; ++s) prompts.push_back(pending[p].input);
    }
    if (options_.prompt_observer) options_.prompt_observer(prompts);

    engine::SamplingOptions sampling;
    sampling.temperature = options_.temperature;
    sampling.top_p = options_.top_p;
    sampling.max_new_tokens = options_.max_new_tokens;
    sampling.stop_token_ids = stop_token_ids_;
    sampling.seed = options_.seed + generate_calls_++;
    absl::StatusOr<std::vector<engine::GenerationResult>> generated;
    try {
      generated = engine::Generate(*model_, prompts, sampling);
    } catch (const std::exception& e) {
      generated = absl::InternalError(e.what());
    }
    if (generated.ok() && generated->size() != prompts.size()) {
      generated = absl::InternalError(
          absl::StrCat("engine::Generate returned ", generated->size(),
                       " results for ", prompts.size(), " prompts"));
    }
    if (!generated.ok()) {
      const absl::Status status =
          Annotate(generated.status(), "model backend: generate");
      for (size_t p = begin; p < end; ++p) results[pending[p].index] = status;
      continue;
    }

    for (size_t p = begin; p < end; ++p) {
      const fapo::v1::ScoreRequest& request = requests[pending[p].index];
      std::vector<std::string> texts;
      texts.reserve(samples);
      absl::Status decode_status;
      for (int s = 0; s < samples; ++s) {
        const engine::GenerationResult& result =
            (*generated)[(p - begin) * samples + s];
        absl::StatusOr<std::string> text =
            tokenizer_->Decode(result.token_ids, /*skip_special_tokens=*/true);
        if (!text.ok()) {
          decode_status = Annotate(
              text.status(), absl::StrCat("model backend: trajectory ",
                                          request.trajectory_id(), ": decode"));
          break;
        }
        texts.push_back(*std::move(text));
      }
      if (!decode_status.ok()) {
        results[pending[p].index] = decode_status;
        continue;
      }
      results[pending[p].index] =
          VerdictFromSamples(request.trajectory_id(), pending[p].num_steps,
                             texts, options_.max_critique_bytes);
    }
  }
  return results;
}

}  // namespace fapo::genrm
