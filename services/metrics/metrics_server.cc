#include "services/metrics/metrics_server.h"

#include <CivetServer.h>
#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <prometheus/exposer.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/logging/log.h"

namespace fapo::metrics {
namespace {

// mg_init_library is not thread-safe and mg_start2 (which the Exposer's
// CivetServer calls) runs it lazily, so every server in the process goes
// through this once first.
void InitCivetwebOnce() {
  static std::once_flag once;
  std::call_once(once, [] { mg_init_library(0); });
}

absl::Status ValidateOptions(const MetricsServerOptions& options) {
  in_addr address;
  if (inet_pton(AF_INET, options.host.c_str(), &address) != 1) {
    // Also guards civetweb's "listening_ports" syntax: a host containing
    // ',' or 's'/'r' suffixes would otherwise open extra ports.
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics server host \"", options.host,
        "\" is not a dotted IPv4 address (e.g. 127.0.0.1 or 0.0.0.0); "
        "this civetweb build has no IPv6 support"));
  }
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics server port ", options.port, " is outside 0..65535"));
  }
  if (options.num_threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics server num_threads is ", options.num_threads,
                     "; it must be at least 1"));
  }
  if (options.request_timeout_ms < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics server request_timeout_ms is ",
                     options.request_timeout_ms, "; it must be positive"));
  }
  return absl::OkStatus();
}

// civetweb reports why a start failed (e.g. "cannot bind to
// 127.0.0.1:9090: 98 (Address already in use)") only to its log callback,
// on the starting thread; the CivetException the Exposer then throws is
// generic. Messages are collected here while this thread starts a server.
thread_local std::vector<std::string>* start_messages = nullptr;

int CollectStartMessage(const mg_connection*, const char* message) {
  if (start_messages != nullptr) {
    start_messages->emplace_back(message);
  } else {
    FAPO_LOG(WARNING) << "civetweb: " << message;
  }
  return 1;  // handled: civetweb prints nothing itself
}

// Opens and immediately closes a TCP connection to host:port; see
// NOTE [civetweb stop]. Failures are expected once the listener is gone.
void WakeListener(const std::string& host, int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &address.sin_addr) != 1 ||
      address.sin_addr.s_addr == htonl(INADDR_ANY)) {
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  }
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address));
  close(fd);
}

}  // namespace

MetricsServer::MetricsServer(std::string host,
                             std::unique_ptr<prometheus::Exposer> exposer,
                             int port)
    : host_(std::move(host)), exposer_(std::move(exposer)), port_(port) {}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const MetricsRegistry* registry, const MetricsServerOptions& options) {
  if (registry == nullptr) {
    return absl::InvalidArgumentError("metrics server needs a registry");
  }
  absl::Status status = ValidateOptions(options);
  if (!status.ok()) return status;
  InitCivetwebOnce();
  const std::string address = absl::StrCat(options.host, ":", options.port);
  std::unique_ptr<prometheus::Exposer> exposer;
  std::vector<std::string> messages;
  start_messages = &messages;
  CivetCallbacks callbacks;
  callbacks.log_message = &CollectStartMessage;
  try {
    exposer = std::make_unique<prometheus::Exposer>(
        std::vector<std::string>{"listening_ports", address, "num_threads",
                                 absl::StrCat(options.num_threads),
                                 "request_timeout_ms",
                                 absl::StrCat(options.request_timeout_ms),
                                 "enable_keep_alive", "no"},
        &callbacks);
  } catch (const std::exception& error) {
    start_messages = nullptr;
    return absl::UnavailableError(absl::StrCat(
        "metrics endpoint cannot listen on ", address, ": ",
        messages.empty() ? error.what() : absl::StrJoin(messages, "; ")));
  }
  start_messages = nullptr;
  for (const std::string& message : messages) {
    FAPO_LOG(WARNING) << "civetweb: " << message;
  }
  const std::vector<int> ports = exposer->GetListeningPorts();
  if (ports.empty()) {
    return absl::InternalError(
        absl::StrCat("metrics endpoint started on ", address,
                     " but civetweb reports no listening port"));
  }
  exposer->RegisterCollectable(registry->prometheus_registry());
  std::unique_ptr<MetricsServer> server(
      new MetricsServer(options.host, std::move(exposer), ports[0]));
  FAPO_LOG(INFO) << "metrics endpoint listening on " << server->url();
  return server;
}

// NOTE [civetweb stop]: civetweb 1.15's master thread polls its listening
// socket with a 2 s timeout (SOCKET_TIMEOUT_QUANTUM) and only then checks the
// stop flag, so a bare stop takes up to 2 s. Connecting to our own port
// wakes the poll; a helper thread keeps doing that (connect, close at once,
// so no worker waits on the empty connection) until the exposer is gone,
// which brings shutdown down to ~10 ms.
MetricsServer::~MetricsServer() {
  std::atomic<bool> stopped{false};
  std::thread waker([this, &stopped] {
    while (!stopped.load()) {
      WakeListener(host_, port_);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  exposer_.reset();
  stopped = true;
  waker.join();
}

std::string MetricsServer::url() const {
  return absl::StrCat("http://", host_, ":", port_, "/metrics");
}

}  // namespace fapo::metrics
