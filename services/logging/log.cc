#include "services/logging/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace fapo::logging {
namespace {

struct State {
  absl::Mutex mu;
  std::string component ABSL_GUARDED_BY(mu) = "fapo";
  Sink sink ABSL_GUARDED_BY(mu);
};

State& GetState() {
  static State* state = new State();
  return *state;
}

Severity InitialSeverity() {
  Severity severity = Severity::kInfo;
  if (const char* env = std::getenv("FAPO_LOG_LEVEL")) {
    ParseSeverity(env, &severity);
  }
  return severity;
}

std::atomic<int>& MinSeverityStorage() {
  static std::atomic<int> value(static_cast<int>(InitialSeverity()));
  return value;
}

char SeverityLetter(Severity severity) {
  switch (severity) {
    case Severity::kDebug:
      return 'D';
    case Severity::kInfo:
      return 'I';
    case Severity::kWarning:
      return 'W';
    case Severity::kError:
      return 'E';
    case Severity::kFatal:
      return 'F';
  }
  return '?';
}

absl::string_view Basename(absl::string_view path) {
  size_t slash = path.rfind('/');
  return slash == absl::string_view::npos ? path : path.substr(slash + 1);
}

// One record must stay one line: escape what would break it.
std::string EscapeMessage(absl::string_view message) {
  std::string out;
  out.reserve(message.size());
  for (char c : message) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else {
      out += c;
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace

void SetComponent(absl::string_view component) {
  State& state = GetState();
  absl::MutexLock lock(&state.mu);
  state.component = std::string(component);
}

std::string Component() {
  State& state = GetState();
  absl::MutexLock lock(&state.mu);
  return state.component;
}

void SetMinSeverity(Severity severity) {
  MinSeverityStorage().store(static_cast<int>(severity));
}

Severity MinSeverity() {
  return static_cast<Severity>(MinSeverityStorage().load());
}

bool ParseSeverity(absl::string_view text, Severity* severity) {
  std::string lower = absl::AsciiStrToLower(text);
  if (lower == "debug") {
    *severity = Severity::kDebug;
  } else if (lower == "info") {
    *severity = Severity::kInfo;
  } else if (lower == "warning" || lower == "warn") {
    *severity = Severity::kWarning;
  } else if (lower == "error") {
    *severity = Severity::kError;
  } else {
    return false;
  }
  return true;
}

void SetSink(Sink sink) {
  State& state = GetState();
  absl::MutexLock lock(&state.mu);
  state.sink = std::move(sink);
}

std::string FormatRecord(Severity severity, absl::string_view file, int line,
                         absl::string_view message) {
  std::string component = Component();
  return absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::Now(),
                                       absl::UTCTimeZone()),
                      " ", std::string(1, SeverityLetter(severity)), " ",
                      component, "[", getpid(), "] ", Basename(file), ":", line,
                      "] ", EscapeMessage(message), "\n");
}

void Write(Severity severity, absl::string_view file, int line,
           absl::string_view message) {
  if (severity < MinSeverity() && severity != Severity::kFatal) return;
  std::string record = FormatRecord(severity, file, line, message);
  State& state = GetState();
  absl::MutexLock lock(&state.mu);
  if (state.sink) {
    state.sink(record);
  } else {
    std::fwrite(record.data(), 1, record.size(), stderr);
    std::fflush(stderr);
  }
}

LogMessage::LogMessage(const char* file, int line, Severity severity)
    : file_(file), line_(line), severity_(severity) {}

LogMessage::~LogMessage() {
  Write(severity_, file_, line_, stream_.str());
  if (severity_ == Severity::kFatal) std::abort();
}

}  // namespace fapo::logging
