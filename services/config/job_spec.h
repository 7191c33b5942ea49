// services/config: the job spec. One YAML file describes a run; it is parsed
// once into the typed, validated option structs below, and each service reads
// its own section (docs/style.md practice 10).
//
//   job_spec.h        this header: the structs, their enums, the API
//   job_spec.cc       the API: parse, validate, emit, compare
//   schema.h          (internal) the one description of every key and range
//   yaml_document.h   (internal) yaml-cpp -> a located document tree, --set
//   spec_reader.h     (internal) document tree -> JobSpec, type errors
//   validation.h      (internal) range, cross-field and file rules
//   scalars.h         (internal) strict YAML numbers, UTF-8, edit distance
//   testdata/         sample specs: minimal, full (every key), broken ones
//
//   ASSIGN_OR_RETURN(JobSpec spec,
//                    LoadJobSpecFile("job.yaml", {"rollout.workers=4"}));
//   std::cout << JobSpecToYaml(spec);   // what `fapo validate` prints
//
// Every field below has a default (its initializer) and a valid range, both
// stated in its comment; the schema in schema.h enforces exactly those. YAML
// spells enum values in snake_case (see the spelling tables).
//
// NOTE [one default]: a value the job spec feeds has its default and its
// range here, and nowhere else. The option structs of the components it
// feeds (SchedulerOptions, OpenAiBackendOptions, DynamicBatcherOptions, ...)
// declare such fields with no default (a zero that their Create refuses)
// and name the key that fills them; one mapping per component fills them
// (scheduler/options_from_spec.h, genrm_server/backend_factory.h, ...),
// kept out of the components' own headers so that their logic does not
// depend on this file. A component checks only what it cannot work without
// (a count of at least 1), never a user-facing range. Tests start from the
// mapping of a default JobSpec, so they run with the defaults users get.
#ifndef FAPO_SERVICES_CONFIG_JOB_SPEC_H_
#define FAPO_SERVICES_CONFIG_JOB_SPEC_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace fapo::config {

// ---------------------------------------------------------------------------
// Enums. Each has a spelling table (EnumSpellings) giving its YAML name.

enum class Task { kArith, kMath };
enum class Dtype { kFloat32, kBfloat16, kFloat16 };
enum class Device { kCpu, kCuda };
enum class ChatFormat { kRaw, kChatml };
// kLatency wraps another backend (GenrmLatencyOptions::inner) and adds a
// synthetic delay: for load tests of the scheduler.
enum class GenrmBackend { kRule, kModel, kOpenai, kLatency };
enum class LatencyDistribution { kConstant, kUniform, kNormal, kLognormal };
enum class RewardKind { kRlvr, kFapo };
enum class AdvantageEstimator { kGrpo, kDrGrpo };
enum class LossAggregation { kTokenMean, kSequenceMean };
enum class CollectiveBackend { kGloo, kNccl };
enum class LrSchedule { kConstant, kCosine };
enum class Backpressure { kWait, kReject };

template <typename E>
struct EnumSpelling {
  E value;
  const char* name;  // as written in YAML, e.g. "dr_grpo"
};

// The spelling table of each enum, in declaration order. The argument only
// selects the overload: EnumSpellings(Task{}).
absl::Span<const EnumSpelling<Task>> EnumSpellings(Task);
absl::Span<const EnumSpelling<Dtype>> EnumSpellings(Dtype);
absl::Span<const EnumSpelling<Device>> EnumSpellings(Device);
absl::Span<const EnumSpelling<ChatFormat>> EnumSpellings(ChatFormat);
absl::Span<const EnumSpelling<GenrmBackend>> EnumSpellings(GenrmBackend);
absl::Span<const EnumSpelling<LatencyDistribution>> EnumSpellings(
    LatencyDistribution);
absl::Span<const EnumSpelling<RewardKind>> EnumSpellings(RewardKind);
absl::Span<const EnumSpelling<AdvantageEstimator>> EnumSpellings(
    AdvantageEstimator);
absl::Span<const EnumSpelling<LossAggregation>> EnumSpellings(LossAggregation);
absl::Span<const EnumSpelling<CollectiveBackend>> EnumSpellings(
    CollectiveBackend);
absl::Span<const EnumSpelling<LrSchedule>> EnumSpellings(LrSchedule);
absl::Span<const EnumSpelling<Backpressure>> EnumSpellings(Backpressure);

// The YAML name of `value`, or "" for a value outside the table (a bad cast).
template <typename E>
absl::string_view EnumName(E value) {
  for (const EnumSpelling<E>& spelling : EnumSpellings(E{})) {
    if (spelling.value == value) return spelling.name;
  }
  return "";
}

// Parses a YAML name (exact, case-sensitive). Returns false, leaving *value
// alone, when `name` is not in the table.
template <typename E>
bool ParseEnum(absl::string_view name, E* value) {
  for (const EnumSpelling<E>& spelling : EnumSpellings(E{})) {
    if (name == spelling.name) {
      *value = spelling.value;
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------
// Sections. "REQUIRED" means the YAML must set the key; the initializer is
// then only what a spec built in code starts from.

struct JobOptions {
  // REQUIRED. 1-64 characters of [A-Za-z0-9._-]; names the run directory.
  std::string name;
  // Seed of every random choice in the run (data, sampling, init). >= 0.
  int64_t seed = 0;
  // Training steps (policy updates). [1, 1e9].
  int64_t steps = 300;
  // Run directory (config snapshot, checkpoints, metrics.jsonl). Default ""
  // = "runs/<job.name>", filled in by the parser (ResolveDerivedDefaults).
  std::string output_dir;
  // Fraction of prompt groups whose trajectories are written to
  // <output_dir>/samples.jsonl, chosen from (seed, group id) so a group is
  // written whole or not at all. [0, 1]; 0 = no samples. Default 1 (every
  // trajectory).
  double sample_fraction = 1.0;
};

// The synthetic arithmetic task (docs/arith-testbed.md).
struct ArithDataOptions {
  // Operations per problem, drawn uniformly from [min_ops, max_ops].
  int min_ops = 2;  // [1, 64]
  int max_ops = 6;  // [1, 64], >= min_ops
  // Largest operand ('*' operands are drawn from [2, operand_max]). [2, 1e6].
  int operand_max = 9;
  // 0 = exact integer arithmetic, else all arithmetic modulo this. 0 or
  // [2, 1e9].
  int value_modulus = 10;
  // 0 = the answer is the full value, else the value modulo this, which makes
  // lucky guesses likelier. 0 or [2, 1e9].
  int answer_modulus = 5;
};

// JSONL prompts with boxed answers (the DAPO-Math-17k layout).
struct MathDataOptions {
  // Training JSONL. Default "". REQUIRED when data.task is math.
  std::string path;
  // Held-out JSONL. Default "" = hold out data.eval_size lines of `path`.
  std::string eval_path;
  // Dotted path of the prompt in each JSON line. Default "prompt".
  std::string prompt_field = "prompt";
  // Dotted path of the ground-truth answer. Default
  // "reward_model.ground_truth".
  std::string answer_field = "reward_model.ground_truth";
};

struct DataOptions {
  // REQUIRED. arith | math.
  Task task = Task::kArith;
  // Shuffle the training prompts (with job.seed). Default true.
  bool shuffle = true;
  // Held-out prompts for evaluation. Default 1024, [0, 1e7].
  int eval_size = 1024;
  ArithDataOptions arith;
  MathDataOptions math;
};

struct PolicyOptions {
  // Hugging Face checkpoint directory. Default "" = the embedded tiny arith
  // model.
  std::string model_dir;
  // Default "" = "<model_dir>/tokenizer.json" (filled in by the parser when
  // model_dir is set; stays "" for the embedded model).
  std::string tokenizer_path;
  // float32 | bfloat16 | float16. Default float32; half types need cuda.
  Dtype dtype = Dtype::kFloat32;
  // cpu | cuda. Default cpu.
  Device device = Device::kCpu;
  // raw | chatml: how prompts are wrapped. Default raw.
  ChatFormat chat_format = ChatFormat::kRaw;
};

struct RolloutOptions {
  // Rollout worker processes. Default 1, [1, 4096].
  int workers = 1;
  // Samples per prompt (the GRPO group). Default 8, [2, 1024].
  int group_size = 8;
  // Prompts per training step. Default 16, [1, 1e6]; >=
  // trainer.minibatches_per_step.
  int prompts_per_step = 16;
  // Sampling temperature. Default 1.0, [0, 10]; 0 = greedy.
  double temperature = 1.0;
  // Nucleus sampling mass. Default 1.0, (0, 1].
  double top_p = 1.0;
  // Top-k sampling. Default 0 = off, [0, 1e6].
  int top_k = 0;
  // Response length cap, in tokens. Default 64, [1, 1e6].
  int max_new_tokens = 64;
  // Intra-op threads per worker. Default 1, [1, 1024].
  int threads_per_worker = 1;
};

struct GenrmModelOptions {
  // Hugging Face checkpoint of the GenRM. Default "". REQUIRED when
  // genrm.backend is model (or latency wrapping model).
  std::string model_dir;
  // Verdicts per request, majority-voted. Default 1, [1, 64].
  int samples = 1;
  // Default 0.0 (greedy), [0, 10].
  double temperature = 0.0;
  // Verdict length cap, in tokens. Default 1024, [1, 1e6].
  int max_new_tokens = 1024;
};

// An OpenAI-compatible /v1/chat/completions endpoint (vLLM, SGLang).
struct GenrmOpenaiOptions {
  // Default "". REQUIRED when genrm.backend is openai (or latency wrapping
  // openai); must start with http:// or https://.
  std::string base_url;
  // Served model name. Default "". Required when base_url is set.
  std::string model;
  // File holding the API key. Default "" = no Authorization header.
  std::string api_key_file;
  // Requests in flight to the endpoint. Default 16, [1, 100000].
  int max_concurrency = 16;
  // Per-request deadline, in milliseconds. Default 60000, [1, 3600000].
  int timeout_ms = 60000;
  // Default 3, [0, 100].
  int max_retries = 3;
  // Default 0.6, [0, 10].
  double temperature = 0.6;
  // Completion length cap, in tokens. Default 8192, [1, 1e6].
  int max_tokens = 8192;
};

struct GenrmLatencyOptions {
  // rule | model | openai (not latency). Default rule.
  GenrmBackend inner = GenrmBackend::kRule;
  // constant | uniform | normal | lognormal. Default lognormal.
  LatencyDistribution distribution = LatencyDistribution::kLognormal;
  // Added delay, in milliseconds. Default 100, [0, 3.6e6].
  double mean_ms = 100.0;
  // Default 20, [0, 3.6e6].
  double stddev_ms = 20.0;
};

struct GenrmOptions {
  // rule | model | openai | latency. Default rule.
  GenrmBackend backend = GenrmBackend::kRule;
  // GenRM server processes. Default 1, [1, 4096].
  int servers = 1;
  // Dynamic batching: requests per batch. Default 8, [1, 4096].
  int max_batch_size = 8;
  // Dynamic batching: longest wait for a fuller batch, in milliseconds.
  // Default 5, [0, 60000].
  int max_batch_delay_ms = 5;
  // Scheduler -> GenRM deadline, in milliseconds. Default 30000,
  // [1, 3600000].
  int request_timeout_ms = 30000;
  // Default 2, [0, 100].
  int max_retries = 2;
  // Default 64, [1, 1e6].
  int max_in_flight_per_server = 64;
  GenrmModelOptions model;
  GenrmOpenaiOptions openai;
  GenrmLatencyOptions latency;
};

// DAPO's overlong reward shaping.
struct OverlongPenaltyOptions {
  // Default false.
  bool enabled = false;
  // In tokens. Default 0; REQUIRED > 0 when enabled, and <=
  // rollout.max_new_tokens. [0, 1e6].
  int max_response_tokens = 0;
  // The penalty ramps up over the last buffer_tokens, in tokens. Default 0;
  // [0, max_response_tokens) when enabled.
  int buffer_tokens = 0;
  // Penalty at max_response_tokens. Default 1.0, [0, 100].
  double penalty = 1.0;
};

struct AlgorithmOptions {
  // rlvr | fapo. Default fapo.
  RewardKind reward = RewardKind::kFapo;
  // The paper's lambda: reward taken off a flawed positive. Default 1.0,
  // [0, 100].
  double flawed_penalty = 1.0;
  // grpo | dr_grpo. Default grpo.
  AdvantageEstimator advantage = AdvantageEstimator::kGrpo;
  // Added to the group std. Default 1e-6, (0, 1].
  double advantage_eps = 1e-6;
  // Drop groups whose rewards are all equal (DAPO). Default false.
  bool dynamic_sampling = false;
  // PPO ratio clip below 1. Default 0.2, [0, 1).
  double clip_low = 0.2;
  // PPO ratio clip above 1. Default 0.28, [0, 10].
  double clip_high = 0.28;
  // token_mean | sequence_mean. Default token_mean.
  LossAggregation loss_aggregation = LossAggregation::kTokenMean;
  // Default 0.0 (no KL term), [0, 100].
  double kl_coef = 0.0;
  // Truncated importance sampling cap. Default 2.0; 0 = off, else [1, 1e6].
  double importance_sampling_cap = 2.0;
  OverlongPenaltyOptions overlong_penalty;
};

struct TrainerOptions {
  // Data-parallel ranks. Default 1, [1, 4096].
  int ranks = 1;
  // gloo | nccl. Default gloo; nccl needs policy.device cuda.
  CollectiveBackend backend = CollectiveBackend::kGloo;
  // How long the ranks wait for one another, in milliseconds: the
  // rendezvous, and each collective (a step's gradient reduction included,
  // so a rank slower than this by a whole step fails the group). Default
  // 300000 (5 minutes), [1000, 86400000].
  int collective_timeout_ms = 300'000;
  // Peak AdamW learning rate. Default 2e-5, (0, 1].
  double learning_rate = 2e-5;
  // Default 0.01, [0, 10].
  double weight_decay = 0.01;
  // Default 0.9, [0, 1).
  double adam_beta1 = 0.9;
  // Default 0.999, [0, 1).
  double adam_beta2 = 0.999;
  // Default 1e-8, (0, 1].
  double adam_eps = 1e-8;
  // Linear warm-up, in steps. Default 0, [0, 1e9].
  int warmup_steps = 0;
  // constant | cosine. Default constant.
  LrSchedule lr_schedule = LrSchedule::kConstant;
  // Cosine floor as a fraction of learning_rate. Default 0.1, [0, 1].
  double min_lr_ratio = 0.1;
  // Global gradient-norm clip. Default 1.0, [0, 1e6]; 0 = off.
  double grad_clip = 1.0;
  // Optimizer steps per training step. Default 2, [1, 1e6].
  int minibatches_per_step = 2;
  // Sequences per forward/backward pass. Default 32, [1, 1e6].
  int micro_batch_size = 32;
  // In steps. Default 50, [0, 1e9]; 0 = only at the end.
  int checkpoint_every = 50;
  // Default 3, [1, 1000].
  int keep_checkpoints = 3;
  // Resume from the newest checkpoint in job.output_dir. Default true.
  bool resume = true;
};

struct SchedulerOptions {
  // Largest policy-version gap between a trajectory and the trainer.
  // Default 1, [0, 1000].
  int max_staleness = 1;
  // Trajectory queue capacity. Default 4096, [1, 1e8].
  int queue_capacity = 4096;
  // wait | reject: what a full queue does to producers. Default wait.
  Backpressure backpressure = Backpressure::kWait;
  // In milliseconds. Default 1000, [10, 600000].
  int heartbeat_interval_ms = 1000;
  // A worker silent this long is dead, in milliseconds. Default 5000;
  // > heartbeat_interval_ms, <= 3600000.
  int worker_timeout_ms = 5000;
  // Failures in a row before the job fails. Default 5, [1, 1e6].
  int max_consecutive_failures = 5;
  // Reproducible ordering at some cost in overlap. Default false.
  bool deterministic = false;
};

struct MetricsOptions {
  // Serve /metrics. Default true.
  bool enabled = true;
  // Default "127.0.0.1".
  std::string host = "127.0.0.1";
  // Default 0 = pick a free port and log it; [0, 65535].
  int port = 0;
};

struct TlsOptions {
  // Default false.
  bool enabled = false;
  // PEM files; default "". Both REQUIRED when enabled.
  std::string cert_file;
  std::string key_file;
  // Default "". When set, clients verify servers against it.
  std::string ca_file;
  // Mutual TLS. Default false; requires ca_file.
  bool require_client_cert = false;
};

// Every file named here must exist and be readable when the spec is
// validated (paths relative to the working directory).
struct SecurityOptions {
  // Bearer token checked on every RPC. Default "" = none; requires
  // tls.enabled (a token over plaintext could be read off the network).
  std::string token_file;
  TlsOptions tls;
};

struct JobSpec {
  JobOptions job;
  DataOptions data;
  PolicyOptions policy;
  RolloutOptions rollout;
  GenrmOptions genrm;
  AlgorithmOptions algorithm;
  TrainerOptions trainer;
  SchedulerOptions scheduler;
  MetricsOptions metrics;
  SecurityOptions security;
};

// Field-by-field equality (doubles compare with ==).
bool operator==(const JobOptions& a, const JobOptions& b);
bool operator==(const ArithDataOptions& a, const ArithDataOptions& b);
bool operator==(const MathDataOptions& a, const MathDataOptions& b);
bool operator==(const DataOptions& a, const DataOptions& b);
bool operator==(const PolicyOptions& a, const PolicyOptions& b);
bool operator==(const RolloutOptions& a, const RolloutOptions& b);
bool operator==(const GenrmModelOptions& a, const GenrmModelOptions& b);
bool operator==(const GenrmOpenaiOptions& a, const GenrmOpenaiOptions& b);
bool operator==(const GenrmLatencyOptions& a, const GenrmLatencyOptions& b);
bool operator==(const GenrmOptions& a, const GenrmOptions& b);
bool operator==(const OverlongPenaltyOptions& a,
                const OverlongPenaltyOptions& b);
bool operator==(const AlgorithmOptions& a, const AlgorithmOptions& b);
bool operator==(const TrainerOptions& a, const TrainerOptions& b);
bool operator==(const SchedulerOptions& a, const SchedulerOptions& b);
bool operator==(const MetricsOptions& a, const MetricsOptions& b);
bool operator==(const TlsOptions& a, const TlsOptions& b);
bool operator==(const SecurityOptions& a, const SecurityOptions& b);
bool operator==(const JobSpec& a, const JobSpec& b);
inline bool operator!=(const JobOptions& a, const JobOptions& b) {
  return !(a == b);
}
inline bool operator!=(const ArithDataOptions& a, const ArithDataOptions& b) {
  return !(a == b);
}
inline bool operator!=(const MathDataOptions& a, const MathDataOptions& b) {
  return !(a == b);
}
inline bool operator!=(const DataOptions& a, const DataOptions& b) {
  return !(a == b);
}
inline bool operator!=(const PolicyOptions& a, const PolicyOptions& b) {
  return !(a == b);
}
inline bool operator!=(const RolloutOptions& a, const RolloutOptions& b) {
  return !(a == b);
}
inline bool operator!=(const GenrmModelOptions& a, const GenrmModelOptions& b) {
  return !(a == b);
}
inline bool operator!=(const GenrmOpenaiOptions& a,
                       const GenrmOpenaiOptions& b) {
  return !(a == b);
}
inline bool operator!=(const GenrmLatencyOptions& a,
                       const GenrmLatencyOptions& b) {
  return !(a == b);
}
inline bool operator!=(const GenrmOptions& a, const GenrmOptions& b) {
  return !(a == b);
}
inline bool operator!=(const OverlongPenaltyOptions& a,
                       const OverlongPenaltyOptions& b) {
  return !(a == b);
}
inline bool operator!=(const AlgorithmOptions& a, const AlgorithmOptions& b) {
  return !(a == b);
}
inline bool operator!=(const TrainerOptions& a, const TrainerOptions& b) {
  return !(a == b);
}
inline bool operator!=(const SchedulerOptions& a, const SchedulerOptions& b) {
  return !(a == b);
}
inline bool operator!=(const MetricsOptions& a, const MetricsOptions& b) {
  return !(a == b);
}
inline bool operator!=(const TlsOptions& a, const TlsOptions& b) {
  return !(a == b);
}
inline bool operator!=(const SecurityOptions& a, const SecurityOptions& b) {
  return !(a == b);
}
inline bool operator!=(const JobSpec& a, const JobSpec& b) { return !(a == b); }

// ---------------------------------------------------------------------------
// API. Errors are one absl::InvalidArgumentError listing every problem found,
// one per line, sorted by position (file lines first, then overrides in
// the order given):
//
//   job.yaml:12:5: rollout.temperature: must be in [0, 10], got 12.5
//   --set trainer.ranks: trainer.ranks: expected an integer, got the string
//   "two"
//
// Lines and columns are 1-based (columns count bytes, as yaml-cpp does). A
// value that came from an override names "--set KEY" instead of a
// line:column; a missing key points at its parent map; a problem found by
// ValidateJobSpec on a spec built in code has no location
// ("rollout.top_p: must be in (0, 1], got 0"). A rule that involves a key
// whose value failed to parse is not reported (it would judge a default the
// user never wrote).
//
// Strictness, beyond the ranges: unknown and duplicate keys are errors; only
// true and false are booleans; quoted scalars are strings ("5" is not a
// number); an integer key rejects 4.0 and 1e3; strings must be UTF-8; one
// YAML document per file. An empty section (`security:`) means "all
// defaults".

// Parses a job spec from YAML text. `source_name` (e.g. the file name) starts
// each error line. `overrides` are "a.b.c=value" strings (from --set), applied
// in order to the document before it is read: the value is parsed as a YAML
// scalar or flow value and replaces what is at that path, creating maps on the
// way. Overridden keys are checked like any other (unknown keys are errors).
// Fills in derived defaults (ResolveDerivedDefaults) and ends with
// ValidateJobSpec.
absl::StatusOr<JobSpec> ParseJobSpec(
    absl::string_view yaml_text, absl::string_view source_name,
    const std::vector<std::string>& overrides = {});

// ParseJobSpec on the contents of `path`, which also names the source.
// NotFoundError when there is no such file; InvalidArgumentError when it is
// a directory or too large; PermissionDeniedError when it cannot be read.
absl::StatusOr<JobSpec> LoadJobSpecFile(
    const std::string& path, const std::vector<std::string>& overrides = {});

// Checks every range and cross-field rule (see the field comments) and that
// the files named under `security` exist and are readable. Runs at the end of
// ParseJobSpec; call it on specs built in code.
absl::Status ValidateJobSpec(const JobSpec& spec);

// Fills the defaults that depend on other fields: job.output_dir
// ("runs/<job.name>") and policy.tokenizer_path ("<model_dir>/tokenizer.json")
// when they are empty. Idempotent.
void ResolveDerivedDefaults(JobSpec* spec);

// The effective config: every key, in schema order, defaults filled in.
// ParseJobSpec(JobSpecToYaml(spec)) yields a spec equal to `spec`.
std::string JobSpecToYaml(const JobSpec& spec);

// Writes JobSpecToYaml(spec); gtest uses it to print specs.
std::ostream& operator<<(std::ostream& os, const JobSpec& spec);

}  // namespace fapo::config

#endif  // FAPO_SERVICES_CONFIG_JOB_SPEC_H_
