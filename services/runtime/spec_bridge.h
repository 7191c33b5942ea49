// From the job spec to the options of the RPC plumbing: one mapping, used
// by every server and client so they always agree on security.
#ifndef FAPO_SERVICES_RUNTIME_SPEC_BRIDGE_H_
#define FAPO_SERVICES_RUNTIME_SPEC_BRIDGE_H_

#include "services/config/job_spec.h"
#include "services/rpc/security.h"

namespace fapo::runtime {

// security.tls.* and security.token_file as rpc::SecurityOptions. The same
// certificate serves as this process's server certificate and, under mutual
// TLS, as its client certificate.
rpc::SecurityOptions RpcSecurityFromSpec(const config::SecurityOptions& spec);

}  // namespace fapo::runtime

#endif  // FAPO_SERVICES_RUNTIME_SPEC_BRIDGE_H_
