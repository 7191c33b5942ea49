#include "genrm_server/genrm_text.h"

#include "absl/strings/str_split.h"
#include "algorithm/genrm_prompt.h"

namespace fapo::genrm {

std::vector<std::string> GenrmSteps(const fapo::v1::ScoreRequest& request) {
  if (request.task() != "arith") {
    return algorithm::SplitParagraphs(request.solution());
  }
  absl::string_view solution = request.solution();
  if (!solution.empty() && solution.back() == '\n') solution.remove_suffix(1);
  if (solution.empty()) return {};
  return absl::StrSplit(solution, '\n');
}

fapo::v1::VerdictStatus ToWireVerdictStatus(algorithm::VerdictStatus status) {
  switch (status) {
    case algorithm::VerdictStatus::kOk:
      return fapo::v1::VERDICT_STATUS_OK;
    case algorithm::VerdictStatus::kUnparsable:
      return fapo::v1::VERDICT_STATUS_UNPARSABLE;
    case algorithm::VerdictStatus::kInvalid:
      return fapo::v1::VERDICT_STATUS_INVALID;
    case algorithm::VerdictStatus::kTimeout:
      return fapo::v1::VERDICT_STATUS_TIMEOUT;
    case algorithm::VerdictStatus::kSkipped:
      return fapo::v1::VERDICT_STATUS_SKIPPED;
  }
  return fapo::v1::VERDICT_STATUS_UNSPECIFIED;
}

std::string TruncateUtf8(absl::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  size_t end = max_bytes;
  // Back up over continuation bytes (10xxxxxx) to a character's start.
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) {
    --end;
  }
  return std::string(text.substr(0, end));
}

fapo::v1::Verdict VerdictFromSamples(absl::string_view trajectory_id,
                                     int num_steps,
                                     absl::Span<const std::string> sample_texts,
                                     size_t max_critique_bytes) {
  std::vector<algorithm::ParsedVerdict> parsed;
  parsed.reserve(sample_texts.size());
  for (const std::string& text : sample_texts) {
    parsed.push_back(algorithm::ParseVerdict(text, num_steps));
  }
  const algorithm::MajorityVerdict vote = algorithm::MajorityVote(parsed);
  fapo::v1::Verdict verdict;
  verdict.set_trajectory_id(std::string(trajectory_id));
  verdict.set_answer_correct(true);
  verdict.set_status(ToWireVerdictStatus(vote.status));
  verdict.set_first_error_step(vote.first_error_step);
  verdict.set_num_steps(num_steps);
  verdict.set_num_samples(vote.num_samples);
  verdict.set_num_agreeing(vote.num_agreeing);
  if (!sample_texts.empty()) {
    verdict.set_critique(TruncateUtf8(sample_texts[0], max_critique_bytes));
  }
  return verdict;
}

}  // namespace fapo::genrm
