#include "algorithm/flawed_metrics.h"

#include <cstddef>

#include "absl/strings/str_cat.h"

namespace fapo::algorithm {
namespace {

double Share(int64_t part, int64_t whole) {
  return whole == 0 ? 0.0
                    : static_cast<double>(part) / static_cast<double>(whole);
}

}  // namespace

RolloutClass ClassifyRollout(const RolloutJudgement& judgement) noexcept {
  if (!judgement.answer_correct) return RolloutClass::kWrong;
  return judgement.flawed ? RolloutClass::kFlawedPositive
                          : RolloutClass::kSound;
}

int64_t FlawedCounts::verdicts(VerdictStatus status) const noexcept {
  const int index = static_cast<int>(status);
  if (index < 0 || index >= kNumVerdictStatuses) return 0;
  return verdicts_by_status[index];
}

double FlawedCounts::alpha() const noexcept { return Share(sound, total()); }
double FlawedCounts::beta() const noexcept { return Share(wrong, total()); }
double FlawedCounts::gamma() const noexcept {
  return Share(flawed_positive, total());
}
double FlawedCounts::flawed_positive_ratio() const noexcept {
  return Share(flawed_positive, correct());
}

void FlawedCounts::AddRollout(const RolloutJudgement& judgement) noexcept {
  switch (ClassifyRollout(judgement)) {
    case RolloutClass::kSound:
      ++sound;
      break;
    case RolloutClass::kFlawedPositive:
      ++flawed_positive;
      break;
    case RolloutClass::kWrong:
      ++wrong;
      break;
  }
}

void FlawedCounts::AddRollout(const RolloutJudgement& judgement,
                              VerdictStatus verdict) noexcept {
  AddRollout(judgement);
  const int index = static_cast<int>(verdict);
  if (index >= 0 && index < kNumVerdictStatuses) ++verdicts_by_status[index];
}

FlawedCounts& FlawedCounts::operator+=(const FlawedCounts& other) noexcept {
  sound += other.sound;
  flawed_positive += other.flawed_positive;
  wrong += other.wrong;
  for (int i = 0; i < kNumVerdictStatuses; ++i) {
    verdicts_by_status[i] += other.verdicts_by_status[i];
  }
  return *this;
}

FlawedCounts CountRollouts(
    absl::Span<const RolloutJudgement> judgements) noexcept {
  FlawedCounts counts;
  for (const RolloutJudgement& judgement : judgements) {
    counts.AddRollout(judgement);
  }
  return counts;
}

absl::StatusOr<FlawedCounts> CountRollouts(
    absl::Span<const RolloutJudgement> judgements,
    absl::Span<const VerdictStatus> verdicts) {
  if (judgements.size() != verdicts.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("CountRollouts: ", judgements.size(), " judgements but ",
                     verdicts.size(), " verdict statuses"));
  }
  FlawedCounts counts;
  for (size_t i = 0; i < judgements.size(); ++i) {
    counts.AddRollout(judgements[i], verdicts[i]);
  }
  return counts;
}

}  // namespace fapo::algorithm
