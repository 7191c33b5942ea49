// tasks/arith: the synthetic multi-step arithmetic task (the embedded
// default's task, and the benchmarks' and tests'); see
// docs/arith-testbed.md. Include this header for all of it.
//
//   problem.h    ArithOptions (the job spec's data.arith), Problem, prompt
//                text, exact evaluation, the seeded ProblemGenerator
//   solution.h   solutions, one step per line ("3+7=0\n0*4=0\n0-2=8\n#3"),
//                and slipped traces
//   checker.h    the exact step checker: first wrong step, answer, class
//                (sound / flawed_positive / wrong); NOTE [arith checking
//                rules]
//   corpus.h     the SFT warm-up corpus (clean / half_slip / wrong_slip)
//                and its JSONL
//   bench.h      the flawed-positive bench for GenRM quality (sound /
//                half_slip / lucky_slip) and its JSONL
//   random.h     (internal) NOTE [reproducible randomness]
//   numerals.h   (internal) NOTE [canonical numerals]
//   slips.h, jsonl.h  (internal) slip draws, JSONL plumbing
//   arith_benchmark.cc  checker and generator throughput
//
//   ASSIGN_OR_RETURN(ProblemGenerator problems,
//                    ProblemGenerator::Create(options, seed));
//   ASSIGN_OR_RETURN(Checker checker, Checker::Create(options));
//   Problem problem = problems.Next();
//   CheckResult verdict = checker.Check(problem, response);
#ifndef FAPO_TASKS_ARITH_ARITH_H_
#define FAPO_TASKS_ARITH_ARITH_H_

#include "tasks/arith/bench.h"     // IWYU pragma: export
#include "tasks/arith/checker.h"   // IWYU pragma: export
#include "tasks/arith/corpus.h"    // IWYU pragma: export
#include "tasks/arith/problem.h"   // IWYU pragma: export
#include "tasks/arith/solution.h"  // IWYU pragma: export

#endif  // FAPO_TASKS_ARITH_ARITH_H_
