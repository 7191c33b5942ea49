// algorithm: the pure part of FAPO (Flawed-Aware Policy Optimization,
// arXiv 2510.22543). No I/O, no gRPC, no LibTorch; every function is
// deterministic and safe to call from any thread.
//
//   rewards.h         R = R_RLVR + R_delta (+ DAPO overlong penalty), options
//   advantages.h      GRPO / Dr. GRPO group advantages, dynamic sampling
//   flawed_metrics.h  sound / flawed-positive / wrong counts, alpha, beta,
//                     gamma, flawed-positive ratio, verdicts by status
//   genrm_prompt.h    paragraph splitting and the GenRM prompt (Appendix F)
//   verdict.h         VerdictStatus, parsing the GenRM's \boxed{} answer,
//                     majority vote, the GenRM's own training reward
//   loss/             the LibTorch policy loss: its own target, not part of
//                     fapo::algorithm (see loss/CMakeLists.txt)
//
// Typical flow for one complete group of G rollouts (the scheduler's job):
//
//   std::vector<double> rewards(G), advantages(G);
//   RETURN_IF_ERROR(ComputeRewards(judgements, reward_options, rewards));
//   RETURN_IF_ERROR(ComputeGroupAdvantages(rewards, advantage_options,
//                                          advantages));
//   ASSIGN_OR_RETURN(FlawedCounts group_counts,
//                    CountRollouts(judgements, verdict_statuses));
//   batch_counts += group_counts;
//
// Options structs are this library's own; a scheduler maps the job spec onto
// them and calls the Validate*Options functions once.
#ifndef FAPO_ALGORITHM_ALGORITHM_H_
#define FAPO_ALGORITHM_ALGORITHM_H_

#include "algorithm/advantages.h"
#include "algorithm/flawed_metrics.h"
#include "algorithm/genrm_prompt.h"
#include "algorithm/rewards.h"
#include "algorithm/verdict.h"

#endif  // FAPO_ALGORITHM_ALGORITHM_H_
