// The job spec's policy.device and policy.dtype as engine LoadOptions: one
// mapping for every process that loads the policy (trainer, rollout
// workers), so they always hold it the same way.
#ifndef FAPO_ENGINE_MODEL_POLICY_OPTIONS_H_
#define FAPO_ENGINE_MODEL_POLICY_OPTIONS_H_

#include "engine/model/model.h"
#include "services/config/job_spec.h"

namespace fapo::engine {

LoadOptions PolicyLoadOptions(const config::PolicyOptions& policy);

}  // namespace fapo::engine

#endif  // FAPO_ENGINE_MODEL_POLICY_OPTIONS_H_
