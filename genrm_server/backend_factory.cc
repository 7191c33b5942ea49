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
