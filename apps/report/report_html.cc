#include "apps/report/report_html.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "services/config/job_spec.h"
#include "services/files/files.h"
#include "services/status/status_macros.h"

namespace fapo::report {
namespace {

// ---------------------------------------------------------------------------
// Text

std::string Escape(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

size_t CharCount(absl::string_view text) {
  size_t chars = 0;
  for (char c : text) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++chars;
  }
  return chars;
}

// At most `max_chars` characters of UTF-8 `text`, an ellipsis marking a
// cut: labels inside a chart have a fixed room.
std::string Shorten(absl::string_view text, size_t max_chars) {
  size_t chars = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) continue;
    if (chars + 1 == max_chars && CharCount(text.substr(i)) > 1) {
      return absl::StrCat(text.substr(0, i), "\u2026");
    }
    ++chars;
  }
  return std::string(text);
}

// A pixel coordinate: a tenth of a pixel is finer than any screen needs and
// keeps a long curve's path short.
std::string Px(double value) {
  std::string text = absl::StrFormat("%.1f", value);
  if (absl::EndsWith(text, ".0")) text.resize(text.size() - 2);
  if (text == "-0") text = "0";
  return text;
}

std::string Fixed(double value, int digits) {
  if (!std::isfinite(value)) return "&ndash;";
  return absl::StrFormat("%.*f", digits, value);
}

// A value for a data-value attribute: exact enough for a test to compare.
std::string DataValue(double value) {
  if (!std::isfinite(value)) return "";
  return absl::StrFormat("%.6g", value);
}

// ---------------------------------------------------------------------------
// Colours

// Tableau 10: distinct for the common kinds of colour blindness, readable on
// white. A run takes its colour by its place on the page.
constexpr const char* kRunColors[] = {
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};

std::string RunColor(size_t run) {
  return kRunColors[run % (sizeof(kRunColors) / sizeof(kRunColors[0]))];
}

// ---------------------------------------------------------------------------
// Axes

struct Ticks {
  double low = 0;
  double high = 1;
  std::vector<double> values;
  int decimals = 0;
};

// Round ticks (1, 2 or 5 times a power of ten) covering [low, high].
Ticks NiceTicks(double low, double high, int target_count) {
  Ticks ticks;
  if (!std::isfinite(low) || !std::isfinite(high)) {
    low = 0;
    high = 1;
  }
  if (high - low < 1e-12) {
    const double pad = std::max(std::abs(low) * 0.1, 0.5);
    low -= pad;
    high += pad;
  }
  const double raw = (high - low) / std::max(target_count, 1);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double factor : {1.0, 2.0, 5.0, 10.0}) {
    step = factor * magnitude;
    if (step >= raw) break;
  }
  ticks.low = std::floor(low / step + 1e-9) * step;
  ticks.high = std::ceil(high / step - 1e-9) * step;
  for (double value = ticks.low; value <= ticks.high + step * 1e-6;
       value += step) {
    ticks.values.push_back(std::abs(value) < step * 1e-9 ? 0.0 : value);
  }
  ticks.decimals =
      std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9)));
  return ticks;
}

// Ticks at whole steps within [first, last], the domain the curves span.
Ticks StepTicks(double first, double last) {
  Ticks ticks;
  if (last - first < 1) {
    // One step: a domain around it, for the dot to sit in the middle.
    ticks.low = first - 1;
    ticks.high = last + 1;
    ticks.values = {first};
    return ticks;
  }
  const Ticks round = NiceTicks(first, last, 6);
  ticks.low = first;
  ticks.high = last;
  if (round.decimals > 0) {
    // Fewer steps than ticks wanted: every step a tick.
    for (double step = first; step <= last; ++step)
      ticks.values.push_back(step);
    return ticks;
  }
  for (double value : round.values) {
    if (value >= first - 1e-9 && value <= last + 1e-9) {
      ticks.values.push_back(value);
    }
  }
  return ticks;
}

std::string TickLabel(double value, int decimals) {
  return absl::StrFormat("%.*f", decimals, value);
}

struct Scale {
  double domain_low, domain_high, range_low, range_high;
  double operator()(double value) const {
    if (domain_high == domain_low) return (range_low + range_high) / 2;
    return range_low + (value - domain_low) / (domain_high - domain_low) *
                           (range_high - range_low);
  }
};

// ---------------------------------------------------------------------------
// Chart frame: title, note, plot area, legend.

constexpr double kChartWidth = 560;
constexpr double kPlotLeft = 58;
constexpr double kPlotRight = kChartWidth - 18;
constexpr double kPlotTop = 50;

struct LegendItem {
  std::string label;
  std::string color;
  std::string dash;  // stroke-dasharray; "" solid
  bool box = false;  // a filled square rather than a line
};

// Legend items laid out in rows below the plot; returns the SVG and adds
// the height used to `height`.
std::string Legend(const std::vector<LegendItem>& items, double top,
                   double& height) {
  std::string out = absl::StrCat("<g class=\"legend\">");
  double x = kPlotLeft;
  double y = top + 12;
  for (const LegendItem& item : items) {
    const std::string label = Shorten(item.label, 40);
    const double width = 28 + 6.6 * static_cast<double>(CharCount(label)) + 16;
    if (x + width > kChartWidth - 4 && x > kPlotLeft) {
      x = kPlotLeft;
      y += 18;
    }
    if (item.box) {
      absl::StrAppend(&out, "<rect x=\"", Px(x), "\" y=\"", Px(y - 9),
                      "\" width=\"18\" height=\"10\" fill=\"", item.color,
                      "\"/>");
    } else {
      absl::StrAppend(&out, "<line x1=\"", Px(x), "\" y1=\"", Px(y - 4),
                      "\" x2=\"", Px(x + 20), "\" y2=\"", Px(y - 4),
                      "\" stroke=\"", item.color, "\" stroke-width=\"2.5\"",
                      item.dash.empty() ? std::string()
                                        : absl::StrCat(" stroke-dasharray=\"",
                                                       item.dash, "\""),
                      "/>");
    }
    absl::StrAppend(&out, "<text x=\"", Px(x + 26), "\" y=\"", Px(y), "\">",
                    Escape(label), "</text>");
    x += width;
  }
  absl::StrAppend(&out, "</g>");
  height += (y - top) + 10;
  return out;
}

std::string ChartOpen(absl::string_view id, absl::string_view title,
                      absl::string_view note, double height) {
  std::string out = absl::StrCat(
      "<svg class=\"chart\" data-chart=\"", id, "\" viewBox=\"0 0 ",
      Px(kChartWidth), " ", Px(height), "\" role=\"img\" aria-label=\"",
      Escape(title), "\">", "<text class=\"title\" x=\"", Px(kPlotLeft - 46),
      "\" y=\"20\">", Escape(title), "</text>");
  if (!note.empty()) {
    absl::StrAppend(&out, "<text class=\"note\" x=\"", Px(kPlotLeft - 46),
                    "\" y=\"37\">", Escape(note), "</text>");
  }
  return out;
}

// Horizontal grid lines with their labels on the left, and the x axis line.
std::string YAxis(const Ticks& ticks, const Scale& y, double plot_bottom,
                  absl::string_view label, bool percent = false) {
  std::string out = "<g class=\"axis y\">";
  for (double value : ticks.values) {
    const double py = y(value);
    absl::StrAppend(&out, "<line class=\"grid\" x1=\"", Px(kPlotLeft),
                    "\" x2=\"", Px(kPlotRight), "\" y1=\"", Px(py), "\" y2=\"",
                    Px(py), "\"/><text class=\"tick\" x=\"", Px(kPlotLeft - 6),
                    "\" y=\"", Px(py + 4), "\" text-anchor=\"end\">",
                    percent ? absl::StrCat(TickLabel(100 * value, 0), "%")
                            : TickLabel(value, ticks.decimals),
                    "</text>");
  }
  const double middle = (kPlotTop + plot_bottom) / 2;
  absl::StrAppend(&out, "<text class=\"label\" transform=\"translate(14 ",
                  Px(middle), ") rotate(-90)\" text-anchor=\"middle\">",
                  Escape(label), "</text></g>");
  return out;
}

std::string XAxis(const Ticks& ticks, const Scale& x, double plot_bottom,
                  absl::string_view label, bool percent = false) {
  std::string out =
      absl::StrCat("<g class=\"axis x\"><line class=\"axis-line\" x1=\"",
                   Px(kPlotLeft), "\" x2=\"", Px(kPlotRight), "\" y1=\"",
                   Px(plot_bottom), "\" y2=\"", Px(plot_bottom), "\"/>");
  for (double value : ticks.values) {
    const double px = x(value);
    absl::StrAppend(&out, "<line class=\"tick-mark\" x1=\"", Px(px), "\" x2=\"",
                    Px(px), "\" y1=\"", Px(plot_bottom), "\" y2=\"",
                    Px(plot_bottom + 4), "\"/><text class=\"tick\" x=\"",
                    Px(px), "\" y=\"", Px(plot_bottom + 17),
                    "\" text-anchor=\"middle\">",
                    percent ? absl::StrCat(TickLabel(100 * value, 0), "%")
                            : TickLabel(value, ticks.decimals),
                    "</text>");
  }
  absl::StrAppend(&out, "<text class=\"label\" x=\"",
                  Px((kPlotLeft + kPlotRight) / 2), "\" y=\"",
                  Px(plot_bottom + 34), "\" text-anchor=\"middle\">",
                  Escape(label), "</text></g>");
  return out;
}

// ---------------------------------------------------------------------------
// Line charts (by step)

constexpr size_t kMaxPointsPerCurve = 500;
constexpr double kLinePlotBottom = kPlotTop + 190;

struct Point {
  double x;
  double y;
};

struct Line {
  std::string series;  // data-series
  std::string run;     // data-run
  std::string label;   // the legend's words, for the tooltip
  std::string color;
  std::string dash;
  std::vector<Point> points;
};

struct LineChart {
  std::string id;
  std::string title;
  std::string note;
  std::string y_label;
  std::optional<std::pair<double, double>> y_range;  // else from the data
  // The steps the axis spans: the runs' first and last, which the means of
  // spans of steps fall inside of.
  std::pair<double, double> x_range = {0, 0};
  std::vector<Line> lines;
  std::vector<LegendItem> legend;
};

std::string DrawLineChart(const LineChart& chart) {
  const auto [first, last] = chart.x_range;
  double low = std::numeric_limits<double>::infinity();
  double high = -low;
  for (const Line& line : chart.lines) {
    for (const Point& point : line.points) {
      if (std::isfinite(point.y)) {
        low = std::min(low, point.y);
        high = std::max(high, point.y);
      }
    }
  }
  const bool has_data = std::isfinite(low);
  Ticks y_ticks =
      chart.y_range.has_value()
          ? NiceTicks(chart.y_range->first, chart.y_range->second, 5)
          : NiceTicks(has_data ? low : 0, has_data ? high : 1, 5);
  if (chart.y_range.has_value() && has_data) {
    // A value outside the expected range (a reward above 1) widens it
    // rather than leaving the plot.
    if (low < y_ticks.low || high > y_ticks.high) {
      y_ticks = NiceTicks(std::min(low, y_ticks.low),
                          std::max(high, y_ticks.high), 5);
    }
  }
  const Ticks x_ticks = StepTicks(first, last);
  const Scale x{x_ticks.low, x_ticks.high, kPlotLeft + 4, kPlotRight - 4};
  const Scale y{y_ticks.low, y_ticks.high, kLinePlotBottom, kPlotTop};

  double height = kLinePlotBottom + 42;
  std::string legend = Legend(chart.legend, height, height);
  std::string out = ChartOpen(chart.id, chart.title, chart.note, height);
  absl::StrAppend(&out, YAxis(y_ticks, y, kLinePlotBottom, chart.y_label),
                  XAxis(x_ticks, x, kLinePlotBottom, "step"));
  if (!has_data) {
    absl::StrAppend(&out, "<text class=\"empty\" x=\"",
                    Px((kPlotLeft + kPlotRight) / 2), "\" y=\"",
                    Px((kPlotTop + kLinePlotBottom) / 2),
                    "\" text-anchor=\"middle\">no data in metrics.jsonl"
                    "</text>");
  }
  for (const Line& line : chart.lines) {
    const std::string attributes =
        absl::StrCat(" data-chart=\"", chart.id, "\" data-series=\"",
                     line.series, "\" data-run=\"", Escape(line.run), "\"");
    std::string path;
    std::vector<Point> dots;  // points with no neighbour to join
    int64_t drawn = 0;
    for (size_t i = 0; i < line.points.size(); ++i) {
      const Point& point = line.points[i];
      if (!std::isfinite(point.y)) continue;
      const bool joined_before = i > 0 && std::isfinite(line.points[i - 1].y);
      const bool joined_after =
          i + 1 < line.points.size() && std::isfinite(line.points[i + 1].y);
      const double px = x(point.x);
      const double py = y(point.y);
      absl::StrAppend(&path, joined_before ? "L" : "M", Px(px), " ", Px(py));
      if (!joined_before && !joined_after) dots.push_back({px, py});
      ++drawn;
    }
    if (drawn == 0) continue;
    const std::string tooltip =
        absl::StrCat("<title>", Escape(line.label), "</title>");
    absl::StrAppend(&out, "<path class=\"series\"", attributes,
                    " data-points=\"", drawn, "\" fill=\"none\" stroke=\"",
                    line.color,
                    "\" stroke-width=\"2\" stroke-linejoin=\"round\"",
                    line.dash.empty()
                        ? std::string()
                        : absl::StrCat(" stroke-dasharray=\"", line.dash, "\""),
                    " d=\"", path, "\">", tooltip, "</path>");
    for (const Point& dot : dots) {
      absl::StrAppend(&out, "<circle class=\"point\"", attributes, " cx=\"",
                      Px(dot.x), "\" cy=\"", Px(dot.y), "\" r=\"3.5\" fill=\"",
                      line.color, "\">", tooltip, "</circle>");
    }
  }
  absl::StrAppend(&out, legend, "</svg>");
  return out;
}

// Spans of steps a curve is drawn by: every step, or the means of
// kMaxPointsPerCurve equal spans when there are more (a 560-pixel chart
// shows no more, and the page stays small for a long run).
std::vector<std::pair<size_t, size_t>> CurveSpans(size_t steps) {
  const size_t spans = std::min(steps, kMaxPointsPerCurve);
  std::vector<std::pair<size_t, size_t>> out;
  for (size_t span = 0; span < spans; ++span) {
    out.emplace_back(span * steps / spans, (span + 1) * steps / spans);
  }
  return out;
}

std::vector<Point> Curve(const std::vector<StepMetrics>& steps,
                         const std::function<double(const StepMetrics&)>& of) {
  std::vector<Point> points;
  for (const auto& [begin, end] : CurveSpans(steps.size())) {
    Mean step, value;
    for (size_t i = begin; i < end; ++i) {
      step.Add(static_cast<double>(steps[i].step));
      const double v = of(steps[i]);
      value.Add(std::isfinite(v) ? v : kMissing);
    }
    points.push_back({step.value(), value.value()});
  }
  return points;
}

// ---------------------------------------------------------------------------
// Step time

struct TimePart {
  const char* key;  // data-series: the metrics.jsonl field
  const char* label;
  const char* color;
};

// Stacked bottom to top. Light colours (Tableau 20's light halves), so no
// part is mistaken for a run, whose colours are the dark halves.
constexpr TimePart kTimeParts[] = {
    {"train_s", "training", "#8cd17d"},
    {"generation_wait_s", "waiting for generation", "#a0cbe8"},
    {"genrm_wait_s", "waiting for the GenRM", "#d4a6c8"},
    {"wait_for_batch_s", "waiting for the batch (not split)", "#d7b5a6"},
    {"weight_sync_s", "weight sync", "#ffbe7d"},
    {"checkpoint_s", "checkpoint", "#ff9d9a"},
    {"other_s", "rest of the step", "#d9d9d9"},
};
constexpr size_t kTimePartCount = sizeof(kTimeParts) / sizeof(kTimeParts[0]);

using PartSeconds = std::array<double, kTimePartCount>;

double ZeroIfMissing(double value) {
  return std::isfinite(value) ? std::max(value, 0.0) : 0.0;
}

// A step's time by part. The batch wait counts whole only where the line
// has no generation/GenRM split (older lines); whatever of step_s no part
// names is the rest.
PartSeconds StepParts(const StepMetrics& step) {
  const bool split =
      std::isfinite(step.generation_wait_s) || std::isfinite(step.genrm_wait_s);
  PartSeconds parts = {
      ZeroIfMissing(step.train_s),
      ZeroIfMissing(step.generation_wait_s),
      ZeroIfMissing(step.genrm_wait_s),
      split ? 0.0 : ZeroIfMissing(step.wait_for_batch_s),
      ZeroIfMissing(step.weight_sync_s),
      ZeroIfMissing(step.checkpoint_s),
      0.0,
  };
  double named = 0;
  for (double part : parts) named += part;
  parts.back() = std::max(0.0, ZeroIfMissing(step.step_s) - named);
  return parts;
}

PartSeconds MeanParts(const std::vector<StepMetrics>& steps, size_t begin,
                      size_t end) {
  PartSeconds sum{};
  for (size_t i = begin; i < end; ++i) {
    const PartSeconds parts = StepParts(steps[i]);
    for (size_t p = 0; p < kTimePartCount; ++p) sum[p] += parts[p];
  }
  for (double& part : sum) part /= std::max<double>(1, end - begin);
  return sum;
}

double Total(const PartSeconds& parts) {
  double total = 0;
  for (double part : parts) total += part;
  return total;
}

// Legend items of the parts some run spent time in.
std::vector<LegendItem> PartLegend(const std::vector<bool>& used) {
  std::vector<LegendItem> legend;
  for (size_t p = 0; p < kTimePartCount; ++p) {
    if (used[p])
      legend.push_back(
          {kTimeParts[p].label, kTimeParts[p].color, "", /*box=*/true});
  }
  return legend;
}

constexpr size_t kStepTimeBars = 40;

// One run's steps over time: a stacked bar per span of steps, each part
// one path of rectangles.
std::string StepTimeOverRun(const RunData& run, const std::string& name,
                            double max_seconds) {
  const std::vector<StepMetrics>& steps = run.steps;
  const size_t spans = std::min(steps.size(), kStepTimeBars);
  // Each bar spans its steps' numbers (min and max: a resumed run's lines
  // need not be in order).
  std::vector<std::pair<double, double>> bounds;
  std::vector<PartSeconds> means;
  std::vector<bool> used(kTimePartCount, false);
  for (size_t span = 0; span < spans; ++span) {
    const size_t begin = span * steps.size() / spans;
    const size_t end = (span + 1) * steps.size() / spans;
    double low = static_cast<double>(steps[begin].step);
    double high = low;
    for (size_t i = begin; i < end; ++i) {
      low = std::min(low, static_cast<double>(steps[i].step));
      high = std::max(high, static_cast<double>(steps[i].step));
    }
    bounds.emplace_back(low, high);
    means.push_back(MeanParts(steps, begin, end));
    for (size_t p = 0; p < kTimePartCount; ++p) {
      if (means.back()[p] > 0) used[p] = true;
    }
  }
  double first = bounds.front().first;
  double last = bounds.front().second;
  for (const auto& [low, high] : bounds) {
    first = std::min(first, low);
    last = std::max(last, high);
  }
  Ticks x_ticks = StepTicks(first, last);
  x_ticks.low = first - 0.5;
  x_ticks.high = last + 0.5;
  const Scale x{x_ticks.low, x_ticks.high, kPlotLeft + 2, kPlotRight - 2};
  const Ticks y_ticks = NiceTicks(0, std::max(max_seconds, 1e-3), 5);
  const Scale y{y_ticks.low, y_ticks.high, kLinePlotBottom, kPlotTop};

  double height = kLinePlotBottom + 42;
  const std::string legend = Legend(PartLegend(used), height, height);
  const size_t steps_per_bar = (steps.size() + spans - 1) / spans;
  std::string out = ChartOpen(
      "step-time", absl::StrCat("Step time over the run: ", name),
      steps_per_bar > 1 ? absl::StrCat("mean seconds per step, bars of ~",
                                       steps_per_bar, " steps")
                        : std::string("seconds per step"),
      height);
  absl::StrAppend(&out, YAxis(y_ticks, y, kLinePlotBottom, "seconds"),
                  XAxis(x_ticks, x, kLinePlotBottom, "step"));
  std::vector<double> base(spans, 0.0);
  for (size_t p = 0; p < kTimePartCount; ++p) {
    if (!used[p]) continue;
    std::string path;
    for (size_t span = 0; span < spans; ++span) {
      const double seconds = means[span][p];
      const double bottom = base[span];
      base[span] += seconds;
      if (seconds <= 0) continue;
      const double left = x(bounds[span].first - 0.5);
      const double right = x(bounds[span].second + 0.5);
      const double gap = std::min(1.0, (right - left) * 0.15);
      absl::StrAppend(&path, "M", Px(left + gap), " ", Px(y(bottom)), "H",
                      Px(right - gap), "V", Px(y(bottom + seconds)), "H",
                      Px(left + gap), "Z");
    }
    absl::StrAppend(&out,
                    "<path class=\"series\" data-chart=\"step-time\" "
                    "data-series=\"",
                    kTimeParts[p].key, "\" data-run=\"", Escape(name),
                    "\" fill=\"", kTimeParts[p].color, "\" d=\"", path,
                    "\"><title>", Escape(name), ": ", kTimeParts[p].label,
                    "</title></path>");
  }
  absl::StrAppend(&out, legend, "</svg>");
  return out;
}

// ---------------------------------------------------------------------------
// Horizontal bar charts: categories down, a bar per run in each.

struct BarRun {
  std::string name;
  std::string color;
  std::vector<double> values;       // by category; NaN: no bar
  std::vector<std::string> labels;  // the words at the bar's end
};

struct BarChart {
  std::string id;
  std::string title;
  std::string note;
  std::string x_label;
  std::vector<std::string> categories;  // data-category
  std::vector<std::string> category_labels;
  std::vector<BarRun> runs;
  bool percent = false;    // values are shares, the axis in %
  bool symmetric = false;  // the axis centred on zero
  bool stacked = false;    // one bar per run, categories stacked along it
  std::vector<std::string> category_colors;  // when stacked
};

std::string DrawBarChart(const BarChart& chart) {
  constexpr double kBar = 13;
  constexpr double kBarGap = 3;
  constexpr double kGroupGap = 12;
  constexpr double kLabelRoom = 130;  // left of the plot: category names
  constexpr double kValueRoom = 62;   // right of the bars: their values
  const double plot_left = kPlotLeft + kLabelRoom - 40;
  const double plot_right = kPlotRight - kValueRoom;

  const size_t groups =
      chart.stacked ? chart.runs.size() : chart.categories.size();
  const size_t per_group = chart.stacked ? 1 : chart.runs.size();
  const double plot_bottom =
      kPlotTop + 6 + groups * (per_group * (kBar + kBarGap) + kGroupGap);

  double low = 0, high = 0;
  for (const BarRun& run : chart.runs) {
    double total = 0;
    for (double value : run.values) {
      if (!std::isfinite(value)) continue;
      low = std::min(low, value);
      high = std::max(high, value);
      total += value;
    }
    if (chart.stacked) high = std::max(high, total);
  }
  if (chart.symmetric) {
    const double reach = std::max({std::abs(low), std::abs(high), 0.1});
    low = -reach;
    high = reach;
  }
  if (chart.percent) high = std::max(high, 1e-9);
  Ticks ticks =
      chart.percent && !chart.symmetric
          ? NiceTicks(0, high > 0 ? std::min(1.0, std::max(high, 0.05)) : 1.0,
                      5)
          : NiceTicks(low, std::max(high, low + 1e-3), 5);
  const Scale x{ticks.low, ticks.high, plot_left, plot_right};

  double height = plot_bottom + 42;
  std::vector<LegendItem> legend_items;
  if (chart.stacked) {
    for (size_t c = 0; c < chart.categories.size(); ++c) {
      legend_items.push_back(
          {chart.category_labels[c], chart.category_colors[c], "", true});
    }
  } else {
    for (const BarRun& run : chart.runs) {
      legend_items.push_back({run.name, run.color, "", true});
    }
  }
  const std::string legend = Legend(legend_items, height, height);
  std::string out = ChartOpen(chart.id, chart.title, chart.note, height);

  // Vertical grid lines and the value axis.
  absl::StrAppend(&out, "<g class=\"axis x\">");
  for (double value : ticks.values) {
    const double px = x(value);
    absl::StrAppend(&out, "<line class=\"grid\" x1=\"", Px(px), "\" x2=\"",
                    Px(px), "\" y1=\"", Px(kPlotTop), "\" y2=\"",
                    Px(plot_bottom), "\"/><text class=\"tick\" x=\"", Px(px),
                    "\" y=\"", Px(plot_bottom + 17),
                    "\" text-anchor=\"middle\">",
                    chart.percent ? absl::StrCat(TickLabel(100 * value, 0), "%")
                                  : TickLabel(value, ticks.decimals),
                    "</text>");
  }
  absl::StrAppend(&out, "<line class=\"axis-line\" x1=\"", Px(x(0)), "\" x2=\"",
                  Px(x(0)), "\" y1=\"", Px(kPlotTop), "\" y2=\"",
                  Px(plot_bottom), "\"/><text class=\"label\" x=\"",
                  Px((plot_left + plot_right) / 2), "\" y=\"",
                  Px(plot_bottom + 34), "\" text-anchor=\"middle\">",
                  Escape(chart.x_label), "</text></g>");

  double top = kPlotTop + 6;
  for (size_t group = 0; group < groups; ++group) {
    const std::string group_label =
        chart.stacked ? chart.runs[group].name : chart.category_labels[group];
    const double group_height = per_group * (kBar + kBarGap) - kBarGap;
    absl::StrAppend(&out, "<text class=\"category\" x=\"", Px(plot_left - 8),
                    "\" y=\"", Px(top + group_height / 2 + 4),
                    "\" text-anchor=\"end\">", Escape(Shorten(group_label, 22)),
                    "<title>", Escape(group_label), "</title></text>");
    if (chart.stacked) {
      const BarRun& run = chart.runs[group];
      double at = 0;
      for (size_t c = 0; c < chart.categories.size(); ++c) {
        const double value = run.values[c];
        if (!std::isfinite(value) || value <= 0) continue;
        absl::StrAppend(
            &out, "<rect class=\"bar\" data-chart=\"", chart.id,
            "\" data-category=\"", chart.categories[c], "\" data-run=\"",
            Escape(run.name), "\" data-value=\"", DataValue(value), "\" x=\"",
            Px(x(at)), "\" y=\"", Px(top), "\" width=\"",
            Px(x(at + value) - x(at)), "\" height=\"", Px(kBar), "\" fill=\"",
            chart.category_colors[c], "\"><title>", Escape(run.name), ": ",
            Escape(chart.category_labels[c]), " ", Fixed(value, 3),
            "</title></rect>");
        at += value;
      }
      absl::StrAppend(&out, "<text class=\"value\" x=\"", Px(x(at) + 5),
                      "\" y=\"", Px(top + kBar - 2), "\">",
                      Escape(run.labels.empty() ? "" : run.labels[0]),
                      "</text>");
    } else {
      for (size_t r = 0; r < chart.runs.size(); ++r) {
        const BarRun& run = chart.runs[r];
        const double bar_top = top + r * (kBar + kBarGap);
        const double value = run.values[group];
        if (!std::isfinite(value)) {
          absl::StrAppend(&out, "<text class=\"value\" x=\"", Px(x(0) + 5),
                          "\" y=\"", Px(bar_top + kBar - 2), "\">",
                          run.labels[group].empty() ? std::string("&ndash;")
                                                    : Escape(run.labels[group]),
                          "</text>");
          continue;
        }
        const double from = x(std::min(0.0, value));
        const double to = x(std::max(0.0, value));
        absl::StrAppend(&out, "<rect class=\"bar\" data-chart=\"", chart.id,
                        "\" data-category=\"", Escape(chart.categories[group]),
                        "\" data-run=\"", Escape(run.name), "\" data-value=\"",
                        DataValue(value), "\" x=\"", Px(from), "\" y=\"",
                        Px(bar_top), "\" width=\"",
                        Px(std::max(to - from, 0.5)), "\" height=\"", Px(kBar),
                        "\" fill=\"", run.color, "\"><title>", Escape(run.name),
                        ": ", Escape(chart.category_labels[group]), " ",
                        Escape(run.labels[group]), "</title></rect>");
        const bool left_of_zero = value < 0;
        absl::StrAppend(&out, "<text class=\"value\" x=\"",
                        Px(left_of_zero ? from - 5 : to + 5), "\" y=\"",
                        Px(bar_top + kBar - 2), "\"",
                        left_of_zero ? " text-anchor=\"end\"" : "", ">",
                        Escape(run.labels[group]), "</text>");
      }
    }
    top += per_group * (kBar + kBarGap) + kGroupGap;
  }
  absl::StrAppend(&out, legend, "</svg>");
  return out;
}

// ---------------------------------------------------------------------------
// The page

struct PageRun {
  const RunData* data;
  std::string name;  // unique on the page
  std::string color;
};

// Job names, made unique with the directory (then a number) where two runs
// share one: a legend must tell every run apart.
std::vector<PageRun> NameRuns(absl::Span<const RunData> runs) {
  std::vector<PageRun> named;
  std::map<std::string, int> uses;
  for (const RunData& run : runs) ++uses[RunName(run)];
  std::set<std::string> taken;
  for (size_t i = 0; i < runs.size(); ++i) {
    std::string name = RunName(runs[i]);
    if (uses[name] > 1) {
      RunData dir_only;
      dir_only.run_dir = runs[i].run_dir;
      name = absl::StrCat(name, " (", RunName(dir_only), ")");
    }
    std::string unique = name;
    for (int k = 2; taken.count(unique) > 0; ++k) {
      unique = absl::StrCat(name, " #", k);
    }
    taken.insert(unique);
    named.push_back({&runs[i], unique, RunColor(i)});
  }
  return named;
}

constexpr char kStyle[] = R"css(
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f5f7; color: #1f2328;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto,
    "DejaVu Sans", "Liberation Sans", Arial, sans-serif; }
header { background: #24292f; color: #fff; padding: 18px 28px 14px; }
header h1 { margin: 0 0 4px; font-size: 22px; font-weight: 600; }
header p { margin: 0; color: #c9d1d9; }
header .swatch { border: 1px solid #fff6; }
main { max-width: 1180px; margin: 0 auto; padding: 8px 20px 40px; }
h2 { font-size: 17px; margin: 26px 0 4px; }
section > p.lead { margin: 0 0 10px; color: #57606a; max-width: 900px; }
.grid { display: grid; gap: 14px; align-items: start;
  grid-template-columns: repeat(auto-fill, minmax(500px, 1fr)); }
figure { margin: 0; background: #fff; border: 1px solid #d8dee4;
  border-radius: 6px; padding: 6px 8px 2px; }
svg.chart { display: block; width: 100%; height: auto; }
svg.chart text { font-size: 11.5px; fill: #3d444d;
  font-family: system-ui, "DejaVu Sans", Arial, sans-serif; }
svg.chart text.title { font-size: 14.5px; font-weight: 600; fill: #1f2328; }
svg.chart text.note { font-size: 11.5px; fill: #6e7781; }
svg.chart text.label { font-size: 12px; fill: #57606a; }
svg.chart text.empty { font-size: 13px; fill: #8c959f; }
svg.chart line.grid { stroke: #eaeef2; stroke-width: 1; }
svg.chart line.axis-line, svg.chart line.tick-mark { stroke: #8c959f;
  stroke-width: 1; }
table { border-collapse: collapse; background: #fff; margin: 6px 0 4px;
  border: 1px solid #d8dee4; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 10px; border-bottom: 1px solid #eaeef2;
  text-align: right; white-space: nowrap; }
th { background: #f6f8fa; font-weight: 600; }
th:first-child, td:first-child, .text { text-align: left; }
.grid + table { margin-top: 14px; }
td.path { text-align: left; font-family: ui-monospace, "DejaVu Sans Mono",
  monospace; font-size: 12px; color: #57606a; white-space: normal;
  word-break: break-all; max-width: 360px; }
.swatch { display: inline-block; width: 11px; height: 11px;
  border-radius: 2px; margin-right: 6px; vertical-align: -1px; }
.notes { color: #57606a; }
.notes li { margin: 2px 0; }
footer { color: #8c959f; font-size: 12px; margin-top: 28px; }
)css";

std::string Swatch(const std::string& color) {
  return absl::StrCat("<span class=\"swatch\" style=\"background:", color,
                      "\"></span>");
}

// The mean of `of` over the last tenth of the steps (at least one).
double LastTenth(const std::vector<StepMetrics>& steps,
                 const std::function<double(const StepMetrics&)>& of) {
  const size_t count = std::max<size_t>(1, steps.size() / 10);
  Mean mean;
  for (size_t i = steps.size() - count; i < steps.size(); ++i) {
    const double value = of(steps[i]);
    mean.Add(std::isfinite(value) ? value : kMissing);
  }
  return mean.value();
}

double Accuracy(const StepMetrics& s) { return s.accuracy; }
double Ratio(const StepMetrics& s) {
  return FlawedPositiveRatio(s.alpha, s.gamma);
}

void AddRunsTable(const std::vector<PageRun>& runs, std::string& out) {
  absl::StrAppend(&out, "<section id=\"runs\"><h2>",
                  runs.size() == 1 ? "The run" : "The runs",
                  "</h2><table><tr><th>run</th><th class=\"text\">task</th>"
                  "<th class=\"text\">reward</th>"
                  "<th>batch</th><th>steps</th><th>training time</th>"
                  "<th>accuracy*</th><th>flawed-positive ratio*</th>"
                  "<th class=\"text\">directory</th></tr>");
  for (const PageRun& run : runs) {
    const config::JobSpec& spec = run.data->spec;
    const std::vector<StepMetrics>& steps = run.data->steps;
    double seconds = 0;
    for (const StepMetrics& step : steps) seconds += ZeroIfMissing(step.step_s);
    const int64_t last = steps.back().step;
    absl::StrAppend(
        &out, "<tr class=\"run\" data-run=\"", Escape(run.name), "\"><td>",
        Swatch(run.color), Escape(run.name), "</td><td class=\"text\">",
        Escape(config::EnumName(spec.data.task)), "</td><td class=\"text\">",
        spec.algorithm.reward == config::RewardKind::kFapo
            ? absl::StrCat("fapo, &lambda; = ",
                           absl::StrFormat("%g", spec.algorithm.flawed_penalty))
            : std::string("rlvr"),
        "</td><td>", spec.rollout.prompts_per_step, " &times; ",
        spec.rollout.group_size, "</td><td>", last, " / ", spec.job.steps,
        last >= spec.job.steps ? "" : " (not finished)", "</td><td>",
        Fixed(seconds, 1), " s</td><td>", Fixed(LastTenth(steps, Accuracy), 3),
        "</td><td>", Fixed(LastTenth(steps, Ratio), 3),
        "</td><td class=\"path\">", Escape(run.data->run_dir), "</td></tr>");
  }
  absl::StrAppend(&out,
                  "</table><p class=\"lead\">* means over the last tenth of "
                  "the steps, of the sampled batches (not held out).</p>"
                  "</section>");
}

std::vector<LegendItem> RunLegend(const std::vector<PageRun>& runs) {
  std::vector<LegendItem> legend;
  for (const PageRun& run : runs)
    legend.push_back({run.name, run.color, "", false});
  return legend;
}

std::pair<double, double> StepRange(const std::vector<PageRun>& runs) {
  double first = static_cast<double>(runs.front().data->steps.front().step);
  double last = first;
  for (const PageRun& run : runs) {
    for (const StepMetrics& step : run.data->steps) {
      first = std::min(first, static_cast<double>(step.step));
      last = std::max(last, static_cast<double>(step.step));
    }
  }
  return {first, last};
}

std::string CurveNote(const std::vector<PageRun>& runs) {
  size_t most = 0;
  for (const PageRun& run : runs) most = std::max(most, run.data->steps.size());
  if (most <= kMaxPointsPerCurve) return "every step, from metrics.jsonl";
  return absl::StrFormat("means of %d equal spans of steps, from metrics.jsonl",
                         kMaxPointsPerCurve);
}

void AddCurves(const std::vector<PageRun>& runs, std::string& out) {
  absl::StrAppend(&out,
                  "<section id=\"training\"><h2>Training</h2><p class=\"lead\">"
                  "By step, of the batches each step trained on (sampled "
                  "rollouts, not held out). The flawed-positive ratio is "
                  "&gamma; / (&alpha; + &gamma;): of the answers that came "
                  "out right, the share reached through a wrong step.</p>"
                  "<div class=\"grid\">");
  struct Single {
    const char* id;
    const char* title;
    const char* y_label;
    std::optional<std::pair<double, double>> range;
    std::function<double(const StepMetrics&)> of;
  };
  const Single singles[] = {
      {"reward", "Reward (batch mean)", "reward", std::nullopt,
       [](const StepMetrics& s) { return s.reward_mean; }},
      {"accuracy", "Accuracy (answer right)", "accuracy",
       std::make_pair(0.0, 1.0), Accuracy},
      {"flawed-positive-ratio", "Flawed-positive ratio", "γ / (α + γ)",
       std::make_pair(0.0, 1.0), Ratio},
  };
  const std::string note = CurveNote(runs);
  for (const Single& single : singles) {
    LineChart chart;
    chart.id = single.id;
    chart.title = single.title;
    chart.note = note;
    chart.y_label = single.y_label;
    chart.y_range = single.range;
    chart.x_range = StepRange(runs);
    chart.legend = RunLegend(runs);
    for (const PageRun& run : runs) {
      chart.lines.push_back({single.id, run.name,
                             absl::StrCat(run.name, ": ", single.title),
                             run.color, "", Curve(run.data->steps, single.of)});
    }
    absl::StrAppend(&out, "<figure>", DrawLineChart(chart), "</figure>");
  }

  // alpha / beta / gamma: one run, a colour each; several, the run's
  // colour and a dash each.
  struct Share {
    const char* key;
    const char* label;
    const char* color;
    const char* dash;
    double StepMetrics::*field;
  };
  const Share shares[] = {
      {"alpha", "α sound", "#59a14f", "", &StepMetrics::alpha},
      {"beta", "β wrong", "#e15759", "7 4", &StepMetrics::beta},
      {"gamma", "γ flawed positive", "#f28e2b", "2 3", &StepMetrics::gamma},
  };
  LineChart chart;
  chart.id = "shares";
  chart.title = "Sound α, wrong β, flawed-positive γ shares";
  chart.note = note;
  chart.y_label = "share of the batch";
  chart.y_range = std::make_pair(0.0, 1.0);
  chart.x_range = StepRange(runs);
  const bool one_run = runs.size() == 1;
  if (!one_run) chart.legend = RunLegend(runs);
  for (const Share& share : shares) {
    chart.legend.push_back({share.label, one_run ? share.color : "#57606a",
                            one_run ? "" : share.dash, false});
  }
  for (const PageRun& run : runs) {
    for (const Share& share : shares) {
      const auto field = share.field;
      chart.lines.push_back(
          {share.key, run.name, absl::StrCat(run.name, ": ", share.label),
           one_run ? share.color : run.color, one_run ? "" : share.dash,
           Curve(run.data->steps,
                 [field](const StepMetrics& s) { return s.*field; })});
    }
  }
  absl::StrAppend(&out, "<figure>", DrawLineChart(chart), "</figure></div>",
                  "</section>");
}

void AddStepTime(const std::vector<PageRun>& runs, std::string& out) {
  absl::StrAppend(
      &out,
      "<section id=\"step-time\"><h2>Where a step's time went</h2>"
      "<p class=\"lead\">Generation and GenRM scoring of the next batch "
      "overlap training, so only the trainer's waits for them count. The "
      "mean leaves out each run's first step (it waits for the first "
      "generation with nothing to overlap).</p><div class=\"grid\">");
  BarChart mean;
  mean.id = "step-time-mean";
  mean.title = "Mean step by part";
  mean.note = "seconds, from metrics.jsonl";
  mean.x_label = "seconds per step";
  mean.stacked = true;
  std::vector<bool> used(kTimePartCount, false);
  std::vector<PartSeconds> run_means;
  double max_bar = 0;
  for (const PageRun& run : runs) {
    const std::vector<StepMetrics>& steps = run.data->steps;
    run_means.push_back(MeanParts(steps, FirstSteadyStep(steps), steps.size()));
    for (size_t p = 0; p < kTimePartCount; ++p) {
      if (run_means.back()[p] > 0) used[p] = true;
    }
    const size_t spans = std::min(steps.size(), kStepTimeBars);
    for (size_t span = 0; span < spans; ++span) {
      max_bar = std::max(max_bar,
                         Total(MeanParts(steps, span * steps.size() / spans,
                                         (span + 1) * steps.size() / spans)));
    }
  }
  for (size_t p = 0; p < kTimePartCount; ++p) {
    if (!used[p]) continue;
    mean.categories.push_back(kTimeParts[p].key);
    mean.category_labels.push_back(kTimeParts[p].label);
    mean.category_colors.push_back(kTimeParts[p].color);
  }
  for (size_t r = 0; r < runs.size(); ++r) {
    BarRun bars{runs[r].name, runs[r].color, {}, {}};
    for (size_t p = 0; p < kTimePartCount; ++p) {
      if (used[p]) bars.values.push_back(run_means[r][p]);
    }
    bars.labels.push_back(absl::StrCat(Fixed(Total(run_means[r]), 3), " s"));
    mean.runs.push_back(std::move(bars));
  }
  absl::StrAppend(&out, "<figure>", DrawBarChart(mean), "</figure>");
  for (const PageRun& run : runs) {
    absl::StrAppend(&out, "<figure>",
                    StepTimeOverRun(*run.data, run.name, max_bar), "</figure>");
  }
  absl::StrAppend(&out, "</div></section>");
}

// Verdict statuses in the order a reader looks for them; others after.
int StatusRank(const std::string& status) {
  static const char* const kOrder[] = {"ok",         "skipped", "timeout",
                                       "unparsable", "invalid", "unspecified"};
  for (size_t i = 0; i < sizeof(kOrder) / sizeof(kOrder[0]); ++i) {
    if (status == kOrder[i]) return static_cast<int>(i);
  }
  return 100;
}

std::string CountAndShare(int64_t count, int64_t whole) {
  if (whole <= 0) return absl::StrCat(count);
  return absl::StrFormat(
      "%d (%.0f%%)", count,
      100.0 * static_cast<double>(count) / static_cast<double>(whole));
}

void AddTrajectories(const std::vector<PageRun>& all_runs, std::string& out) {
  absl::StrAppend(&out,
                  "<section id=\"trajectories\"><h2>Verdicts and "
                  "trajectories</h2>");
  std::vector<PageRun> runs;
  std::vector<std::string> without;
  for (const PageRun& run : all_runs) {
    if (run.data->trajectories.has_value()) {
      runs.push_back(run);
    } else {
      without.push_back(run.name);
    }
  }
  if (runs.empty()) {
    absl::StrAppend(&out,
                    "<p class=\"lead\">No samples.jsonl in the run "
                    "director",
                    all_runs.size() == 1 ? "y" : "ies",
                    " (job.samples_fraction 0, or a run from before "
                    "samples were written).</p></section>");
    return;
  }
  absl::StrAppend(&out,
                  "<p class=\"lead\">From samples.jsonl: every trajectory "
                  "of the sampled prompt groups and what became of it. "
                  "Shares are of each run's own trajectories, so runs of "
                  "different lengths compare.");
  if (!without.empty()) {
    std::vector<std::string> escaped;
    for (const std::string& name : without) escaped.push_back(Escape(name));
    absl::StrAppend(&out, " No samples.jsonl for ",
                    absl::StrJoin(escaped, ", "), ".");
  }
  absl::StrAppend(&out, "</p><div class=\"grid\">");

  // GenRM verdicts by status.
  std::set<std::string> status_set;
  for (const PageRun& run : runs) {
    for (const auto& [status, count] :
         run.data->trajectories->verdicts_by_status) {
      status_set.insert(status);
    }
  }
  std::vector<std::string> statuses(status_set.begin(), status_set.end());
  std::stable_sort(statuses.begin(), statuses.end(),
                   [](const std::string& a, const std::string& b) {
                     return StatusRank(a) < StatusRank(b);
                   });
  BarChart verdicts;
  verdicts.id = "verdicts";
  verdicts.title = "GenRM verdicts by status";
  verdicts.note = "share of each run's verdicts, with the count";
  verdicts.x_label = "share of verdicts";
  verdicts.percent = true;
  verdicts.categories = statuses;
  verdicts.category_labels = statuses;
  for (const PageRun& run : runs) {
    const auto& by_status = run.data->trajectories->verdicts_by_status;
    int64_t whole = 0;
    for (const auto& [status, count] : by_status) whole += count;
    BarRun bars{run.name, run.color, {}, {}};
    for (const std::string& status : statuses) {
      auto it = by_status.find(status);
      const int64_t count = it == by_status.end() ? 0 : it->second;
      bars.values.push_back(whole > 0 ? static_cast<double>(count) /
                                            static_cast<double>(whole)
                                      : kMissing);
      bars.labels.push_back(CountAndShare(count, whole));
    }
    verdicts.runs.push_back(std::move(bars));
  }
  if (statuses.empty()) {
    verdicts.note = "no trajectory in samples.jsonl has a verdict";
  }
  absl::StrAppend(&out, "<figure>", DrawBarChart(verdicts), "</figure>");

  // Trajectories by outcome: trained by kind, dropped by reason.
  std::vector<std::string> outcomes = {"sound", "flawed_positive", "wrong"};
  std::vector<std::string> outcome_labels = {"sound", "flawed positive",
                                             "wrong answer"};
  std::set<std::string> reasons;
  for (const PageRun& run : runs) {
    for (const auto& [reason, count] :
         run.data->trajectories->dropped_by_reason) {
      reasons.insert(reason);
    }
  }
  for (const std::string& reason : reasons) {
    outcomes.push_back(absl::StrCat("dropped:", reason));
    outcome_labels.push_back(absl::StrCat("dropped: ", reason));
  }
  BarChart by_outcome;
  by_outcome.id = "outcomes";
  by_outcome.title = "Trajectories by outcome";
  by_outcome.note =
      "trained by kind, then dropped by reason: share of each run's "
      "trajectories, with the count";
  by_outcome.x_label = "share of trajectories";
  by_outcome.percent = true;
  by_outcome.categories = outcomes;
  by_outcome.category_labels = outcome_labels;
  for (const PageRun& run : runs) {
    const TrajectorySummary& summary = *run.data->trajectories;
    std::vector<int64_t> counts = {summary.sound.count,
                                   summary.flawed_positive.count,
                                   summary.wrong.count};
    for (const std::string& reason : reasons) {
      auto it = summary.dropped_by_reason.find(reason);
      counts.push_back(it == summary.dropped_by_reason.end() ? 0 : it->second);
    }
    BarRun bars{run.name, run.color, {}, {}};
    for (int64_t count : counts) {
      bars.values.push_back(summary.written > 0
                                ? static_cast<double>(count) /
                                      static_cast<double>(summary.written)
                                : kMissing);
      bars.labels.push_back(CountAndShare(count, summary.written));
    }
    by_outcome.runs.push_back(std::move(bars));
  }
  absl::StrAppend(&out, "<figure>", DrawBarChart(by_outcome), "</figure>");

  // Mean advantage by kind.
  BarChart advantage;
  advantage.id = "advantage";
  advantage.title = "Mean advantage trained with, by kind";
  advantage.note =
      "under FAPO flawed positives should go negative; under RLVR they "
      "stay positive";
  advantage.x_label = "mean advantage";
  advantage.symmetric = true;
  advantage.categories = {"sound", "flawed_positive", "wrong"};
  advantage.category_labels = {"sound", "flawed positive", "wrong answer"};
  for (const PageRun& run : runs) {
    const TrajectorySummary& summary = *run.data->trajectories;
    BarRun bars{run.name, run.color, {}, {}};
    for (const TrajectorySummary::Kind* kind :
         {&summary.sound, &summary.flawed_positive, &summary.wrong}) {
      bars.values.push_back(kind->mean_advantage);
      bars.labels.push_back(std::isfinite(kind->mean_advantage)
                                ? absl::StrFormat("%+.3f", kind->mean_advantage)
                                : std::string());
    }
    advantage.runs.push_back(std::move(bars));
  }
  absl::StrAppend(&out, "<figure>", DrawBarChart(advantage), "</figure></div>");

  // The same as a table, with the rewards.
  absl::StrAppend(&out,
                  "<table class=\"kinds\"><tr><th>run</th>"
                  "<th class=\"text\">kind</th>"
                  "<th>trained</th><th>share</th><th>mean reward</th>"
                  "<th>mean advantage</th></tr>");
  for (const PageRun& run : runs) {
    const TrajectorySummary& summary = *run.data->trajectories;
    const std::pair<const char*, const TrajectorySummary::Kind*> kinds[] = {
        {"sound (answer and steps right)", &summary.sound},
        {"flawed positive (answer right, a step wrong)",
         &summary.flawed_positive},
        {"wrong answer", &summary.wrong},
    };
    for (const auto& [label, kind] : kinds) {
      absl::StrAppend(
          &out, "<tr><td>", Swatch(run.color), Escape(run.name),
          "</td><td class=\"text\">", label, "</td><td>", kind->count,
          "</td><td>",
          summary.trained > 0
              ? absl::StrFormat("%.0f%%", 100.0 * kind->count / summary.trained)
              : std::string("&ndash;"),
          "</td><td>", Fixed(kind->mean_reward, 3), "</td><td>",
          Fixed(kind->mean_advantage, 3), "</td></tr>");
    }
  }
  absl::StrAppend(&out, "</table></section>");
}

void AddEvals(const std::vector<PageRun>& runs, std::string& out) {
  absl::StrAppend(&out,
                  "<section id=\"held-out\"><h2>Held-out evaluation</h2>");
  bool any = false;
  for (const PageRun& run : runs) any = any || !run.data->evals.empty();
  if (!any) {
    absl::StrAppend(&out,
                    "<p class=\"lead\">None yet: <code>fapo eval --model "
                    "&lt;run&gt;/checkpoints/step-N/policy --config "
                    "&lt;run&gt;/config.yaml --json &lt;that dir&gt;/"
                    "eval.json</code> puts one here.</p></section>");
    return;
  }
  absl::StrAppend(&out,
                  "<p class=\"lead\">From <code>fapo eval</code> (eval.json "
                  "beside each model).</p><table class=\"evals\"><tr>"
                  "<th>run</th><th class=\"text\">policy</th><th>samples</th>"
                  "<th>temperature</th><th>accuracy</th><th>&alpha;</th>"
                  "<th>&beta;</th><th>&gamma;</th>"
                  "<th>flawed-positive ratio</th></tr>");
  for (const PageRun& run : runs) {
    for (const HeldOutEval& eval : run.data->evals) {
      absl::StrAppend(
          &out, "<tr><td>", Swatch(run.color), Escape(run.name),
          "</td><td class=\"text\">", Escape(eval.label), "</td><td>",
          Fixed(eval.samples, 0), "</td><td>", Fixed(eval.temperature, 1),
          "</td><td>", Fixed(eval.accuracy, 3), " &plusmn; ",
          Fixed(eval.accuracy_stderr, 3), "</td><td>", Fixed(eval.alpha, 3),
          "</td><td>", Fixed(eval.beta, 3), "</td><td>", Fixed(eval.gamma, 3),
          "</td><td>", Fixed(eval.flawed_positive_ratio, 3), " &plusmn; ",
          Fixed(eval.flawed_positive_ratio_stderr, 3), "</td></tr>");
    }
  }
  absl::StrAppend(&out, "</table></section>");
}

void AddNotes(const std::vector<PageRun>& runs, std::string& out) {
  std::vector<std::string> notes;
  for (const PageRun& run : runs) {
    if (run.data->metrics_torn_last_line) {
      notes.push_back(absl::StrCat(Escape(run.name),
                                   ": the last line of metrics.jsonl was cut "
                                   "short and is left out."));
    }
    if (run.data->trajectories.has_value() &&
        run.data->trajectories->torn_last_line) {
      notes.push_back(absl::StrCat(Escape(run.name),
                                   ": the last line of samples.jsonl was cut "
                                   "short and is left out."));
    }
  }
  if (notes.empty()) return;
  absl::StrAppend(&out,
                  "<section id=\"notes\"><h2>Notes</h2><ul "
                  "class=\"notes\">");
  for (const std::string& note : notes) {
    absl::StrAppend(&out, "<li>", note, "</li>");
  }
  absl::StrAppend(&out, "</ul></section>");
}

}  // namespace

std::string FormatHtmlReport(absl::Span<const RunData> run_data) {
  const std::vector<PageRun> runs = NameRuns(run_data);
  std::vector<std::string> names;
  for (const PageRun& run : runs) names.push_back(Escape(run.name));
  std::string title;
  if (runs.empty()) {
    title = "Run report";
  } else if (runs.size() == 1) {
    title = absl::StrCat("Run report: ", names[0]);
  } else {
    title = absl::StrCat("Runs compared: ", absl::StrJoin(names, ", "));
  }
  // The policy makes the page's promise checkable by the browser: nothing
  // is fetched and nothing runs, whatever the page holds.
  std::string out = absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src "
      "'none'; style-src 'unsafe-inline'\">"
      "<meta name=\"viewport\" content=\"width=device-width, "
      "initial-scale=1\"><title>",
      title, "</title><style>", kStyle, "</style></head>\n<body><header><h1>");
  if (runs.size() > 1) {
    absl::StrAppend(&out, "Runs compared: ");
    for (size_t i = 0; i < runs.size(); ++i) {
      absl::StrAppend(&out, i > 0 ? " &middot; " : "", Swatch(runs[i].color),
                      names[i]);
    }
  } else {
    absl::StrAppend(&out, title);
  }
  absl::StrAppend(&out, "</h1>");
  if (runs.empty()) {
    absl::StrAppend(&out,
                    "</header><main><p>No runs.</p></main></body>"
                    "</html>\n");
    return out;
  }
  if (runs.size() == 1) {
    const RunData& run = *runs[0].data;
    const int64_t last = run.steps.back().step;
    absl::StrAppend(&out, "<p>Step ", last, " of ", run.spec.job.steps, " (",
                    last >= run.spec.job.steps ? "finished" : "not finished",
                    "). Run directory <code>", Escape(run.run_dir),
                    "</code>.</p>");
  } else {
    absl::StrAppend(&out, "<p>", runs.size(),
                    " runs overlaid, one colour each.</p>");
  }
  absl::StrAppend(&out, "</header>\n<main>");
  AddRunsTable(runs, out);
  AddCurves(runs, out);
  AddStepTime(runs, out);
  AddTrajectories(runs, out);
  AddEvals(runs, out);
  AddNotes(runs, out);
  absl::StrAppend(&out,
                  "<footer>Made by <code>fapo report</code> from each run "
                  "directory's config.yaml, metrics.jsonl, samples.jsonl and "
                  "eval.json files.</footer></main></body></html>\n");
  return out;
}

absl::StatusOr<std::string> MakeHtmlReport(
    const std::vector<std::string>& run_dirs) {
  if (run_dirs.empty()) {
    return absl::InvalidArgumentError("report: no run directory given");
  }
  std::vector<RunData> runs;
  runs.reserve(run_dirs.size());
  for (const std::string& dir : run_dirs) {
    ASSIGN_OR_RETURN(RunData run, ReadRunData(dir));
    runs.push_back(std::move(run));
  }
  return FormatHtmlReport(runs);
}

absl::Status WriteHtmlReport(absl::Span<const RunData> runs,
                             const std::string& path) {
  if (runs.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("report: no run to write to ", path));
  }
  return files::WriteFileAtomically(path, FormatHtmlReport(runs));
}

}  // namespace fapo::report
