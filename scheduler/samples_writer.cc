#include "scheduler/samples_writer.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "services/files/files.h"
#include "services/logging/log.h"

namespace fapo::scheduler {
namespace {

const char* VerdictStatusName(v1::VerdictStatus status) {
  switch (status) {
    case v1::VERDICT_STATUS_OK:
      return "ok";
    case v1::VERDICT_STATUS_UNPARSABLE:
      return "unparsable";
    case v1::VERDICT_STATUS_TIMEOUT:
      return "timeout";
    case v1::VERDICT_STATUS_SKIPPED:
      return "skipped";
    case v1::VERDICT_STATUS_INVALID:
      return "invalid";
    default:
      return "unspecified";
  }
}

// splitmix64's finalizer: spreads the seed's bits over the whole word.
uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SamplesWriter>> SamplesWriter::Create(
    SamplesWriterOptions options) {
  if (options.path.empty()) {
    return absl::InvalidArgumentError("samples writer: empty path");
  }
  // Written so that NaN fails too.
  if (!(options.sample_fraction >= 0 && options.sample_fraction <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("job.sample_fraction must be in [0, 1], got ",
                     options.sample_fraction));
  }
  std::unique_ptr<SamplesWriter> writer(new SamplesWriter(std::move(options)));
  writer->thread_ = std::thread([w = writer.get()] { w->Loop(); });
  return writer;
}

SamplesWriter::SamplesWriter(SamplesWriterOptions options)
    : options_(std::move(options)) {}

SamplesWriter::~SamplesWriter() { Close(); }

bool SamplesWriter::KeepsGroup(uint64_t seed, double fraction,
                               absl::string_view group_id) {
  if (fraction >= 1) return true;
  if (fraction <= 0) return false;
  // FNV-1a: fixed by its definition, unlike absl::Hash or std::hash.
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (char c : group_id) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ULL;
  }
  const uint64_t mixed = Mix(hash ^ Mix(seed));
  // The top 53 bits as a double in [0, 1).
  const double unit = static_cast<double>(mixed >> 11) * 0x1.0p-53;
  return unit < fraction;
}

void SamplesWriter::Trained(std::shared_ptr<const TrainBatch> batch) {
  if (batch == nullptr || options_.sample_fraction <= 0) return;
  absl::MutexLock lock(&mu_);
  if (closing_) return;
  queue_.push_back(Work{std::move(batch), {}});
}

void SamplesWriter::Dropped(std::vector<DroppedTrajectory> dropped) {
  if (dropped.empty() || options_.sample_fraction <= 0) return;
  absl::MutexLock lock(&mu_);
  if (closing_) return;
  queue_.push_back(Work{nullptr, std::move(dropped)});
}

namespace {

// NOTE [samples format]: lines are written by hand rather than through
// nlohmann::json: building a json object copies every string (the 1 KB
// response included) and allocates per key, and the writer must keep up
// with the scheduler's rate (BM_InProcessWithSamples). The escaping is
// JSON's (RFC 8259): quote, backslash and control characters escaped;
// valid UTF-8 copied as is; each byte of an invalid sequence becomes
// U+FFFD (model output may be cut mid-character), so every line parses.
void AppendJsonString(absl::string_view text, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  // Written through a pointer into room for the worst case (every byte as
  // \u00XX), then trimmed: responses are lines of a few characters, and
  // an append per run between newlines cost more than the escaping.
  const size_t start = out.size();
  out.resize(start + 6 * text.size() + 2);
  char* p = out.data() + start;
  *p++ = '"';
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    // Byte by byte: runs between escapes are short (a step per line), too
    // short for a memcpy call each.
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      *p++ = static_cast<char>(c);
      ++i;
      continue;
    }
    if (c < 0x80) {
      *p++ = '\\';
      switch (c) {
        case '"':
          *p++ = '"';
          break;
        case '\\':
          *p++ = '\\';
          break;
        case '\n':
          *p++ = 'n';
          break;
        case '\r':
          *p++ = 'r';
          break;
        case '\t':
          *p++ = 't';
          break;
        case '\b':
          *p++ = 'b';
          break;
        case '\f':
          *p++ = 'f';
          break;
        default:
          *p++ = 'u';
          *p++ = '0';
          *p++ = '0';
          *p++ = kHex[c >> 4];
          *p++ = kHex[c & 0xf];
      }
      ++i;
      continue;
    }
    // A multi-byte sequence: its length from the lead byte, then the
    // continuation bytes and the ranges that exclude overlong forms and
    // surrogates.
    size_t length = 0;
    unsigned char low = 0x80, high = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
      length = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      length = 3;
      if (c == 0xe0) low = 0xa0;
      if (c == 0xed) high = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      length = 4;
      if (c == 0xf0) low = 0x90;
      if (c == 0xf4) high = 0x8f;
    }
    bool valid = length > 0 && i + length <= n;
    for (size_t k = 1; valid && k < length; ++k) {
      const unsigned char next = static_cast<unsigned char>(text[i + k]);
      valid = k == 1 ? (next >= low && next <= high)
                     : (next >= 0x80 && next <= 0xbf);
    }
    if (valid) {
      std::memcpy(p, text.data() + i, length);
      p += length;
      i += length;
    } else {
      // U+FFFD
      *p++ = '\xef';
      *p++ = '\xbf';
      *p++ = '\xbd';
      ++i;
    }
  }
  *p++ = '"';
  out.resize(static_cast<size_t>(p - out.data()));
}

void AppendKey(absl::string_view key, std::string& out) {
  if (out.back() != '{') out.push_back(',');
  out.push_back('"');
  out.append(key.data(), key.size());
  out.append("\":");
}

void AppendNull(absl::string_view key, std::string& out) {
  AppendKey(key, out);
  out.append("null");
}

void AppendString(absl::string_view key, absl::string_view value,
                  std::string& out) {
  AppendKey(key, out);
  AppendJsonString(value, out);
}

void AppendBool(absl::string_view key, bool value, std::string& out) {
  AppendKey(key, out);
  out.append(value ? "true" : "false");
}

void AppendInt(absl::string_view key, int64_t value, std::string& out) {
  AppendKey(key, out);
  absl::StrAppend(&out, value);
}

// Shortest text that reads back as the same double (JSON has no NaN or
// infinity: those are written as null).
void AppendDouble(absl::string_view key, double value, std::string& out) {
  AppendKey(key, out);
  if (!std::isfinite(value)) {
    out.append("null");
    return;
  }
  char buffer[32];
  const std::to_chars_result result =
      std::to_chars(buffer, buffer + sizeof(buffer), value);
  const absl::string_view text(buffer, result.ptr - buffer);
  out.append(text.data(), text.size());
  // Rewards read as numbers with a fraction ("1.0", not "1").
  if (text.find_first_of(".e") == absl::string_view::npos) out.append(".0");
}

}  // namespace

void SamplesWriter::AppendLine(const Line& line, std::string& out) {
  const v1::Trajectory& trajectory = *line.trajectory;
  out.push_back('{');
  AppendString("trajectory_id", trajectory.trajectory_id(), out);
  AppendString("group_id", trajectory.group_id(), out);
  AppendInt("sample_index", trajectory.sample_index(), out);
  AppendString("prompt_id", trajectory.prompt_id(), out);
  if (line.prompt != nullptr) {
    AppendString("prompt", line.prompt->text(), out);
  } else {
    AppendNull("prompt", out);
  }
  AppendString("response", trajectory.response_text(), out);
  if (line.prompt != nullptr) {
    AppendString("ground_truth", line.prompt->ground_truth(), out);
  } else {
    AppendNull("ground_truth", out);
  }
  if (line.verdict != nullptr) {
    AppendBool("answer_correct", line.verdict->answer_correct(), out);
  } else {
    AppendNull("answer_correct", out);
  }
  if (line.has_reward) {
    AppendBool("flawed", line.flawed, out);
  } else {
    AppendNull("flawed", out);
  }
  if (line.verdict != nullptr) {
    AppendInt("first_error_step", line.verdict->first_error_step(), out);
    AppendString("verdict_status", VerdictStatusName(line.verdict->status()),
                 out);
  } else {
    AppendNull("first_error_step", out);
    AppendNull("verdict_status", out);
  }
  if (line.has_reward) {
    AppendDouble("reward", line.reward, out);
  } else {
    AppendNull("reward", out);
  }
  if (line.has_advantage) {
    AppendDouble("advantage", line.advantage, out);
  } else {
    AppendNull("advantage", out);
  }
  AppendInt("policy_version", trajectory.policy_version(), out);
  AppendString("outcome", line.trained ? "trained" : "dropped", out);
  if (line.trained) {
    AppendInt("step", line.step, out);
    AppendNull("drop_reason", out);
  } else {
    AppendNull("step", out);
    AppendString("drop_reason", line.drop_reason, out);
  }
  out.push_back('}');
}

std::string SamplesWriter::FormatLine(const Line& line) {
  std::string out;
  AppendLine(line, out);
  return out;
}

void SamplesWriter::Format(const Work& work, std::string& text) const {
  const double fraction = options_.sample_fraction;
  if (work.batch != nullptr) {
    const TrainBatch& batch = *work.batch;
    size_t next = 0;
    for (size_t g = 0; g < batch.group_sizes.size(); ++g) {
      const size_t end = next + static_cast<size_t>(batch.group_sizes[g]);
      if (next < end &&
          !KeepsGroup(options_.seed, fraction,
                      batch.trajectories[next].trajectory().group_id())) {
        next = end;
        continue;
      }
      for (; next < end; ++next) {
        const v1::ScoredTrajectory& member = batch.trajectories[next];
        Line line;
        line.trajectory = &member.trajectory();
        line.verdict = member.has_verdict() ? &member.verdict() : nullptr;
        line.prompt =
            g < batch.group_prompts.size() ? &batch.group_prompts[g] : nullptr;
        line.has_reward = true;
        line.flawed = member.flawed();
        line.reward = member.reward();
        line.has_advantage = true;
        line.advantage = member.advantage();
        line.trained = true;
        line.step = batch.step;
        AppendLine(line, text);
        text.push_back('\n');
      }
    }
  }
  for (const DroppedTrajectory& dropped : work.dropped) {
    const v1::ScoredTrajectory& member = dropped.trajectory;
    if (!KeepsGroup(options_.seed, fraction, member.trajectory().group_id())) {
      continue;
    }
    Line line;
    line.trajectory = &member.trajectory();
    line.verdict = dropped.has_verdict ? &member.verdict() : nullptr;
    line.prompt = dropped.prompt.get();
    line.has_reward = dropped.has_reward;
    line.flawed = member.flawed();
    line.reward = member.reward();
    line.has_advantage = dropped.has_advantage;
    line.advantage = member.advantage();
    line.trained = false;
    line.drop_reason = dropped.reason;
    AppendLine(line, text);
    text.push_back('\n');
  }
}

absl::Status SamplesWriter::PruneAfterResume() {
  absl::StatusOr<std::string> old = files::ReadFile(options_.path);
  if (!old.ok()) {
    return absl::IsNotFound(old.status()) ? absl::OkStatus() : old.status();
  }
  const int64_t resumed = options_.resumed_step;
  std::string kept;
  kept.reserve(old->size());
  int64_t dropped = 0;
  for (absl::string_view line : absl::StrSplit(*old, '\n', absl::SkipEmpty())) {
    nlohmann::json parsed = nlohmann::json::parse(line, nullptr, false);
    bool after = false;
    if (parsed.is_object()) {
      const auto step = parsed.find("step");
      const auto version = parsed.find("policy_version");
      if (parsed.value("outcome", "") == "trained") {
        after = step != parsed.end() && step->is_number() &&
                step->get<int64_t>() > resumed;
      } else {
        after = version != parsed.end() && version->is_number() &&
                version->get<int64_t>() >= resumed;
      }
    }
    if (after) {
      ++dropped;
      continue;
    }
    absl::StrAppend(&kept, line, "\n");
  }
  if (dropped == 0) return absl::OkStatus();
  FAPO_LOG(WARNING) << "samples.jsonl: dropping " << dropped
                    << " lines written after the checkpoint of step " << resumed
                    << ": those steps are trained again";
  return files::WriteFileAtomically(options_.path, kept);
}

absl::Status SamplesWriter::Append(const std::string& text, bool flush) {
  if (file_ == nullptr) {
    // Opened at the first line, appending: a job that never trains leaves
    // no file, and a resumed job continues the one it has.
    absl::Status made =
        files::MakeDirectories(files::ParentDirectory(options_.path));
    if (!made.ok()) return made;
    if (options_.resumed_step >= 0) {
      absl::Status pruned = PruneAfterResume();
      if (!pruned.ok()) return pruned;
    }
    file_ = std::fopen(options_.path.c_str(), "a");
    if (file_ == nullptr) {
      return files::ErrnoError(
          errno,
          absl::StrCat("cannot open '", options_.path, "' for appending"));
    }
  }
  if (std::fwrite(text.data(), 1, text.size(), file_) != text.size() ||
      (flush && std::fflush(file_) != 0)) {
    return files::ErrnoError(
        errno, absl::StrCat("cannot write '", options_.path, "'"));
  }
  return absl::OkStatus();
}

void SamplesWriter::Loop() {
  std::string text;
  while (true) {
    std::deque<Work> work;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !queue_.empty() || closing_;
      };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) break;  // closing, and everything is written
      work.swap(queue_);
      writing_ = static_cast<int64_t>(work.size());
    }
    // Formatting and I/O outside the lock: Trained and Dropped never wait
    // for the disk.
    absl::Status status = absl::OkStatus();
    for (const Work& item : work) {
      text.clear();
      Format(item, text);
      // Flush per step (a trained batch), so a crash loses at most the
      // step in progress; drops ride along with the next flush.
      const bool flush = item.batch != nullptr || &item == &work.back();
      if (!text.empty() && status.ok()) status = Append(text, flush);
      if (text.empty() && flush && file_ != nullptr) std::fflush(file_);
    }
    work.clear();  // releases the batches before reporting them written
    absl::MutexLock lock(&mu_);
    writing_ = 0;
    if (!status.ok() && first_error_.ok()) {
      FAPO_LOG(ERROR) << "samples.jsonl: " << status
                      << " (the job goes on; later lines may be missing)";
      first_error_ = status;
    }
  }
  if (file_ != nullptr) {
    std::fclose(file_);
    file_ = nullptr;
  }
}

absl::Status SamplesWriter::Flush() {
  absl::MutexLock lock(&mu_);
  auto written = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return queue_.empty() && writing_ == 0;
  };
  mu_.Await(absl::Condition(&written));
  return first_error_;
}

void SamplesWriter::Close() {
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    closed_ = true;
    closing_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

}  // namespace fapo::scheduler
