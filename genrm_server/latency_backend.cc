#include "genrm_server/latency_backend.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"

namespace fapo::genrm {

constexpr double kPi = 3.14159265358979323846;

absl::string_view LatencyKindName(LatencyKind kind) {
  switch (kind) {
    case LatencyKind::kConstant:
      return "constant";
    case LatencyKind::kUniform:
      return "uniform";
    case LatencyKind::kNormal:
      return "normal";
    case LatencyKind::kLogNormal:
      return "lognormal";
  }
  return "";
}

absl::StatusOr<LatencyKind> ParseLatencyKind(absl::string_view name) {
  for (LatencyKind kind : {LatencyKind::kConstant, LatencyKind::kUniform,
                           LatencyKind::kNormal, LatencyKind::kLogNormal}) {
    if (name == LatencyKindName(kind)) return kind;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown latency distribution \"", name,
                   "\"; expected constant, uniform, normal or lognormal"));
}

absl::Status ValidateLatencyDistribution(const LatencyDistribution& dist) {
  if (!std::isfinite(dist.mean_ms) || dist.mean_ms < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("mean_ms must be finite and >= 0, got ", dist.mean_ms));
  }
  if (!std::isfinite(dist.stddev_ms) || dist.stddev_ms < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "stddev_ms must be finite and >= 0, got ", dist.stddev_ms));
  }
  if (dist.kind == LatencyKind::kLogNormal && dist.mean_ms == 0 &&
      dist.stddev_ms > 0) {
    return absl::InvalidArgumentError(
        "mean_ms must be > 0 for a lognormal with stddev_ms > 0");
  }
  return absl::OkStatus();
}

absl::StatusOr<LatencySampler> LatencySampler::Create(
    const LatencyDistribution& dist, uint64_t seed) {
  if (absl::Status status = ValidateLatencyDistribution(dist); !status.ok()) {
    return status;
  }
  return LatencySampler(dist, seed);
}

LatencySampler::LatencySampler(const LatencyDistribution& dist, uint64_t seed)
    : dist_(dist), rng_(seed) {
  if (dist.kind == LatencyKind::kLogNormal && dist.mean_ms > 0) {
    // For X = exp(N(mu, sigma^2)): E[X] = exp(mu + sigma^2 / 2) and
    // Var[X] = (exp(sigma^2) - 1) E[X]^2; solved for mu and sigma.
    const double cv = dist.stddev_ms / dist.mean_ms;
    const double sigma2 = std::log1p(cv * cv);
    log_sigma_ = std::sqrt(sigma2);
    log_mu_ = std::log(dist.mean_ms) - sigma2 / 2;
  }
}

double LatencySampler::UniformOpen01() {
  // The top 53 bits, offset by half a step: exact in a double, never 0 or 1
  // (so log() below is finite).
  return (static_cast<double>(rng_() >> 11) + 0.5) * 0x1.0p-53;
}

double LatencySampler::StandardNormal() {
  // Box-Muller, one draw per call: simple and reproducible; the sampler is
  // far from any hot path.
  const double u1 = UniformOpen01();
  const double u2 = UniformOpen01();
  return std::sqrt(-2 * std::log(u1)) * std::cos(2 * kPi * u2);
}

double LatencySampler::NextMs() {
  double ms = 0;
  switch (dist_.kind) {
    case LatencyKind::kConstant:
      ms = dist_.mean_ms;
      break;
    case LatencyKind::kUniform: {
      const double half_width = std::sqrt(3.0) * dist_.stddev_ms;
      ms = dist_.mean_ms + (2 * UniformOpen01() - 1) * half_width;
      break;
    }
    case LatencyKind::kNormal:
      ms = dist_.mean_ms + dist_.stddev_ms * StandardNormal();
      break;
    case LatencyKind::kLogNormal:
      ms = dist_.mean_ms == 0
               ? 0
               : std::exp(log_mu_ + log_sigma_ * StandardNormal());
      break;
  }
  return ms < 0 ? 0 : ms;
}

absl::StatusOr<std::unique_ptr<LatencyBackend>> LatencyBackend::Create(
    const LatencyBackendOptions& options, std::unique_ptr<GenrmBackend> inner) {
  if (inner == nullptr) {
    return absl::InvalidArgumentError("latency backend: no inner backend");
  }
  auto sampler = LatencySampler::Create(options.distribution, options.seed);
  if (!sampler.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("latency backend: ", sampler.status().message()));
  }
  return std::unique_ptr<LatencyBackend>(
      new LatencyBackend(*std::move(sampler), std::move(inner)));
}

LatencyBackend::LatencyBackend(LatencySampler sampler,
                               std::unique_ptr<GenrmBackend> inner)
    : sampler_(std::move(sampler)), inner_(std::move(inner)) {}

LatencyBackend::~LatencyBackend() {
  // The inner backend completes everything it owes before it is gone; those
  // completions land on timers_, which Shutdown then cancels.
  inner_.reset();
  timers_.Shutdown();
}

std::string LatencyBackend::name() const {
  return absl::StrCat("latency(", inner_->name(), ")");
}

void LatencyBackend::ScoreBatch(std::vector<fapo::v1::ScoreRequest> requests,
                                BatchDone done) {
  inner_->ScoreBatch(std::move(requests), [this, done = std::move(done)](
                                              BatchResults results) mutable {
    absl::Duration delay;
    {
      absl::MutexLock lock(&mu_);
      delay = sampler_.Next();
    }
    timers_.RunAt(absl::Now() + delay,
                  [done = std::move(done),
                   results = std::move(results)](absl::Status status) mutable {
                    if (!status.ok()) {
                      const absl::Status cancelled = absl::CancelledError(
                          "latency backend destroyed before the batch's "
                          "delay elapsed");
                      for (auto& result : results) result = cancelled;
                    }
                    done(std::move(results));
                  });
  });
}

}  // namespace fapo::genrm
