#include "algorithm/advantages.h"

#include <cmath>
#include <cstddef>

#include "absl/strings/str_cat.h"
#include "services/status/status_macros.h"

namespace fapo::algorithm {
namespace {

// NOTE [unbiased-std]: the group std divides by n - 1 (Bessel's correction),
// as verl's compute_grpo_outcome_advantage and TRL's GRPOTrainer do: both
// call torch.std, whose default is unbiased. The choice changes advantages
// by the constant factor sqrt((n - 1) / n) (up to eps), never their signs,
// so the paper's alpha/beta identities hold either way; we match the
// reference implementations so that runs are comparable. A group of one has
// no sample variance (torch.std returns NaN there); we give it std 0, and
// since it is trivially "all equal" its advantage is 0 (verl instead
// substitutes mean 0, std 1, i.e. A = r: a lone rollout compared with
// nothing).

void WriteGroupAdvantages(absl::Span<const double> rewards,
                          const AdvantageOptions& options,
                          double* advantages) noexcept {
  if (!HasLearningSignal(rewards)) {
    // Exactly 0, not (r - mean): sum / n need not round back to r.
    for (size_t i = 0; i < rewards.size(); ++i) advantages[i] = 0.0;
    return;
  }
  const GroupMoments moments = ComputeGroupMoments(rewards);
  if (!options.scale_by_std) {
    for (size_t i = 0; i < rewards.size(); ++i) {
      advantages[i] = rewards[i] - moments.mean;
    }
    return;
  }
  const double denominator = moments.std + options.eps;
  if (!(denominator > 0.0)) {
    // Only with eps = 0 and differences so small that their squares
    // underflow: no usable scale.
    for (size_t i = 0; i < rewards.size(); ++i) advantages[i] = 0.0;
    return;
  }
  const double inverse = 1.0 / denominator;
  for (size_t i = 0; i < rewards.size(); ++i) {
    advantages[i] = (rewards[i] - moments.mean) * inverse;
  }
}

// OK when group_sizes describes exactly `num_rewards` rollouts.
absl::Status CheckLayout(size_t num_rewards,
                         absl::Span<const int> group_sizes) {
  size_t total = 0;
  for (size_t g = 0; g < group_sizes.size(); ++g) {
    if (group_sizes[g] < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "group_sizes[", g, "] must be >= 1, got ", group_sizes[g]));
    }
    total += static_cast<size_t>(group_sizes[g]);
  }
  if (total != num_rewards) {
    return absl::InvalidArgumentError(
        absl::StrCat("group sizes add up to ", total,
                     " rollouts but there are ", num_rewards, " rewards"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateAdvantageOptions(const AdvantageOptions& options) {
  if (!std::isfinite(options.eps) || options.eps < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("eps must be finite and >= 0, got ", options.eps));
  }
  return absl::OkStatus();
}

GroupMoments ComputeGroupMoments(absl::Span<const double> rewards) noexcept {
  GroupMoments moments;
  const size_t n = rewards.size();
  if (n == 0) return moments;
  double sum = 0.0;
  for (double reward : rewards) sum += reward;
  moments.mean = sum / static_cast<double>(n);
  if (n == 1) return moments;
  // Two passes: the one-pass E[x^2] - E[x]^2 form cancels catastrophically.
  double squares = 0.0;
  for (double reward : rewards) {
    const double deviation = reward - moments.mean;
    squares += deviation * deviation;
  }
  moments.std = std::sqrt(squares / static_cast<double>(n - 1));
  return moments;
}

bool HasLearningSignal(absl::Span<const double> rewards) noexcept {
  // No early exit: groups are small, and a data-dependent exit point costs
  // a branch miss per group where this loop costs a few compares.
  bool differs = false;
  for (size_t i = 1; i < rewards.size(); ++i) {
    differs |= rewards[i] != rewards[0];
  }
  return differs;
}

absl::Status ComputeGroupAdvantages(absl::Span<const double> rewards,
                                    const AdvantageOptions& options,
                                    absl::Span<double> advantages) {
  if (rewards.size() != advantages.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ComputeGroupAdvantages: ", rewards.size(), " rewards but room for ",
        advantages.size(), " advantages"));
  }
  WriteGroupAdvantages(rewards, options, advantages.data());
  return absl::OkStatus();
}

std::vector<double> ComputeGroupAdvantages(absl::Span<const double> rewards,
                                           const AdvantageOptions& options) {
  std::vector<double> advantages(rewards.size());
  WriteGroupAdvantages(rewards, options, advantages.data());
  return advantages;
}

absl::Status ComputeBatchAdvantages(absl::Span<const double> rewards,
                                    absl::Span<const int> group_sizes,
                                    const AdvantageOptions& options,
                                    absl::Span<double> advantages) {
  if (rewards.size() != advantages.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ComputeBatchAdvantages: ", rewards.size(), " rewards but room for ",
        advantages.size(), " advantages"));
  }
  RETURN_IF_ERROR(CheckLayout(rewards.size(), group_sizes));
  size_t begin = 0;
  for (int size : group_sizes) {
    WriteGroupAdvantages(rewards.subspan(begin, size), options,
                         advantages.data() + begin);
    begin += static_cast<size_t>(size);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<double>> ComputeBatchAdvantages(
    absl::Span<const double> rewards, absl::Span<const int> group_sizes,
    const AdvantageOptions& options) {
  std::vector<double> advantages(rewards.size());
  RETURN_IF_ERROR(ComputeBatchAdvantages(rewards, group_sizes, options,
                                         absl::MakeSpan(advantages)));
  return advantages;
}

DynamicSamplingStats& DynamicSamplingStats::operator+=(
    const DynamicSamplingStats& other) {
  groups_kept += other.groups_kept;
  groups_dropped += other.groups_dropped;
  rollouts_kept += other.rollouts_kept;
  rollouts_dropped += other.rollouts_dropped;
  return *this;
}

absl::StatusOr<DynamicSamplingResult> FilterGroupsWithoutSignal(
    absl::Span<const double> rewards, absl::Span<const int> group_sizes) {
  RETURN_IF_ERROR(CheckLayout(rewards.size(), group_sizes));
  DynamicSamplingResult result;
  result.kept_groups.reserve(group_sizes.size());
  size_t begin = 0;
  for (size_t g = 0; g < group_sizes.size(); ++g) {
    const int size = group_sizes[g];
    if (HasLearningSignal(rewards.subspan(begin, size))) {
      result.kept_groups.push_back(static_cast<int>(g));
      ++result.stats.groups_kept;
      result.stats.rollouts_kept += size;
    } else {
      ++result.stats.groups_dropped;
      result.stats.rollouts_dropped += size;
    }
    begin += static_cast<size_t>(size);
  }
  return result;
}

}  // namespace fapo::algorithm
