#include "apps/launcher/progress.h"

#include <cmath>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace fapo::launcher {
namespace {

double Number(const nlohmann::json& metrics, const char* key) {
  if (!metrics.is_object()) return NAN;
  auto it = metrics.find(key);
  if (it == metrics.end() || !it->is_number()) return NAN;
  return it->get<double>();
}

}  // namespace

std::string FormatDuration(double seconds) {
  if (!(seconds >= 0) || std::isinf(seconds)) return "?";
  const int64_t total = static_cast<int64_t>(std::llround(seconds));
  if (total >= 3600) {
    return absl::StrFormat("%dh%02dm", total / 3600, total % 3600 / 60);
  }
  if (total >= 60) return absl::StrFormat("%dm%02ds", total / 60, total % 60);
  return absl::StrFormat("%ds", total);
}

bool MetricsTail::Poll() {
  std::ifstream in(path_, std::ios::binary);
  if (!in) return false;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < offset_) offset_ = 0;  // a new file
  if (size == offset_) return false;
  in.seekg(offset_);
  std::string chunk(static_cast<size_t>(size - offset_), '\0');
  in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
  const size_t end = chunk.rfind('\n');
  if (end == std::string::npos) return false;  // a line still being written
  offset_ += static_cast<std::streamoff>(end + 1);
  bool fresh = false;
  size_t start = 0;
  while (start < end) {
    const size_t newline = chunk.find('\n', start);
    nlohmann::json line =
        nlohmann::json::parse(chunk.substr(start, newline - start), nullptr,
                              /*allow_exceptions=*/false);
    if (line.is_object()) {
      last_ = std::move(line);
      fresh = true;
    }
    start = newline + 1;
  }
  return fresh;
}

std::string FormatProgress(int64_t step, int64_t total_steps,
                           const nlohmann::json& metrics,
                           double seconds_per_step) {
  std::vector<std::string> parts = {
      absl::StrCat("step ", step, "/", total_steps)};
  auto add = [&](const char* label, double value, const char* format) {
    if (std::isnan(value)) return;
    parts.push_back(absl::StrCat(label, " ", absl::StrFormat(format, value)));
  };
  add("reward", Number(metrics, "reward_mean"), "%.3f");
  add("acc", Number(metrics, "accuracy"), "%.3f");
  add("flawed", Number(metrics, "flawed_positive_ratio"), "%.3f");
  add("stale", Number(metrics, "staleness_mean"), "%.2f");
  // The share of the step the trainer sat waiting because of the GenRM.
  const double genrm_wait = Number(metrics, "genrm_wait_s");
  const double step_s = Number(metrics, "step_s");
  if (!std::isnan(genrm_wait) && step_s > 0) {
    add("genrm wait", 100.0 * genrm_wait / step_s, "%.0f%%");
  }
  if (seconds_per_step > 0) {
    parts.push_back(absl::StrFormat("%.2f s/step", seconds_per_step));
    parts.push_back(absl::StrCat(
        "ETA ",
        FormatDuration(seconds_per_step * static_cast<double>(std::max<int64_t>(
                                              total_steps - step, 0)))));
  }
  return absl::StrJoin(parts, " | ");
}

}  // namespace fapo::launcher
