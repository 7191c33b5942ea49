// tasks/math: the math task, for real runs on JSONL problem sets with boxed
// answers (DAPO-Math-17k's layout). Pure C++: no gRPC, LibTorch or config.
//
//   verifier.h   ExtractFinalAnswer (last \boxed{...}), NormalizeAnswer,
//                AnswersEqual, IsCorrectResponse: the task's verifier.
//   dataset.h    MathDataOptions, MathProblem, LoadMathProblems /
//                ParseMathProblems: prompts and ground truths from JSONL.
//   testdata/    dapo_math_sample.jsonl, a small made-up sample in the
//                DAPO-Math-17k layout.
//
// The job spec's data.math section (path, eval_path, prompt_field,
// answer_field) maps one to one onto MathDataOptions.
#ifndef FAPO_TASKS_MATH_MATH_H_
#define FAPO_TASKS_MATH_MATH_H_

#include "tasks/math/dataset.h"   // IWYU pragma: export
#include "tasks/math/verifier.h"  // IWYU pragma: export

#endif  // FAPO_TASKS_MATH_MATH_H_
