// The HTTP endpoint every fapo service exposes for Prometheus: a
// prometheus::Exposer (prometheus-cpp's pull library, on civetweb) serving
// a MetricsRegistry.
//
//   GET /metrics  200, the registry in the text format (prometheus-cpp's
//                 TextSerializer; gzip when the scraper accepts it), plus
//                 the exposer's own exposer_* scrape metrics
//   other paths   404 (civetweb matches a handler by prefix: /metrics...
//                 serves the metrics too)
//
//   ASSIGN_OR_RETURN(std::unique_ptr<MetricsServer> server,
//                    MetricsServer::Start(&DefaultMetricsRegistry(), {}));
//   // logs "metrics endpoint listening on http://127.0.0.1:41923/metrics"
//
// What this adds to the Exposer: options checked up front and bind
// failures as a Status naming the address (the Exposer throws), the bound
// port, and a prompt stop (NOTE [civetweb stop]).
#ifndef FAPO_SERVICES_METRICS_METRICS_SERVER_H_
#define FAPO_SERVICES_METRICS_METRICS_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "services/metrics/metrics_registry.h"

namespace prometheus {
class Exposer;
}  // namespace prometheus

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
  // host:port and civetweb's reason).
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
  MetricsServer(std::string host, std::unique_ptr<prometheus::Exposer> exposer,
                int port);

  const std::string host_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  const int port_;
};

}  // namespace fapo::metrics

#endif  // FAPO_SERVICES_METRICS_METRICS_SERVER_H_
