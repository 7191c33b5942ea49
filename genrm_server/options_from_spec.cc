#include "genrm_server/options_from_spec.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace fapo::genrm {

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
  if (!valid.ok()) {
    return absl::Status(valid.code(),
                        absl::StrCat("genrm.latency: ", valid.message()));
  }
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

}  // namespace fapo::genrm
