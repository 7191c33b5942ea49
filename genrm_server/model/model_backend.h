// genrm_server/model: the `model` GenRM backend, a causal LM from the engine
// (engine/model) prompted with the FAPO paper's GenRM prompt
// (algorithm/genrm_prompt.h), greedy or sampled with a majority vote over k
// answers (algorithm/verdict.h).
//
//   model_backend.h   ModelBackend (this file), its options, and the two
//                     pure steps it is made of: request -> model input, and
//                     sampled texts -> verdict
//
// LibTorch stays in model_backend.cc: this header only forward-declares the
// engine's CausalLM and Tokenizer.
#ifndef FAPO_GENRM_SERVER_MODEL_MODEL_BACKEND_H_
#define FAPO_GENRM_SERVER_MODEL_MODEL_BACKEND_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "fapo/v1/common.pb.h"
#include "fapo/v1/genrm.pb.h"
#include "genrm_server/genrm_backend.h"
#include "genrm_server/genrm_text.h"

namespace fapo::engine {
class CausalLM;
class Tokenizer;
}  // namespace fapo::engine

namespace fapo::genrm {

// How the GenRM prompt is turned into the model's input text.
enum class GenrmPromptFormat {
  // One ChatML user message plus the assistant generation prompt
  // (engine::FormatChatML(..., add_generation_prompt=true)): what
  // FAPO-GenRM-4B and other chat-tuned GenRMs expect.
  kChatML,
  // The prompt text as is (base models).
  kRaw,
};

struct ModelBackendOptions {
  // A Hugging Face checkpoint directory (config.json + safetensors).
  // Required.
  std::string model_dir;
  // The tokenizer.json. Default (empty): model_dir + "/tokenizer.json".
  std::string tokenizer_path;
  // genrm.model.samples, temperature, max_new_tokens and job.seed (below)
  // come from the job spec, through MakeGenrmBackend (backend_factory.h),
  // with no defaults here (NOTE [one default] in
  // services/config/job_spec.h).
  //
  // genrm.model.samples: k, answers sampled per request, majority-voted;
  // >= 1.
  int samples = 0;
  // genrm.model.temperature: 0 = greedy; otherwise > 0.
  float temperature = 0.0f;
  // Nucleus sampling, in (0, 1]; not in the job spec. Default 1 (off).
  float top_p = 1.0f;
  // genrm.model.max_new_tokens: tokens generated at most per answer; >= 1.
  int max_new_tokens = 0;
  // Default kChatML.
  GenrmPromptFormat prompt_format = GenrmPromptFormat::kChatML;
  // job.seed: the sampling seed. Each Generate call n (0, 1, ... in the
  // order the worker runs them) uses seed + n, so a backend fed the same
  // batches in the same order gives the same verdicts.
  uint64_t seed = 0;
  // Rows (requests x samples) per Generate call at most; a larger batch is
  // generated in consecutive chunks of whole requests (a request with more
  // samples than this still gets one call of its own). 0 (default) = no
  // limit: a batch is one Generate call.
  int max_batch_prompts = 0;
  // A verdict's critique is the first sample's text cut to this many bytes
  // (at a UTF-8 character boundary). Default 4096; >= 0.
  size_t max_critique_bytes = 4096;
  // Test seam: when set, called on the worker thread with the rows of each
  // Generate call just before it runs (the prompts, each repeated
  // `samples` times, request after request).
  std::function<void(const std::vector<std::vector<int>>& prompts)>
      prompt_observer;
};

// GenrmSteps and VerdictFromSamples: genrm_server/genrm_text.h.

// The model's input text for `request`: algorithm::BuildGenrmPrompt(problem,
// ground_truth, GenrmSteps(request)), then formatted per `format`.
std::string GenrmModelInputText(const fapo::v1::ScoreRequest& request,
                                GenrmPromptFormat format);

// A GenrmBackend running the GenRM model on one worker thread it owns.
//
// ScoreBatch queues the batch and returns at once; the worker takes batches
// in order, builds every request's input (GenrmModelInputText, encoded),
// and generates the k answers of all requests of the batch in one
// engine::Generate call (see max_batch_prompts), stopping at the
// tokenizer's <|im_end|> and <|endoftext|> ids when it has them; each
// request's texts become its verdict (VerdictFromSamples). `done` always
// runs on the worker thread, never on ScoreBatch's caller's, and without
// any lock held.
//
// Per-request errors (the batch's other requests are judged normally):
//   InvalidArgument: the encoded input is longer than the model's
//     max_position_embeddings (the message names the trajectory_id and the
//     token count). Only the prompt is checked: answers may run past
//     max_position_embeddings by up to max_new_tokens (RoPE extrapolates;
//     choose max_new_tokens with the model's context in mind).
// Batch errors: a failing engine::Generate (or a LibTorch exception,
// reported as Internal) fails every request of that Generate call with its
// status; a token the tokenizer cannot decode fails that request.
//
// Destruction: the batch being generated completes normally; batches still
// queued complete with Cancelled; then the worker is joined. Thread-safe.
class ModelBackend : public GenrmBackend {
 public:
  // Loads the tokenizer and the model (float32 on CPU). InvalidArgument for
  // invalid options; the engine's errors (NotFound for a missing file, ...)
  // annotated with the path.
  static absl::StatusOr<std::unique_ptr<ModelBackend>> Create(
      ModelBackendOptions options);

  ~ModelBackend() override;
  ModelBackend(const ModelBackend&) = delete;
  ModelBackend& operator=(const ModelBackend&) = delete;

  void ScoreBatch(std::vector<fapo::v1::ScoreRequest> requests,
                  BatchDone done) override;
  std::string name() const override { return "model"; }

  // The token ids the model is fed for `request` (GenrmModelInputText,
  // encoded with this backend's tokenizer). Thread-safe.
  std::vector<int> ModelInput(const fapo::v1::ScoreRequest& request) const;

 private:
  struct Batch {
    std::vector<fapo::v1::ScoreRequest> requests;
    BatchDone done;
  };

  ModelBackend(ModelBackendOptions options,
               std::unique_ptr<engine::Tokenizer> tokenizer,
               std::unique_ptr<engine::CausalLM> model);

  void WorkerLoop();
  bool HasWorkOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || !queue_.empty();
  }
  // Runs on the worker thread only (the model is not thread-safe).
  BatchResults Score(const std::vector<fapo::v1::ScoreRequest>& requests);

  const ModelBackendOptions options_;
  const std::unique_ptr<engine::Tokenizer> tokenizer_;
  // Used by the worker thread only.
  const std::unique_ptr<engine::CausalLM> model_;
  std::vector<int> stop_token_ids_;
  uint64_t generate_calls_ = 0;  // worker thread only

  mutable absl::Mutex mu_;
  std::deque<Batch> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::thread worker_;  // last: started after everything above exists
};

}  // namespace fapo::genrm

#endif  // FAPO_GENRM_SERVER_MODEL_MODEL_BACKEND_H_
