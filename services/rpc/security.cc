#include "services/rpc/security.h"

#include <grpcpp/security/auth_metadata_processor.h>

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "services/status/status_macros.h"

namespace fapo::rpc {
namespace {

constexpr absl::string_view kAuthorizationHeader = "authorization";
constexpr absl::string_view kBearerPrefix = "Bearer ";

// Checks the bearer token on every call before any handler runs, for every
// service on the port (health and reflection included).
class TokenAuthProcessor : public grpc::AuthMetadataProcessor {
 public:
  explicit TokenAuthProcessor(std::string token) : token_(std::move(token)) {}

  // The check is a string compare: no need for gRPC's blocking thread pool.
  bool IsBlocking() const override { return false; }

  grpc::Status Process(const InputMetadata& auth_metadata,
                       grpc::AuthContext* /*context*/,
                       OutputMetadata* consumed_auth_metadata,
                       OutputMetadata* /*response_metadata*/) override {
    auto it = auth_metadata.find(grpc::string_ref(kAuthorizationHeader.data(),
                                                  kAuthorizationHeader.size()));
    if (it == auth_metadata.end()) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "missing bearer token (authorization metadata)");
    }
    absl::string_view value(it->second.data(), it->second.size());
    if (!BearerTokenMatches(value, token_)) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "invalid bearer token");
    }
    consumed_auth_metadata->emplace(std::string(kAuthorizationHeader),
                                    std::string(value));
    return grpc::Status::OK;
  }

 private:
  const std::string token_;
};

class TokenCallCredentials : public grpc::MetadataCredentialsPlugin {
 public:
  explicit TokenCallCredentials(std::string token)
      : header_(absl::StrCat(kBearerPrefix, token)) {}

  bool IsBlocking() const override { return false; }

  grpc::Status GetMetadata(
      grpc::string_ref /*service_url*/, grpc::string_ref /*method_name*/,
      const grpc::AuthContext& /*channel_auth_context*/,
      std::multimap<std::string, std::string>* metadata) override {
    metadata->emplace(std::string(kAuthorizationHeader), header_);
    return grpc::Status::OK;
  }

 private:
  const std::string header_;
};

absl::Status CheckTokenNeedsTls(const SecurityOptions& options) {
  if (!options.token_file.empty() && !options.tls) {
    return absl::FailedPreconditionError(
        "security.token_file is set but TLS is off: a bearer token over "
        "plaintext can be read off the network; enable security.tls");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ReadSecretFile(const std::string& path,
                                           absl::string_view option_name) {
  if (path.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(option_name, ": no file given"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat(option_name, ": cannot read '", path, "'"));
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) {
    return absl::DataLossError(
        absl::StrCat(option_name, ": error while reading '", path, "'"));
  }
  return contents.str();
}

absl::StatusOr<std::string> ReadToken(const SecurityOptions& options) {
  if (options.token_file.empty()) return std::string();
  ASSIGN_OR_RETURN(std::string contents,
                   ReadSecretFile(options.token_file, "security.token_file"));
  std::string token(absl::StripAsciiWhitespace(contents));
  if (token.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("security.token_file: '", options.token_file,
                     "' is empty; an empty token would disable "
                     "authentication"));
  }
  return token;
}

bool BearerTokenMatches(absl::string_view header_value,
                        absl::string_view token) {
  if (header_value.size() != kBearerPrefix.size() + token.size() ||
      header_value.substr(0, kBearerPrefix.size()) != kBearerPrefix) {
    return false;
  }
  absl::string_view given = header_value.substr(kBearerPrefix.size());
  // Constant time in the token's content: no early exit on a mismatch.
  unsigned char difference = 0;
  for (size_t i = 0; i < token.size(); ++i) {
    difference |= static_cast<unsigned char>(given[i] ^ token[i]);
  }
  return difference == 0;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const SecurityOptions& options) {
  RETURN_IF_ERROR(CheckTokenNeedsTls(options));
  if (!options.tls) return grpc::InsecureServerCredentials();

  grpc::SslServerCredentialsOptions ssl(
      options.require_client_cert
          ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
          : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  ASSIGN_OR_RETURN(pair.cert_chain,
                   ReadSecretFile(options.cert_file, "security.tls.cert_file"));
  ASSIGN_OR_RETURN(pair.private_key,
                   ReadSecretFile(options.key_file, "security.tls.key_file"));
  ssl.pem_key_cert_pairs.push_back(std::move(pair));
  if (options.require_client_cert) {
    ASSIGN_OR_RETURN(ssl.pem_root_certs,
                     ReadSecretFile(options.ca_file, "security.tls.ca_file"));
  }
  std::shared_ptr<grpc::ServerCredentials> credentials =
      grpc::SslServerCredentials(ssl);

  ASSIGN_OR_RETURN(std::string token, ReadToken(options));
  if (!token.empty()) {
    credentials->SetAuthMetadataProcessor(
        std::make_shared<TokenAuthProcessor>(std::move(token)));
  }
  return credentials;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>>
MakeChannelCredentials(const SecurityOptions& options) {
  RETURN_IF_ERROR(CheckTokenNeedsTls(options));
  if (!options.tls) return grpc::InsecureChannelCredentials();

  grpc::SslCredentialsOptions ssl;
  if (!options.ca_file.empty()) {
    ASSIGN_OR_RETURN(ssl.pem_root_certs,
                     ReadSecretFile(options.ca_file, "security.tls.ca_file"));
  }
  if (!options.cert_file.empty() || !options.key_file.empty()) {
    ASSIGN_OR_RETURN(
        ssl.pem_cert_chain,
        ReadSecretFile(options.cert_file, "security.tls.cert_file"));
    ASSIGN_OR_RETURN(ssl.pem_private_key,
                     ReadSecretFile(options.key_file, "security.tls.key_file"));
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      grpc::SslCredentials(ssl);

  ASSIGN_OR_RETURN(std::string token, ReadToken(options));
  if (!token.empty()) {
    credentials = grpc::CompositeChannelCredentials(
        credentials, grpc::MetadataCredentialsFromPlugin(
                         std::make_unique<TokenCallCredentials>(token)));
  }
  return credentials;
}

}  // namespace fapo::rpc
