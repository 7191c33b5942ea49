// GRPO advantages and DAPO's dynamic-sampling filter.
//
// A group is the G rollouts of one prompt. Within a group:
//
//   GRPO      (scale_by_std = true):  A_i = (r_i - mean) / (std + eps)
//   Dr. GRPO  (scale_by_std = false): A_i =  r_i - mean
//
// with std the unbiased (n - 1) standard deviation: see NOTE [unbiased-std].
// A group whose rewards are all equal (one rollout included) has no learning
// signal: its advantages are exactly 0, and dynamic sampling drops it.
//
// Batches are laid out group after group: rewards[0 .. group_sizes[0]) is
// group 0, the next group_sizes[1] values group 1, and so on.
//
// The span functions never allocate and may write in place: `advantages` may
// be the very span `rewards` (same data and size); any other overlap is
// undefined. All functions are thread-safe.
#ifndef FAPO_ALGORITHM_ADVANTAGES_H_
#define FAPO_ALGORITHM_ADVANTAGES_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace fapo::algorithm {

struct AdvantageOptions {
  // true: GRPO, divide by (std + eps). false: Dr. GRPO, no division.
  // Default true.
  bool scale_by_std = true;
  // Added to the group std before dividing. Default 1e-6; finite and >= 0.
  double eps = 1e-6;
};

// InvalidArgument naming the offending field when `options` is out of range.
absl::Status ValidateAdvantageOptions(const AdvantageOptions& options);

// Mean and unbiased standard deviation of one group. Both are 0 for an empty
// group; std is 0 for a group of one.
struct GroupMoments {
  double mean = 0.0;
  double std = 0.0;
};
GroupMoments ComputeGroupMoments(absl::Span<const double> rewards) noexcept;

// True when the group's rewards are not all exactly equal (at least two
// distinct values): only such a group carries a policy-gradient signal.
bool HasLearningSignal(absl::Span<const double> rewards) noexcept;

// Advantages of one group, written into `advantages` (which may be
// `rewards` itself). InvalidArgument, writing nothing, when the sizes differ.
// `options` must be valid.
absl::Status ComputeGroupAdvantages(absl::Span<const double> rewards,
                                    const AdvantageOptions& options,
                                    absl::Span<double> advantages);
// Convenience: the same, into a new vector.
std::vector<double> ComputeGroupAdvantages(absl::Span<const double> rewards,
                                           const AdvantageOptions& options);

// Advantages of a batch of groups (layout above). InvalidArgument, writing
// nothing, when a group size is < 1, the sizes do not add up to
// rewards.size(), or advantages.size() != rewards.size().
absl::Status ComputeBatchAdvantages(absl::Span<const double> rewards,
                                    absl::Span<const int> group_sizes,
                                    const AdvantageOptions& options,
                                    absl::Span<double> advantages);
// Convenience: the same, into a new vector.
absl::StatusOr<std::vector<double>> ComputeBatchAdvantages(
    absl::Span<const double> rewards, absl::Span<const int> group_sizes,
    const AdvantageOptions& options);

// Counts from DAPO's dynamic sampling; add them up across batches with +=.
struct DynamicSamplingStats {
  int64_t groups_kept = 0;
  int64_t groups_dropped = 0;  // all rewards equal: no learning signal
  int64_t rollouts_kept = 0;
  int64_t rollouts_dropped = 0;

  DynamicSamplingStats& operator+=(const DynamicSamplingStats& other);
};

struct DynamicSamplingResult {
  // Indices of the groups that have a learning signal, ascending.
  std::vector<int> kept_groups;
  DynamicSamplingStats stats;
};

// DAPO's dynamic sampling: keeps the groups for which HasLearningSignal is
// true. Same layout and errors as ComputeBatchAdvantages (minus the output).
absl::StatusOr<DynamicSamplingResult> FilterGroupsWithoutSignal(
    absl::Span<const double> rewards, absl::Span<const int> group_sizes);

}  // namespace fapo::algorithm

#endif  // FAPO_ALGORITHM_ADVANTAGES_H_
