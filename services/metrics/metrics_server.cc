#include "services/metrics/metrics_server.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/logging/log.h"
#include "services/metrics/text_format.h"

namespace fapo::metrics {
namespace {

// mg_init_library is not thread-safe and mg_start2 calls it lazily (also
// not thread-safe), so every server in the process goes through this once.
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

// Sends a complete response; returns `status` for civetweb's access log
// (a handler's non-zero return value means "handled").
int SendResponse(mg_connection* connection, int status,
                 absl::string_view content_type, absl::string_view body,
                 bool allow_get_header = false) {
  const std::string type(content_type);
  const std::string length = absl::StrCat(body.size());
  mg_response_header_start(connection, status);
  mg_response_header_add(connection, "Content-Type", type.c_str(), -1);
  mg_response_header_add(connection, "Content-Length", length.c_str(), -1);
  mg_response_header_add(connection, "Cache-Control", "no-store", -1);
  if (allow_get_header) mg_response_header_add(connection, "Allow", "GET", -1);
  mg_response_header_send(connection);
  if (!body.empty()) mg_write(connection, body.data(), body.size());
  return status;
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

MetricsServer::MetricsServer(const MetricsRegistry* registry, std::string host)
    : registry_(registry), host_(std::move(host)) {}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const MetricsRegistry* registry, const MetricsServerOptions& options) {
  if (registry == nullptr) {
    return absl::InvalidArgumentError("metrics server needs a registry");
  }
  absl::Status status = ValidateOptions(options);
  if (!status.ok()) return status;
  InitCivetwebOnce();

  std::unique_ptr<MetricsServer> server(
      new MetricsServer(registry, options.host));
  const std::string address = absl::StrCat(options.host, ":", options.port);
  const std::string threads = absl::StrCat(options.num_threads);
  const std::string timeout = absl::StrCat(options.request_timeout_ms);
  const char* configuration[] = {"listening_ports",
                                 address.c_str(),
                                 "num_threads",
                                 threads.c_str(),
                                 "request_timeout_ms",
                                 timeout.c_str(),
                                 "enable_keep_alive",
                                 "no",
                                 nullptr};
  mg_callbacks callbacks;
  std::memset(&callbacks, 0, sizeof(callbacks));
  // begin_request rather than mg_set_request_handler: it is in place from
  // the first accepted connection, with no window in which civetweb itself
  // would answer 404.
  callbacks.begin_request = &MetricsServer::HandleRequest;
  callbacks.log_message = &MetricsServer::LogMessage;
  mg_init_data init;
  init.callbacks = &callbacks;
  init.user_data = server.get();
  init.configuration_options = configuration;
  char error_text[256] = "";
  unsigned error_code = 0;
  mg_error_data error;
  error.code = &error_code;
  error.text = error_text;
  error.text_buffer_size = sizeof(error_text);

  server->context_ = mg_start2(&init, &error);
  std::vector<std::string> start_messages;
  {
    absl::MutexLock lock(&server->mu_);
    server->starting_ = false;
    start_messages.swap(server->start_messages_);
  }
  if (server->context_ == nullptr) {
    // civetweb's own error text is generic ("Failed to setup server
    // ports"); the reason ("cannot bind to 127.0.0.1:9090: 98 (Address
    // already in use)") only reaches the log callback.
    if (error_text[0] != '\0') start_messages.emplace_back(error_text);
    return absl::UnavailableError(absl::StrCat(
        "metrics endpoint cannot listen on ", address, ": ",
        start_messages.empty() ? "civetweb gave no reason"
                               : absl::StrJoin(start_messages, "; ")));
  }

  mg_server_port ports[4];
  const int port_count = mg_get_server_ports(server->context_, 4, ports);
  if (port_count < 1) {
    return absl::InternalError(
        absl::StrCat("metrics endpoint started on ", address,
                     " but civetweb reports no listening port"));
  }
  server->port_ = ports[0].port;
  for (const std::string& message : start_messages) {
    FAPO_LOG(WARNING) << "civetweb: " << message;
  }
  FAPO_LOG(INFO) << "metrics endpoint listening on " << server->url();
  return server;
}

// NOTE [civetweb stop]: civetweb 1.15's master thread polls its listening
// socket with a 2 s timeout (SOCKET_TIMEOUT_QUANTUM) and only then checks the
// stop flag, so a bare mg_stop takes up to 2 s. Connecting to our own port
// wakes the poll; a helper thread keeps doing that (connect, close at once,
// so no worker waits on the empty connection) until mg_stop returns, which
// brings shutdown down to ~10 ms.
MetricsServer::~MetricsServer() {
  if (context_ == nullptr) return;
  std::atomic<bool> stopped{false};
  std::thread waker([this, &stopped] {
    while (!stopped.load()) {
      WakeListener(host_, port_);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  mg_stop(context_);
  stopped = true;
  waker.join();
}

std::string MetricsServer::url() const {
  return absl::StrCat("http://", host_, ":", port_, "/metrics");
}

int MetricsServer::HandleRequest(mg_connection* connection) {
  const mg_request_info* request = mg_get_request_info(connection);
  const auto* server = static_cast<const MetricsServer*>(request->user_data);
  const absl::string_view path =
      request->local_uri != nullptr ? request->local_uri : "";
  const bool is_get = request->request_method != nullptr &&
                      std::strcmp(request->request_method, "GET") == 0;
  constexpr absl::string_view kPlainText = "text/plain; charset=utf-8";

  if (path != "/metrics" && path != "/healthz") {
    return SendResponse(
        connection, 404, kPlainText,
        absl::StrCat("404 Not Found: ", path, " (try /metrics or /healthz)\n"));
  }
  if (!is_get) {
    return SendResponse(connection, 405, kPlainText,
                        "405 Method Not Allowed: use GET\n",
                        /*allow_get_header=*/true);
  }
  if (path == "/healthz") {
    return SendResponse(connection, 200, kPlainText, "ok");
  }
  return SendResponse(connection, 200, kTextFormatContentType,
                      RenderTextFormat(server->registry_->Collect()));
}

int MetricsServer::LogMessage(const mg_connection* connection,
                              const char* message) {
  // For context-level errors civetweb passes a stand-in connection whose
  // context is ours, so user data is reachable (checked for 1.15).
  const mg_context* context =
      connection != nullptr ? mg_get_context(connection) : nullptr;
  auto* server = context != nullptr
                     ? static_cast<MetricsServer*>(mg_get_user_data(context))
                     : nullptr;
  if (server != nullptr) {
    absl::MutexLock lock(&server->mu_);
    if (server->starting_) {
      server->start_messages_.emplace_back(message);
      return 1;  // reported through Start's status instead
    }
  }
  FAPO_LOG(WARNING) << "civetweb: " << message;
  return 1;  // handled: civetweb prints nothing itself
}

}  // namespace fapo::metrics
