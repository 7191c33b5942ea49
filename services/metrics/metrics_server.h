// The HTTP endpoint every fapo service exposes for Prometheus (civetweb).
//
//   GET /metrics  200, the registry in text format 0.0.4
//                 (Content-Type: text/plain; version=0.0.4; charset=utf-8)
//   GET /healthz  200, "ok"
//   other paths   404; other methods on the two paths: 405
//
//   ASSIGN_OR_RETURN(std::unique_ptr<MetricsServer> server,
//                    MetricsServer::Start(&DefaultMetricsRegistry(), {}));
//   // logs "metrics endpoint listening on http://127.0.0.1:41923/metrics"
//
// The server renders the registry afresh on every scrape; there is no
// caching, so a scrape always sees current values.
#ifndef FAPO_SERVICES_METRICS_METRICS_SERVER_H_
#define FAPO_SERVICES_METRICS_METRICS_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "services/metrics/metrics_registry.h"

struct mg_context;
struct mg_connection;

namespace fapo::metrics {

struct MetricsServerOptions {
  // IPv4 address to bind, as a dotted literal. Default "127.0.0.1"
  // (loopback only); "0.0.0.0" for every interface. Debian's civetweb is
  // built without IPv6 support, so IPv6 literals are refused.
  std::string host = "127.0.0.1";
  // TCP port. Default 0: the kernel picks a free one; read it from port().
  int port = 0;
  // civetweb worker threads, i.e. concurrent requests. Default 2: scrapes
  // are rare and cheap.
  int num_threads = 2;
  // How long civetweb waits on a slow client, in milliseconds. Default
  // 10000.
  int request_timeout_ms = 10000;
};

class MetricsServer {
 public:
  // Starts serving `registry`, which is not owned and must outlive the
  // server. Errors: InvalidArgument for a bad host, port or thread count;
  // Unavailable when the address cannot be bound (the message names
  // host:port and the reason, e.g. "Address already in use").
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const MetricsRegistry* registry, const MetricsServerOptions& options);

  // Stops serving; waits for requests in progress to finish.
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  const std::string& host() const { return host_; }
  // The bound port (the kernel's choice when options.port was 0).
  int port() const { return port_; }
  // "http://HOST:PORT/metrics".
  std::string url() const;

 private:
  MetricsServer(const MetricsRegistry* registry, std::string host);

  // civetweb callbacks; the context's user data is the MetricsServer.
  static int HandleRequest(mg_connection* connection);
  static int LogMessage(const mg_connection* connection, const char* message);

  const MetricsRegistry* const registry_;
  const std::string host_;
  int port_ = 0;
  mg_context* context_ = nullptr;

  // civetweb reports why a start failed only through its log callback, so
  // messages are kept while starting and folded into the error.
  absl::Mutex mu_;
  bool starting_ ABSL_GUARDED_BY(mu_) = true;
  std::vector<std::string> start_messages_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fapo::metrics

#endif  // FAPO_SERVICES_METRICS_METRICS_SERVER_H_
