// Flawed-positive metrics: how many rollouts are sound, flawed positives or
// wrong, per group and summed over a batch, and how the GenRM's verdicts came
// out.
//
//   sound           correct answer, no step flagged
//   flawed positive correct answer, a step flagged by the GenRM
//   wrong           wrong answer (`flawed` is then ignored)
//
// alpha, beta and gamma are the paper's shares of sound, wrong and flawed
// rollouts (alpha + beta + gamma = 1 for a non-empty set); the
// flawed-positive ratio is flawed positives / correct rollouts, the number
// FAPO drives down. The classification does not depend on the reward kind:
// an RLVR run still measures its flawed positives.
#ifndef FAPO_ALGORITHM_FLAWED_METRICS_H_
#define FAPO_ALGORITHM_FLAWED_METRICS_H_

#include <array>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "algorithm/rewards.h"
#include "algorithm/verdict.h"

namespace fapo::algorithm {

enum class RolloutClass { kSound, kFlawedPositive, kWrong };

RolloutClass ClassifyRollout(const RolloutJudgement& judgement) noexcept;

// Counts over a set of rollouts (a group, a batch, a run). A value type:
// combine with +=. The ratios are 0 when their denominator is 0.
struct FlawedCounts {
  int64_t sound = 0;
  int64_t flawed_positive = 0;
  int64_t wrong = 0;
  // Indexed by static_cast<int>(VerdictStatus); see verdicts(). Only counted
  // by the overloads that are given verdict statuses.
  std::array<int64_t, kNumVerdictStatuses> verdicts_by_status{};

  int64_t total() const noexcept { return sound + flawed_positive + wrong; }
  int64_t correct() const noexcept { return sound + flawed_positive; }
  int64_t verdicts(VerdictStatus status) const noexcept;

  double alpha() const noexcept;                  // sound / total
  double beta() const noexcept;                   // wrong / total
  double gamma() const noexcept;                  // flawed positives / total
  double flawed_positive_ratio() const noexcept;  // flawed / correct

  void AddRollout(const RolloutJudgement& judgement) noexcept;
  void AddRollout(const RolloutJudgement& judgement,
                  VerdictStatus verdict) noexcept;
  FlawedCounts& operator+=(const FlawedCounts& other) noexcept;
};

// Counts of a group (or any set) of rollouts, without verdict counts.
FlawedCounts CountRollouts(
    absl::Span<const RolloutJudgement> judgements) noexcept;
// The same with verdicts[i] the status of rollout i's verdict.
// InvalidArgument when the sizes differ.
absl::StatusOr<FlawedCounts> CountRollouts(
    absl::Span<const RolloutJudgement> judgements,
    absl::Span<const VerdictStatus> verdicts);

}  // namespace fapo::algorithm

#endif  // FAPO_ALGORITHM_FLAWED_METRICS_H_
