// From the job spec's genrm section to a running backend and the batcher's
// options: the one mapping the GenRM server binary (and tests) use.
//
//   genrm.backend rule     RuleBackend with data.arith
//                 model    ModelBackend (genrm.model.*; seed job.seed);
//                          only in builds with LibTorch (FAPO_WITH_TORCH),
//                          else Unimplemented
//                 openai   OpenAiBackend (genrm.openai.*; genrm.model.samples
//                          is its k, as for the model backend)
//                 latency  LatencyBackend (genrm.latency.*; seed job.seed)
//                          around genrm.latency.inner
//   genrm.max_batch_size / max_batch_delay_ms -> DynamicBatcherOptions.
//
// The options themselves come from options_from_spec.h (NOTE [one
// default]).
//
// The model backend is linked only into targets that link this library in a
// LibTorch build; this header names no LibTorch type.
#ifndef FAPO_GENRM_SERVER_BACKEND_FACTORY_H_
#define FAPO_GENRM_SERVER_BACKEND_FACTORY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "genrm_server/genrm_backend.h"
#include "genrm_server/options_from_spec.h"
#include "services/config/job_spec.h"

namespace fapo::genrm {

// Creates the backend genrm.backend names. Errors:
//   InvalidArgument: latency.inner is latency (a latency backend cannot wrap
//     another), or a backend's own option validation fails (naming the
//     genrm.* key where the mapping knows it);
//   Unimplemented: backend model in a build without LibTorch;
//   the backend's Create errors (a missing model_dir, an unreadable
//     api_key_file), annotated with the backend's name.
absl::StatusOr<std::unique_ptr<GenrmBackend>> MakeGenrmBackend(
    const config::JobSpec& spec);

// Whether this build can create the model backend.
bool ModelBackendAvailable();

}  // namespace fapo::genrm

#endif  // FAPO_GENRM_SERVER_BACKEND_FACTORY_H_
