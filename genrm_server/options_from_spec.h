// From the job spec's genrm section (and data.arith, job.seed) to the
// options of the GenRM server's parts: the one place that fills them (NOTE
// [one default] in services/config/job_spec.h). Pure mappings; tests start
// from them on a default JobSpec.
#ifndef FAPO_GENRM_SERVER_OPTIONS_FROM_SPEC_H_
#define FAPO_GENRM_SERVER_OPTIONS_FROM_SPEC_H_

#include <string>

#include "absl/status/statusor.h"
#include "genrm_server/dynamic_batcher.h"
#include "genrm_server/latency_backend.h"
#include "genrm_server/openai/openai_backend.h"
#include "genrm_server/rule_backend.h"
#include "services/config/job_spec.h"

namespace fapo::genrm {

// The options each backend would be created with (pure mappings, for tests
// and for `fapo validate`-style reporting).
RuleBackendOptions RuleOptionsFromSpec(const config::JobSpec& spec);
OpenAiBackendOptions OpenAiOptionsFromSpec(const config::JobSpec& spec);
// InvalidArgument for a distribution the spec enum does not name.
absl::StatusOr<LatencyBackendOptions> LatencyOptionsFromSpec(
    const config::JobSpec& spec);

// max_batch_size, max_batch_delay_ms; max_in_flight_batches stays at its
// default unless the cap on requests in flight (max_in_flight_per_server)
// is smaller than max_in_flight_batches full batches could hold;
// genrm_server_id as given.
DynamicBatcherOptions BatcherOptionsFromSpec(const config::JobSpec& spec,
                                             const std::string& server_id);

}  // namespace fapo::genrm

#endif  // FAPO_GENRM_SERVER_OPTIONS_FROM_SPEC_H_
