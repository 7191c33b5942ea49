#include "algorithm/genrm_prompt.h"

#include <cstddef>
#include <utility>

#include "absl/strings/str_cat.h"

namespace fapo::algorithm {
namespace {

bool IsBlankLine(absl::string_view line) {
  for (char c : line) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\f' && c != '\v') {
      return false;
    }
  }
  return true;
}

// FAPO paper, Appendix F. The text around the problem, the ground truth and
// the tagged steps, verbatim.
constexpr absl::string_view kPromptHead =
    "The following is a math problem with its ground truth answer, along with "
    "an AI solution (split into paragraphs, enclosed with tags and indexed "
    "from 0):\n\n[Math Problem]\n\n";
constexpr absl::string_view kPromptBeforeGroundTruth = "\n\n[Ground Truth]\n\n";
constexpr absl::string_view kPromptBeforeSolution = "\n\n[AI Solution]\n\n";
constexpr absl::string_view kPromptTail =
    "\n\nYour task is to review and critique the solution paragraph by "
    "paragraph. Once you identify an error in a paragraph, return the index "
    "of the paragraph where the earliest error occurs. Otherwise, return the "
    "index of -1 (which typically denotes \"not found\").\n\nPlease reason "
    "step by step, put your final answer (i.e., the index) in \\boxed{}.";

}  // namespace

std::vector<std::string> SplitParagraphs(absl::string_view solution) {
  std::vector<std::string> paragraphs;
  std::string current;
  bool in_paragraph = false;
  size_t begin = 0;
  while (begin <= solution.size()) {
    size_t end = solution.find('\n', begin);
    if (end == absl::string_view::npos) end = solution.size();
    absl::string_view line = solution.substr(begin, end - begin);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (IsBlankLine(line)) {
      if (in_paragraph) paragraphs.push_back(std::move(current));
      current.clear();
      in_paragraph = false;
    } else {
      if (in_paragraph) current.push_back('\n');
      current.append(line.data(), line.size());
      in_paragraph = true;
    }
    begin = end + 1;
  }
  if (in_paragraph) paragraphs.push_back(std::move(current));
  return paragraphs;
}

std::string BuildGenrmPrompt(absl::string_view problem,
                             absl::string_view ground_truth,
                             absl::Span<const std::string> steps) {
  std::string prompt;
  size_t size = kPromptHead.size() + problem.size() +
                kPromptBeforeGroundTruth.size() + ground_truth.size() +
                kPromptBeforeSolution.size() + kPromptTail.size();
  // "<paragraph_i>\n" + "\n</paragraph_i>" + "\n\n", with room for i.
  for (const std::string& step : steps) size += step.size() + 48;
  prompt.reserve(size);
  absl::StrAppend(&prompt, kPromptHead, problem, kPromptBeforeGroundTruth,
                  ground_truth, kPromptBeforeSolution);
  for (size_t i = 0; i < steps.size(); ++i) {
    if (i > 0) prompt.append("\n\n");
    absl::StrAppend(&prompt, "<paragraph_", i, ">\n", steps[i],
                    "\n</paragraph_", i, ">");
  }
  prompt.append(kPromptTail.data(), kPromptTail.size());
  return prompt;
}

}  // namespace fapo::algorithm
