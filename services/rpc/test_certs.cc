#include "services/rpc/test_certs.h"

#include <array>
#include <cstdio>
#include <fstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "services/status/status_macros.h"

namespace fapo::rpc::testing {
namespace {

absl::Status Run(const std::string& command) {
  std::string full = absl::StrCat(command, " 2>&1");
  FILE* pipe = popen(full.c_str(), "r");
  if (pipe == nullptr) return absl::InternalError("popen failed");
  std::string output;
  std::array<char, 512> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) {
    output.append(buffer.data(), n);
  }
  int rc = pclose(pipe);
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat("`", command, "` failed (", rc, "): ", output));
  }
  return absl::OkStatus();
}

absl::Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// A P-256 key and a certificate for `cn` signed by `ca` (self-signed when
// ca is empty).
absl::Status MakeCert(const std::string& dir, const std::string& name,
                      const std::string& cn, const std::string& ca,
                      const std::string& extensions) {
  const std::string key = absl::StrCat(dir, "/", name, ".key");
  const std::string cert = absl::StrCat(dir, "/", name, ".pem");
  const std::string newkey =
      "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  if (ca.empty()) {
    return Run(absl::StrCat("openssl req -x509 ", newkey, " -keyout ", key,
                            " -out ", cert, " -days 2 -subj /CN=", cn,
                            " -addext basicConstraints=critical,CA:TRUE"));
  }
  const std::string csr = absl::StrCat(dir, "/", name, ".csr");
  const std::string ext = absl::StrCat(dir, "/", name, ".ext");
  RETURN_IF_ERROR(WriteFile(ext, extensions));
  RETURN_IF_ERROR(Run(absl::StrCat("openssl req ", newkey, " -keyout ", key,
                                   " -out ", csr, " -subj /CN=", cn)));
  return Run(absl::StrCat(
      "openssl x509 -req -in ", csr, " -CA ", dir, "/", ca, ".pem -CAkey ", dir,
      "/", ca, ".key -CAcreateserial -days 2 -out ", cert, " -extfile ", ext));
}

}  // namespace

absl::StatusOr<TestCerts> MakeTestCerts(const std::string& dir) {
  RETURN_IF_ERROR(Run("openssl version"));
  RETURN_IF_ERROR(MakeCert(dir, "ca", "fapo-test-ca", "", ""));
  RETURN_IF_ERROR(MakeCert(dir, "rogue-ca", "fapo-rogue-ca", "", ""));
  RETURN_IF_ERROR(MakeCert(dir, "server", "localhost", "ca",
                           "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                           "extendedKeyUsage=serverAuth\n"));
  RETURN_IF_ERROR(MakeCert(dir, "client", "fapo-test-client", "ca",
                           "extendedKeyUsage=clientAuth\n"));
  RETURN_IF_ERROR(MakeCert(dir, "rogue-client", "fapo-rogue-client", "rogue-ca",
                           "extendedKeyUsage=clientAuth\n"));
  TestCerts certs;
  certs.dir = dir;
  certs.ca_file = dir + "/ca.pem";
  certs.server_cert = dir + "/server.pem";
  certs.server_key = dir + "/server.key";
  certs.client_cert = dir + "/client.pem";
  certs.client_key = dir + "/client.key";
  certs.rogue_ca_file = dir + "/rogue-ca.pem";
  certs.rogue_client_cert = dir + "/rogue-client.pem";
  certs.rogue_client_key = dir + "/rogue-client.key";
  certs.token_file = dir + "/token";
  certs.wrong_token_file = dir + "/wrong-token";
  RETURN_IF_ERROR(WriteFile(certs.token_file, "s3cret-token\n"));
  RETURN_IF_ERROR(WriteFile(certs.wrong_token_file, "not-the-token"));
  return certs;
}

}  // namespace fapo::rpc::testing
