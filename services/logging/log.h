// services/logging: one log format for every fapo process.
//
//   FAPO_LOG(INFO) << "listening on " << address;
//   FAPO_LOG(FATAL) << "cannot continue";   // logs, flushes, aborts
//
// Each record is one line, written whole to the sink (stderr by default):
//
//   2026-11-26T07:01:02.123456Z I scheduler[4242] queue.cc:42] message
//
// timestamp (UTC, microseconds), severity letter (D I W E F), the process's
// component name and pid, the source location, the message. Newlines inside a
// message are escaped as "\n" so that one record is always one line, which
// keeps logs grep-able and safe to parse.
//
// Thread-safe: records from different threads never interleave.
#ifndef FAPO_SERVICES_LOGGING_LOG_H_
#define FAPO_SERVICES_LOGGING_LOG_H_

#include <functional>
#include <sstream>
#include <string>

#include "absl/strings/string_view.h"

namespace fapo::logging {

enum class Severity {
  kDebug = 0,
  kInfo = 1,
  kWarning = 2,
  kError = 3,
  kFatal = 4
};

// Name shown in every record ("scheduler", "trainer-1"). Default: "fapo".
void SetComponent(absl::string_view component);
std::string Component();

// Records below `severity` are dropped. Default kInfo; the environment
// variable FAPO_LOG_LEVEL (debug|info|warning|error) sets it at start-up.
void SetMinSeverity(Severity severity);
Severity MinSeverity();

// Parses "debug", "info", "warning"/"warn", "error" (case-insensitive).
bool ParseSeverity(absl::string_view text, Severity* severity);

// Replaces where formatted lines go (each line ends with '\n'). Passing
// nullptr restores stderr. Used by tests and by services that log to a file.
using Sink = std::function<void(absl::string_view line)>;
void SetSink(Sink sink);

// Formats one record; exposed for tests and for foreign log bridges (gRPC).
std::string FormatRecord(Severity severity, absl::string_view file, int line,
                         absl::string_view message);

// Writes one already-assembled record through the sink, honouring the
// minimum severity. Used by FAPO_LOG and by the gRPC log bridge.
void Write(Severity severity, absl::string_view file, int line,
           absl::string_view message);

class LogMessage {
 public:
  LogMessage(const char* file, int line, Severity severity);
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  ~LogMessage();  // writes the record; aborts after a kFatal record

  std::ostream& stream() { return stream_; }

 private:
  const char* file_;
  int line_;
  Severity severity_;
  std::ostringstream stream_;
};

// Lets `FAPO_LOG(DEBUG) << ...` cost one comparison when debug is off.
class Voidify {
 public:
  void operator&(std::ostream&) {}
};

}  // namespace fapo::logging

#define FAPO_LOG_SEVERITY_DEBUG ::fapo::logging::Severity::kDebug
#define FAPO_LOG_SEVERITY_INFO ::fapo::logging::Severity::kInfo
#define FAPO_LOG_SEVERITY_WARNING ::fapo::logging::Severity::kWarning
#define FAPO_LOG_SEVERITY_ERROR ::fapo::logging::Severity::kError
#define FAPO_LOG_SEVERITY_FATAL ::fapo::logging::Severity::kFatal

#define FAPO_LOG(severity)                                            \
  (FAPO_LOG_SEVERITY_##severity < ::fapo::logging::MinSeverity() &&   \
   FAPO_LOG_SEVERITY_##severity != ::fapo::logging::Severity::kFatal) \
      ? (void)0                                                       \
      : ::fapo::logging::Voidify() &                                  \
            ::fapo::logging::LogMessage(__FILE__, __LINE__,           \
                                        FAPO_LOG_SEVERITY_##severity) \
                .stream()

#endif  // FAPO_SERVICES_LOGGING_LOG_H_
