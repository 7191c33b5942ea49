#include "genrm_server/backend_factory.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/status/status_macros.h"

#if defined(FAPO_HAVE_GENRM_MODEL_BACKEND)
#include "genrm_server/model/model_backend.h"
#endif

namespace fapo::genrm {
namespace {

absl::Status Annotate(const absl::Status& status, absl::string_view where) {
  return absl::Status(status.code(),
                      absl::StrCat(where, ": ", status.message()));
}

absl::StatusOr<std::unique_ptr<GenrmBackend>> MakeModelBackend(
    const config::JobSpec& spec) {
#if defined(FAPO_HAVE_GENRM_MODEL_BACKEND)
  ModelBackendOptions options;
  options.model_dir = spec.genrm.model.model_dir;
  options.samples = spec.genrm.model.samples;
  options.temperature = static_cast<float>(spec.genrm.model.temperature);
  options.max_new_tokens = spec.genrm.model.max_new_tokens;
  options.seed = static_cast<uint64_t>(spec.job.seed);
  if (options.model_dir.empty()) {
    return absl::InvalidArgumentError(
        "genrm.model.model_dir is required for the model backend");
  }
  auto backend = ModelBackend::Create(std::move(options));
  if (!backend.ok()) return Annotate(backend.status(), "genrm backend model");
  return std::unique_ptr<GenrmBackend>(*std::move(backend));
#else
  (void)spec;
  return absl::UnimplementedError(
      "genrm.backend model needs LibTorch: this build has FAPO_WITH_TORCH "
      "off");
#endif
}

absl::StatusOr<std::unique_ptr<GenrmBackend>> MakeBasicBackend(
    const config::JobSpec& spec, config::GenrmBackend kind) {
  switch (kind) {
    case config::GenrmBackend::kRule: {
      auto backend = RuleBackend::Create(RuleOptionsFromSpec(spec));
      if (!backend.ok())
        return Annotate(backend.status(), "genrm backend rule");
      return std::unique_ptr<GenrmBackend>(*std::move(backend));
    }
    case config::GenrmBackend::kModel:
      return MakeModelBackend(spec);
    case config::GenrmBackend::kOpenai: {
      auto backend = OpenAiBackend::Create(OpenAiOptionsFromSpec(spec));
      if (!backend.ok()) {
        return Annotate(backend.status(),
                        "genrm backend openai (genrm.openai)");
      }
      return std::unique_ptr<GenrmBackend>(*std::move(backend));
    }
    case config::GenrmBackend::kLatency:
      return absl::InvalidArgumentError(
          "genrm.latency.inner: latency cannot wrap another latency backend; "
          "use rule, model or openai");
  }
  return absl::InvalidArgumentError(
      absl::StrCat("genrm.backend: unknown value ", static_cast<int>(kind)));
}

}  // namespace

RuleBackendOptions RuleOptionsFromSpec(const config::JobSpec& spec) {
  RuleBackendOptions options;
  const config::ArithDataOptions& arith = spec.data.arith;
  options.arith.min_ops = arith.min_ops;
  options.arith.max_ops = arith.max_ops;
  options.arith.operand_max = arith.operand_max;
  options.arith.value_modulus = arith.value_modulus;
  options.arith.answer_modulus = arith.answer_modulus;
  return options;
}

OpenAiBackendOptions OpenAiOptionsFromSpec(const config::JobSpec& spec) {
  const config::GenrmOpenaiOptions& openai = spec.genrm.openai;
  OpenAiBackendOptions options;
  options.base_url = openai.base_url;
  options.model = openai.model;
  options.api_key_file = openai.api_key_file;
  options.max_concurrency = openai.max_concurrency;
  options.timeout_ms = openai.timeout_ms;
  options.max_retries = openai.max_retries;
  options.temperature = openai.temperature;
  options.max_tokens = openai.max_tokens;
  options.samples = spec.genrm.model.samples;
  options.seed = static_cast<uint64_t>(spec.job.seed);
  return options;
}

absl::StatusOr<LatencyBackendOptions> LatencyOptionsFromSpec(
    const config::JobSpec& spec) {
  const config::GenrmLatencyOptions& latency = spec.genrm.latency;
  LatencyBackendOptions options;
  switch (latency.distribution) {
    case config::LatencyDistribution::kConstant:
      options.distribution.kind = LatencyKind::kConstant;
      break;
    case config::LatencyDistribution::kUniform:
      options.distribution.kind = LatencyKind::kUniform;
      break;
    case config::LatencyDistribution::kNormal:
      options.distribution.kind = LatencyKind::kNormal;
      break;
    case config::LatencyDistribution::kLognormal:
      options.distribution.kind = LatencyKind::kLogNormal;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("genrm.latency.distribution: unknown value ",
                       static_cast<int>(latency.distribution)));
  }
  options.distribution.mean_ms = latency.mean_ms;
  options.distribution.stddev_ms = latency.stddev_ms;
  options.seed = static_cast<uint64_t>(spec.job.seed);
  absl::Status valid = ValidateLatencyDistribution(options.distribution);
  if (!valid.ok()) return Annotate(valid, "genrm.latency");
  return options;
}

DynamicBatcherOptions BatcherOptionsFromSpec(const config::JobSpec& spec,
                                             const std::string& server_id) {
  DynamicBatcherOptions options;
  options.max_batch_size = spec.genrm.max_batch_size;
  options.max_batch_delay_ms = spec.genrm.max_batch_delay_ms;
  // More batches at the backend than the in-flight cap can fill is pointless;
  // keep at least one.
  const int batches_for_cap =
      (spec.genrm.max_in_flight_per_server + options.max_batch_size - 1) /
      options.max_batch_size;
  options.max_in_flight_batches =
      std::max(1, std::min(options.max_in_flight_batches, batches_for_cap));
  options.genrm_server_id = server_id;
  return options;
}

absl::StatusOr<std::unique_ptr<GenrmBackend>> MakeGenrmBackend(
    const config::JobSpec& spec) {
  if (spec.genrm.backend != config::GenrmBackend::kLatency) {
    return MakeBasicBackend(spec, spec.genrm.backend);
  }
  // Validate the delay before building the inner backend (a model loads for
  // seconds; fail fast on a typo'd distribution).
  ASSIGN_OR_RETURN(LatencyBackendOptions options, LatencyOptionsFromSpec(spec));
  ASSIGN_OR_RETURN(std::unique_ptr<GenrmBackend> inner,
                   MakeBasicBackend(spec, spec.genrm.latency.inner));
  auto backend = LatencyBackend::Create(options, std::move(inner));
  if (!backend.ok()) return Annotate(backend.status(), "genrm backend latency");
  return std::unique_ptr<GenrmBackend>(*std::move(backend));
}

bool ModelBackendAvailable() {
#if defined(FAPO_HAVE_GENRM_MODEL_BACKEND)
  return true;
#else
  return false;
#endif
}

}  // namespace fapo::genrm
