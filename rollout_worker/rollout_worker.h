// rollout_worker: samples G responses per prompt with the current policy and
// swaps in new weights between generation batches (issue #6).
//
//   rollout_worker.h   RolloutWorker (the logic, no gRPC), WeightsFetcher
//                      (where new weights come from) + GrpcWeightsFetcher
//   rollout_service.h  RolloutService: the fapo.v1.Rollout callback adapter
//
// NOTE [one model, one thread]: the model is not thread-safe, so everything
// that touches it (generation, applying new weights) runs on the worker's
// generation thread. Requests queue; weights are pulled on a thread of
// their own while generation goes on, and applied by the generation thread
// between two batches, so a batch never mixes weights.
#ifndef FAPO_ROLLOUT_WORKER_ROLLOUT_WORKER_H_
#define FAPO_ROLLOUT_WORKER_ROLLOUT_WORKER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/weights/weights.h"
#include "engine/weights/weights_rpc.h"
#include "fapo/v1/rollout.pb.h"
#include "fapo/v1/trainer.grpc.pb.h"
#include "services/metrics/metrics_registry.h"
#include "services/rpc/channel.h"

namespace fapo::engine {
class CausalLM;
class Tokenizer;
}  // namespace fapo::engine

namespace fapo::rollout {

// Where UpdateWeights gets weights from: the real one pulls a Trainer's
// GetWeights over gRPC; tests hand over a snapshot in process.
class WeightsFetcher {
 public:
  virtual ~WeightsFetcher() = default;
  // Fills `assembler` with weights of version >= `version` from
  // `source_address` and Finish()es it. Blocking; called on the worker's
  // weights thread. May be interrupted by Cancel() (any thread).
  virtual absl::Status Fetch(const std::string& source_address, int64_t version,
                             engine::WeightsAssembler& assembler) = 0;
  // Makes a Fetch in progress return soon (shutdown). Default: nothing.
  virtual void Cancel() {}
};

// PullWeights, raw (NOTE [zero-copy weights], weights_rpc.h), over a
// cached channel per trainer address.
class GrpcWeightsFetcher : public WeightsFetcher {
 public:
  GrpcWeightsFetcher(rpc::ChannelOptions channel,
                     engine::PullWeightsOptions pull)
      : channel_options_(std::move(channel)), pull_(std::move(pull)) {}
  absl::Status Fetch(const std::string& source_address, int64_t version,
                     engine::WeightsAssembler& assembler) override;
  void Cancel() override;

 private:
  const rpc::ChannelOptions channel_options_;
  const engine::PullWeightsOptions pull_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<grpc::Channel>> channels_
      ABSL_GUARDED_BY(mu_);
  grpc::ClientContext* current_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

struct RolloutWorkerOptions {
  // Written into every trajectory. Default "".
  std::string worker_id;
  // Prompts given as text are wrapped as one ChatML user turn (with the
  // assistant generation prompt) when true, encoded as they are when false
  // (policy.chat_format raw). Default false.
  bool chatml = false;
  // The version the initial weights are. Default 0.
  int64_t initial_policy_version = 0;
  // Added to every request's stop ids (the model's eos_token_id, and
  // <|im_end|> under ChatML, are always added). Default none.
  std::vector<int> extra_stop_token_ids;
  // Largest num_samples accepted. Default 1024 (rollout.group_size's
  // bound).
  int max_samples_per_request = 1024;
  // Where the worker's metrics go (not owned; outlives the worker).
  // Default null = no metrics:
  //   fapo_rollout_worker_trajectories_total{finish_reason}  sent
  //   fapo_rollout_worker_tokens_total            response tokens sent
  //   fapo_rollout_worker_group_seconds           one group's generation
  //   fapo_rollout_worker_weight_sync_seconds     pull + swap, successful
  //   fapo_rollout_worker_weight_sync_bytes_total
  //   fapo_rollout_worker_weight_syncs_total{result}  "ok" or "error"
  //   fapo_rollout_worker_policy_version          the version held
  metrics::MetricsRegistry* registry = nullptr;
};

// The answer to UpdateWeights.
struct WeightsUpdate {
  int64_t policy_version = 0;
  int64_t bytes_received = 0;
};

// Serves generation requests and weight updates for one model
// (NOTE [one model, one thread]). Thread-safe; callbacks run on the
// worker's threads without its lock held and must not block for long.
// Copying deleted. The destructor calls Shutdown().
class RolloutWorker {
 public:
  // A queued or running Generate; Cancel() drops it from the queue at once
  // (on_done runs with CANCELLED inside Cancel()), or stops its batch at
  // the next decoding step and discards its results (on_done then runs
  // with CANCELLED on the generation thread). Nothing after on_done ran.
  // Thread-safe; Cancel() may be called from any thread, more than once,
  // but not with a lock held that on_done takes (a queued call's on_done
  // runs inside Cancel()).
  class Call {
   public:
    void Cancel();
    bool cancelled() const { return cancelled_.load(); }

   private:
    friend class RolloutWorker;
    void SetOnCancel(std::function<void()> on_cancel);

    std::atomic<bool> cancelled_{false};
    absl::Mutex mu_;
    // Set while the call waits in the queue: takes it out at once.
    std::function<void()> on_cancel_ ABSL_GUARDED_BY(mu_);
  };

  using TrajectoryCallback = std::function<void(v1::Trajectory)>;
  using DoneCallback = std::function<void(absl::Status)>;

  // Takes the model, its tokenizer (used when a prompt has no token ids,
  // and to decode responses) and where new weights come from. Errors:
  // a null argument, a tokenizer with more ids than the model, the
  // registry refusing a metric.
  static absl::StatusOr<std::unique_ptr<RolloutWorker>> Create(
      std::unique_ptr<engine::CausalLM> model,
      std::unique_ptr<engine::Tokenizer> tokenizer,
      std::unique_ptr<WeightsFetcher> fetcher, RolloutWorkerOptions options);
  ~RolloutWorker();
  RolloutWorker(const RolloutWorker&) = delete;
  RolloutWorker& operator=(const RolloutWorker&) = delete;

  // Samples request.num_samples responses to request.prompt (its token_ids,
  // or its text through the tokenizer) with request.sampling, as one batch
  // on the generation thread. on_trajectory runs once per sample as soon as
  // it finishes (in order of finishing), then on_done once: OK when all
  // were sent; FAILED_PRECONDITION at once when the held version is below
  // min_policy_version; INVALID_ARGUMENT for a bad request (no prompt,
  // num_samples < 1, token ids outside the vocabulary, bad sampling
  // values); CANCELLED after Cancel(); UNAVAILABLE after Shutdown(). Each
  // group is its own batch with its own seed: same seed, weights and prompt
  // -> same samples.
  std::shared_ptr<Call> Generate(const v1::GenerateRequest& request,
                                 TrajectoryCallback on_trajectory,
                                 DoneCallback on_done);

  // Pulls weights `version` from `source_address` (WeightsFetcher) on the
  // weights thread, then swaps them in on the generation thread between
  // batches, and calls `done` with the version now held. A version <= the
  // held one is acknowledged at once without work. A failed or partial
  // transfer, or weights that do not fit the model, leave the old weights
  // and are returned; UNAVAILABLE after Shutdown().
  void UpdateWeights(int64_t version, const std::string& source_address,
                     std::function<void(absl::StatusOr<WeightsUpdate>)> done);

  // The version of the weights held now.
  int64_t policy_version() const { return policy_version_.load(); }
  // Generate calls queued or running.
  int in_flight() const { return in_flight_.load(); }

  // Stops both threads: queued requests end UNAVAILABLE, the batch running
  // stops at its next step (its call ends UNAVAILABLE), a transfer in
  // progress is cancelled. Idempotent; returns when the threads are gone.
  void Shutdown();

 private:
  struct Metrics;
  struct GenerateJob;
  struct UpdateJob;
  struct ApplyJob;

  RolloutWorker(std::unique_ptr<engine::CausalLM> model,
                std::unique_ptr<engine::Tokenizer> tokenizer,
                std::unique_ptr<WeightsFetcher> fetcher,
                RolloutWorkerOptions options, std::unique_ptr<Metrics> metrics);
  bool HasGenerationWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool HasWeightsWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void GenerationLoop();
  void WeightsLoop();
  void RunGenerate(GenerateJob& job);
  // Takes the job of `call` out of the queue, if it is still there, and
  // ends it CANCELLED.
  void DropQueued(const Call* call);
  absl::StatusOr<std::vector<int>> PromptIds(
      const v1::GenerateRequest& request) const;

  const RolloutWorkerOptions options_;
  std::unique_ptr<engine::CausalLM> model_;  // generation thread only
  std::unique_ptr<engine::Tokenizer> tokenizer_;
  std::unique_ptr<WeightsFetcher> fetcher_;
  std::vector<int> default_stop_ids_;
  std::unique_ptr<Metrics> metrics_;  // null: no metrics

  std::atomic<int64_t> policy_version_;
  std::atomic<int> in_flight_{0};
  std::atomic<bool> stopping_{false};

  absl::Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<std::unique_ptr<GenerateJob>> generate_queue_ ABSL_GUARDED_BY(mu_);
  std::deque<std::unique_ptr<UpdateJob>> update_queue_ ABSL_GUARDED_BY(mu_);
  ApplyJob* pending_apply_ ABSL_GUARDED_BY(mu_) = nullptr;  // not owned

  absl::Mutex shutdown_mu_;  // serialises Shutdown()
  std::thread generation_thread_;
  std::thread weights_thread_;
};

}  // namespace fapo::rollout

#endif  // FAPO_ROLLOUT_WORKER_ROLLOUT_WORKER_H_
