#include "services/runtime/spec_bridge.h"

namespace fapo::runtime {

rpc::SecurityOptions RpcSecurityFromSpec(const config::SecurityOptions& spec) {
  rpc::SecurityOptions security;
  security.tls = spec.tls.enabled;
  if (spec.tls.enabled) {
    security.cert_file = spec.tls.cert_file;
    security.key_file = spec.tls.key_file;
    security.ca_file = spec.tls.ca_file;
    security.require_client_cert = spec.tls.require_client_cert;
  }
  security.token_file = spec.token_file;
  return security;
}

}  // namespace fapo::runtime
