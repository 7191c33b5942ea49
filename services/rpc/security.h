// Transport security shared by servers and clients: optional TLS (server
// certificate, or mutual TLS with a CA) and an optional bearer token that
// every RPC must carry.
//
// NOTE [bearer token needs TLS]: a token sent over plaintext can be read by
// anyone on the path, and gRPC itself refuses to attach call credentials to
// an insecure channel. So a token is only accepted together with TLS; the
// job spec's validation says so too (security.token_file).
#ifndef FAPO_SERVICES_RPC_SECURITY_H_
#define FAPO_SERVICES_RPC_SECURITY_H_

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fapo::rpc {

struct SecurityOptions {
  // Serve and dial with TLS. Default false (plaintext).
  bool tls = false;
  // PEM files: this process's certificate chain and private key. Servers
  // need both with TLS; clients need both only for mutual TLS.
  std::string cert_file;
  std::string key_file;
  // PEM CA bundle. Clients verify servers against it (default: the system
  // roots); with require_client_cert, servers verify clients against it.
  std::string ca_file;
  // Mutual TLS: servers refuse clients without a certificate signed by
  // ca_file. Default false.
  bool require_client_cert = false;
  // File holding the bearer token (surrounding whitespace ignored). Empty =
  // no token. Requires tls (NOTE [bearer token needs TLS]).
  std::string token_file;
  // Clients only: the name expected in the server's certificate, when it
  // differs from the dialled host (tests dial 127.0.0.1 with a "localhost"
  // certificate). Empty = the dialled host.
  std::string server_name_override;
};

// Reads a whole file; errors name the file and the option it came from.
absl::StatusOr<std::string> ReadSecretFile(const std::string& path,
                                           absl::string_view option_name);

// Reads and trims the token in options.token_file ("" when none). An empty
// token file is an error: it would silently disable authentication.
absl::StatusOr<std::string> ReadToken(const SecurityOptions& options);

// Server credentials for `options`, with the bearer-token check installed
// when a token is configured. Errors name the missing or unreadable file.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const SecurityOptions& options);

// Channel credentials (TLS or insecure), composed with the token's call
// credentials when a token is configured.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>>
MakeChannelCredentials(const SecurityOptions& options);

// Constant-time check of an "authorization" header value against
// "Bearer <token>". Exposed for tests.
bool BearerTokenMatches(absl::string_view header_value,
                        absl::string_view token);

}  // namespace fapo::rpc

#endif  // FAPO_SERVICES_RPC_SECURITY_H_
