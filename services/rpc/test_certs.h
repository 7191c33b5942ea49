// Test-only: a throwaway PKI made with the openssl command line tool, for
// tests of TLS and mutual TLS on loopback.
#ifndef FAPO_SERVICES_RPC_TEST_CERTS_H_
#define FAPO_SERVICES_RPC_TEST_CERTS_H_

#include <string>

#include "absl/status/statusor.h"

namespace fapo::rpc::testing {

struct TestCerts {
  std::string dir;
  std::string ca_file;      // the CA that signed the server and client certs
  std::string server_cert;  // CN=localhost, SAN DNS:localhost, IP:127.0.0.1
  std::string server_key;
  std::string client_cert;  // CN=fapo-test-client, signed by ca_file
  std::string client_key;
  std::string rogue_ca_file;      // an unrelated CA
  std::string rogue_client_cert;  // signed by rogue_ca_file only
  std::string rogue_client_key;
  std::string token_file;        // holds "s3cret-token\n"
  std::string wrong_token_file;  // holds "not-the-token"
};

// Creates the files under `dir` (which must exist). Errors carry openssl's
// output. Fails (not skips) when openssl is missing: the install script
// provides it.
absl::StatusOr<TestCerts> MakeTestCerts(const std::string& dir);

}  // namespace fapo::rpc::testing

#endif  // FAPO_SERVICES_RPC_TEST_CERTS_H_
