// Internal to services/config: the schema of the job spec, written once.
//
// Each Visit* function below walks one options struct, naming every key in
// YAML order with its rule (range, required or not). The same walk drives
// reading (spec_reader.cc), range validation (validation.cc), emission and
// equality (job_spec.cc), so a key added here is read, checked, printed and
// compared everywhere. Defaults are the struct initializers in job_spec.h.
//
// A visitor V provides:
//   void Section(absl::string_view key, Fn&& visit_children);
//   void Int(absl::string_view key, T& value, const IntRule&);  // int,int64
//   void Double(absl::string_view key, D& value, const DoubleRule&);
//   void Bool(absl::string_view key, B& value);
//   void String(absl::string_view key, S& value, const StringRule&);
//   void Enum(absl::string_view key, E& value, const EnumRule&);
// where the value types are const for visitors that only read.
#ifndef FAPO_SERVICES_CONFIG_SCHEMA_H_
#define FAPO_SERVICES_CONFIG_SCHEMA_H_

#include <cstdint>
#include <limits>
#include <string>

#include "absl/strings/string_view.h"
#include "services/config/job_spec.h"

namespace fapo::config::internal {

enum class Presence { kOptional, kRequired };

// Integers in [min, max].
struct IntRule {
  int64_t min;
  int64_t max;
  Presence presence = Presence::kOptional;
};

// Doubles in [min, max], each end optionally open; with zero_means_off, 0 is
// also valid ("0 = off, else [1, 1e6]"). NaN is never valid.
struct DoubleRule {
  double min;
  double max;
  bool min_open = false;
  bool max_open = false;
  bool zero_means_off = false;
};

constexpr DoubleRule Closed(double min, double max) {
  return DoubleRule{min, max, false, false, false};
}
// (min, max]
constexpr DoubleRule OpenBelow(double min, double max) {
  return DoubleRule{min, max, true, false, false};
}
// [min, max)
constexpr DoubleRule OpenAbove(double min, double max) {
  return DoubleRule{min, max, false, true, false};
}
// 0, or [min, max]
constexpr DoubleRule OffOr(double min, double max) {
  return DoubleRule{min, max, false, false, true};
}

// Returns "" when `value` is fine, else what is wrong ("must be ...").
using StringCheck = std::string (*)(const std::string& value);

struct StringRule {
  StringCheck check = nullptr;  // nullptr = any string
  Presence presence = Presence::kOptional;
};

struct EnumRule {
  Presence presence = Presence::kOptional;
};

bool InRange(const IntRule& rule, int64_t value);
bool InRange(const DoubleRule& rule, double value);
// "must be in [1, 1000000000], got <got>" (or "must be >= 0, got ...").
std::string RangeMessage(const IntRule& rule, absl::string_view got);
// "must be in (0, 1], got <got>" (or "must be 0 (off) or in [1, 1e6], ...").
std::string RangeMessage(const DoubleRule& rule, absl::string_view got);
// job.name: 1-64 characters of [A-Za-z0-9._-].
std::string CheckJobName(const std::string& name);
// "" or an http:// or https:// URL.
std::string CheckHttpUrl(const std::string& url);
// "a, b, c": the YAML names of E, for messages.
template <typename E>
std::string EnumNameList() {
  std::string out;
  for (const auto& spelling : EnumSpellings(E{})) {
    if (!out.empty()) out += ", ";
    out += spelling.name;
  }
  return out;
}

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t k1e6 = 1'000'000;
constexpr int64_t k1e9 = 1'000'000'000;
constexpr int64_t kHourMs = 3'600'000;
constexpr Presence kRequired = Presence::kRequired;

template <typename S, typename V>
void VisitJob(S& o, V& v) {
  v.String("name", o.name, StringRule{&CheckJobName, kRequired});
  v.Int("seed", o.seed, IntRule{0, kInt64Max});
  v.Int("steps", o.steps, IntRule{1, k1e9});
  v.String("output_dir", o.output_dir, StringRule{});
  v.Double("sample_fraction", o.sample_fraction, Closed(0, 1));
}

template <typename S, typename V>
void VisitArithData(S& o, V& v) {
  v.Int("min_ops", o.min_ops, IntRule{1, 64});
  v.Int("max_ops", o.max_ops, IntRule{1, 64});
  // '*' draws its operand from [2, operand_max].
  v.Int("operand_max", o.operand_max, IntRule{2, k1e6});
  v.Int("value_modulus", o.value_modulus, IntRule{0, k1e9});
  v.Int("answer_modulus", o.answer_modulus, IntRule{0, k1e9});
}

template <typename S, typename V>
void VisitMathData(S& o, V& v) {
  v.String("path", o.path, StringRule{});
  v.String("eval_path", o.eval_path, StringRule{});
  v.String("prompt_field", o.prompt_field, StringRule{});
  v.String("answer_field", o.answer_field, StringRule{});
}

template <typename S, typename V>
void VisitData(S& o, V& v) {
  v.Enum("task", o.task, EnumRule{kRequired});
  v.Bool("shuffle", o.shuffle);
  v.Int("eval_size", o.eval_size, IntRule{0, 10'000'000});
  v.Section("arith", [&] { VisitArithData(o.arith, v); });
  v.Section("math", [&] { VisitMathData(o.math, v); });
}

template <typename S, typename V>
void VisitPolicy(S& o, V& v) {
  v.String("model_dir", o.model_dir, StringRule{});
  v.String("tokenizer_path", o.tokenizer_path, StringRule{});
  v.Enum("dtype", o.dtype, EnumRule{});
  v.Enum("device", o.device, EnumRule{});
  v.Enum("chat_format", o.chat_format, EnumRule{});
}

template <typename S, typename V>
void VisitRollout(S& o, V& v) {
  v.Int("workers", o.workers, IntRule{1, 4096});
  v.Int("group_size", o.group_size, IntRule{2, 1024});
  v.Int("prompts_per_step", o.prompts_per_step, IntRule{1, k1e6});
  v.Double("temperature", o.temperature, Closed(0, 10));
  v.Double("top_p", o.top_p, OpenBelow(0, 1));
  v.Int("top_k", o.top_k, IntRule{0, k1e6});
  v.Int("max_new_tokens", o.max_new_tokens, IntRule{1, k1e6});
  v.Int("threads_per_worker", o.threads_per_worker, IntRule{1, 1024});
}

template <typename S, typename V>
void VisitGenrmModel(S& o, V& v) {
  v.String("model_dir", o.model_dir, StringRule{});
  v.Int("samples", o.samples, IntRule{1, 64});
  v.Double("temperature", o.temperature, Closed(0, 10));
  v.Int("max_new_tokens", o.max_new_tokens, IntRule{1, k1e6});
}

template <typename S, typename V>
void VisitGenrmOpenai(S& o, V& v) {
  v.String("base_url", o.base_url, StringRule{&CheckHttpUrl});
  v.String("model", o.model, StringRule{});
  v.String("api_key_file", o.api_key_file, StringRule{});
  v.Int("max_concurrency", o.max_concurrency, IntRule{1, 100'000});
  v.Int("timeout_ms", o.timeout_ms, IntRule{1, kHourMs});
  v.Int("max_retries", o.max_retries, IntRule{0, 100});
  v.Double("temperature", o.temperature, Closed(0, 10));
  v.Int("max_tokens", o.max_tokens, IntRule{1, k1e6});
}

template <typename S, typename V>
void VisitGenrmLatency(S& o, V& v) {
  v.Enum("inner", o.inner, EnumRule{});
  v.Enum("distribution", o.distribution, EnumRule{});
  v.Double("mean_ms", o.mean_ms, Closed(0, 3.6e6));
  v.Double("stddev_ms", o.stddev_ms, Closed(0, 3.6e6));
}

template <typename S, typename V>
void VisitGenrm(S& o, V& v) {
  v.Enum("backend", o.backend, EnumRule{});
  v.Int("servers", o.servers, IntRule{1, 4096});
  v.Int("max_batch_size", o.max_batch_size, IntRule{1, 4096});
  v.Int("max_batch_delay_ms", o.max_batch_delay_ms, IntRule{0, 60'000});
  v.Int("request_timeout_ms", o.request_timeout_ms, IntRule{1, kHourMs});
  v.Int("max_retries", o.max_retries, IntRule{0, 100});
  v.Int("max_in_flight_per_server", o.max_in_flight_per_server,
        IntRule{1, k1e6});
  v.Section("model", [&] { VisitGenrmModel(o.model, v); });
  v.Section("openai", [&] { VisitGenrmOpenai(o.openai, v); });
  v.Section("latency", [&] { VisitGenrmLatency(o.latency, v); });
}

template <typename S, typename V>
void VisitOverlongPenalty(S& o, V& v) {
  v.Bool("enabled", o.enabled);
  v.Int("max_response_tokens", o.max_response_tokens, IntRule{0, k1e6});
  v.Int("buffer_tokens", o.buffer_tokens, IntRule{0, k1e6});
  v.Double("penalty", o.penalty, Closed(0, 100));
}

template <typename S, typename V>
void VisitAlgorithm(S& o, V& v) {
  v.Enum("reward", o.reward, EnumRule{});
  v.Double("flawed_penalty", o.flawed_penalty, Closed(0, 100));
  v.Enum("advantage", o.advantage, EnumRule{});
  v.Double("advantage_eps", o.advantage_eps, OpenBelow(0, 1));
  v.Bool("dynamic_sampling", o.dynamic_sampling);
  v.Double("clip_low", o.clip_low, OpenAbove(0, 1));
  v.Double("clip_high", o.clip_high, Closed(0, 10));
  v.Enum("loss_aggregation", o.loss_aggregation, EnumRule{});
  v.Double("kl_coef", o.kl_coef, Closed(0, 100));
  v.Double("importance_sampling_cap", o.importance_sampling_cap, OffOr(1, 1e6));
  v.Section("overlong_penalty",
            [&] { VisitOverlongPenalty(o.overlong_penalty, v); });
}

template <typename S, typename V>
void VisitTrainer(S& o, V& v) {
  v.Int("ranks", o.ranks, IntRule{1, 4096});
  v.Enum("backend", o.backend, EnumRule{});
  v.Int("collective_timeout_ms", o.collective_timeout_ms,
        IntRule{1000, 86'400'000});
  v.Double("learning_rate", o.learning_rate, OpenBelow(0, 1));
  v.Double("weight_decay", o.weight_decay, Closed(0, 10));
  v.Double("adam_beta1", o.adam_beta1, OpenAbove(0, 1));
  v.Double("adam_beta2", o.adam_beta2, OpenAbove(0, 1));
  v.Double("adam_eps", o.adam_eps, OpenBelow(0, 1));
  v.Int("warmup_steps", o.warmup_steps, IntRule{0, k1e9});
  v.Enum("lr_schedule", o.lr_schedule, EnumRule{});
  v.Double("min_lr_ratio", o.min_lr_ratio, Closed(0, 1));
  v.Double("grad_clip", o.grad_clip, Closed(0, 1e6));
  v.Int("minibatches_per_step", o.minibatches_per_step, IntRule{1, k1e6});
  v.Int("micro_batch_size", o.micro_batch_size, IntRule{1, k1e6});
  v.Int("checkpoint_every", o.checkpoint_every, IntRule{0, k1e9});
  v.Int("keep_checkpoints", o.keep_checkpoints, IntRule{1, 1000});
  v.Bool("resume", o.resume);
}

template <typename S, typename V>
void VisitScheduler(S& o, V& v) {
  v.Int("max_staleness", o.max_staleness, IntRule{0, 1000});
  v.Int("queue_capacity", o.queue_capacity, IntRule{1, 100'000'000});
  v.Enum("backpressure", o.backpressure, EnumRule{});
  v.Int("heartbeat_interval_ms", o.heartbeat_interval_ms, IntRule{10, 600'000});
  // The lower bound is the cross-field rule > heartbeat_interval_ms.
  v.Int("worker_timeout_ms", o.worker_timeout_ms, IntRule{1, kHourMs});
  v.Int("max_consecutive_failures", o.max_consecutive_failures,
        IntRule{1, k1e6});
  v.Bool("deterministic", o.deterministic);
}

template <typename S, typename V>
void VisitMetrics(S& o, V& v) {
  v.Bool("enabled", o.enabled);
  v.String("host", o.host, StringRule{});
  v.Int("port", o.port, IntRule{0, 65535});
}

template <typename S, typename V>
void VisitTls(S& o, V& v) {
  v.Bool("enabled", o.enabled);
  v.String("cert_file", o.cert_file, StringRule{});
  v.String("key_file", o.key_file, StringRule{});
  v.String("ca_file", o.ca_file, StringRule{});
  v.Bool("require_client_cert", o.require_client_cert);
}

template <typename S, typename V>
void VisitSecurity(S& o, V& v) {
  v.String("token_file", o.token_file, StringRule{});
  v.Section("tls", [&] { VisitTls(o.tls, v); });
}

template <typename S, typename V>
void VisitJobSpec(S& spec, V& v) {
  v.Section("job", [&] { VisitJob(spec.job, v); });
  v.Section("data", [&] { VisitData(spec.data, v); });
  v.Section("policy", [&] { VisitPolicy(spec.policy, v); });
  v.Section("rollout", [&] { VisitRollout(spec.rollout, v); });
  v.Section("genrm", [&] { VisitGenrm(spec.genrm, v); });
  v.Section("algorithm", [&] { VisitAlgorithm(spec.algorithm, v); });
  v.Section("trainer", [&] { VisitTrainer(spec.trainer, v); });
  v.Section("scheduler", [&] { VisitScheduler(spec.scheduler, v); });
  v.Section("metrics", [&] { VisitMetrics(spec.metrics, v); });
  v.Section("security", [&] { VisitSecurity(spec.security, v); });
}

}  // namespace fapo::config::internal

#endif  // FAPO_SERVICES_CONFIG_SCHEMA_H_
