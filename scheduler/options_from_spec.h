// From the job spec to the options of the scheduler's parts: the one place
// that fills their spec-fed fields (NOTE [one default] in
// services/config/job_spec.h). fapo-scheduler (SchedulerServer) uses these;
// tests start from them on a default JobSpec.
#ifndef FAPO_SCHEDULER_OPTIONS_FROM_SPEC_H_
#define FAPO_SCHEDULER_OPTIONS_FROM_SPEC_H_

#include "scheduler/rollout_driver.h"
#include "scheduler/samples_writer.h"
#include "scheduler/scheduler.h"
#include "scheduler/trainer_driver.h"
#include "services/config/job_spec.h"

namespace fapo::scheduler {

// job.name and steps, rollout.group_size and prompts_per_step, the
// algorithm's rewards and advantages, scheduler.* (staleness, determinism,
// the failure limit, the queue, worker timing), genrm.* (dispatch). Clock
// and metrics are left null.
SchedulerOptions SchedulerOptionsFromSpec(const config::JobSpec& spec);

// SchedulerOptionsFromSpec of a default JobSpec: what tests and benchmarks
// start from, so that they run with the defaults users get.
SchedulerOptions DefaultSchedulerOptions();

// rollout.temperature, top_p, top_k, max_new_tokens; job.seed.
RolloutDriverOptions RolloutDriverOptionsFromSpec(const config::JobSpec& spec);

// trainer.checkpoint_every; <job.output_dir>/metrics.jsonl ("" without an
// output dir).
TrainerDriverOptions TrainerDriverOptionsFromSpec(const config::JobSpec& spec);

// <job.output_dir>/samples.jsonl ("" without an output dir),
// job.sample_fraction, job.seed.
SamplesWriterOptions SamplesWriterOptionsFromSpec(const config::JobSpec& spec);

}  // namespace fapo::scheduler

#endif  // FAPO_SCHEDULER_OPTIONS_FROM_SPEC_H_
