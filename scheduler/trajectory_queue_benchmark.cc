// The queue's share of the scheduler's in-process path (stage 4 target for
// the whole path: >= 500,000 trajectories/s): Add -> score -> take group ->
// trained, with 1 KB trajectories (response_text) in groups of 8.
//
//   BM_Cycle                one thread does the whole cycle
//   BM_CopiesOnly           its proto copies alone, no queue (the floor)
//   BM_CycleShared/threads  N threads each do the whole cycle on one queue
//   BM_Pipeline/producers   N producer threads Add; one consumer thread
//                           scores, takes groups and marks them trained
//                           (kWait backpressure, capacity 4096)
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "scheduler/trajectory_queue.h"

namespace fapo::scheduler {
namespace {

// The queue's spec-fed fields have no defaults (NOTE [one default]); these
// tests choose theirs: room enough, and a full queue refuses at once.
TrajectoryQueueOptions TestQueueOptions() {
  TrajectoryQueueOptions options;
  options.capacity = 65536;
  options.backpressure = Backpressure::kReject;
  return options;
}

constexpr int kGroupSize = 8;
constexpr int kResponseBytes = 1024;

v1::Trajectory Template() {
  v1::Trajectory trajectory;
  trajectory.set_response_text(std::string(kResponseBytes, 'x'));
  trajectory.set_prompt_id("prompt");
  trajectory.set_policy_version(3);
  return trajectory;
}

std::unique_ptr<TrajectoryQueue> NewQueue(
    int64_t capacity, Backpressure backpressure = Backpressure::kReject) {
  TrajectoryQueueOptions options = TestQueueOptions();
  options.capacity = capacity;
  options.backpressure = backpressure;
  return std::move(*TrajectoryQueue::Create(options));
}

v1::Verdict Verdict() {
  v1::Verdict verdict;
  verdict.set_answer_correct(true);
  verdict.set_first_error_step(-1);
  verdict.set_status(v1::VERDICT_STATUS_OK);
  return verdict;
}

void AddGroup(TrajectoryQueue& queue, const v1::Trajectory& prototype,
              const std::string& group_id) {
  for (int i = 0; i < kGroupSize; ++i) {
    v1::Trajectory trajectory = prototype;  // as if just deserialized
    trajectory.set_trajectory_id(absl::StrCat(group_id, "-", i));
    trajectory.set_group_id(group_id);
    trajectory.set_sample_index(i);
    absl::Status status =
        queue.Add(std::move(trajectory), v1::Prompt(), kGroupSize);
    if (!status.ok()) std::abort();
  }
}

// Scores what is generated, takes complete groups, marks them trained.
// Returns trajectories trained.
int64_t ConsumeOnce(TrajectoryQueue& queue, const v1::Verdict& verdict) {
  for (const v1::TrajectoryRecord& record :
       queue.StartScoringOldest(kGroupSize * 8)) {
    if (!queue
             .RecordVerdict(record.trajectory().trajectory_id(),
                            v1::Verdict(verdict))
             .ok()) {
      std::abort();
    }
  }
  int64_t trained = 0;
  for (const CompleteGroup& group : queue.TakeCompleteGroups(8)) {
    for (const v1::TrajectoryRecord& record : group.records) {
      if (!queue.MarkTrained(record.trajectory().trajectory_id()).ok()) {
        std::abort();
      }
      ++trained;
    }
  }
  return trained;
}

void BM_Cycle(benchmark::State& state) {
  auto queue = NewQueue(1 << 16);
  const v1::Trajectory prototype = Template();
  const v1::Verdict verdict = Verdict();
  int64_t group = 0;
  for (auto _ : state) {
    AddGroup(*queue, prototype, absl::StrCat("g", group++));
    benchmark::DoNotOptimize(ConsumeOnce(*queue, verdict));
  }
  state.SetItemsProcessed(state.iterations() * kGroupSize);
  state.SetBytesProcessed(state.iterations() * kGroupSize * kResponseBytes);
}
BENCHMARK(BM_Cycle);

// Floor for BM_Cycle: the same proto copies (the producer's trajectory,
// the record handed to the GenRM dispatcher, the one handed to the trainer)
// with no queue in between.
void BM_CopiesOnly(benchmark::State& state) {
  const v1::Trajectory prototype = Template();
  int64_t group = 0;
  for (auto _ : state) {
    std::string group_id = absl::StrCat("g", group++);
    for (int i = 0; i < kGroupSize; ++i) {
      v1::Trajectory trajectory = prototype;
      trajectory.set_trajectory_id(absl::StrCat(group_id, "-", i));
      trajectory.set_group_id(group_id);
      v1::TrajectoryRecord record;
      *record.mutable_trajectory() = std::move(trajectory);
      v1::TrajectoryRecord to_genrm = record;
      v1::TrajectoryRecord to_trainer = record;
      benchmark::DoNotOptimize(to_genrm);
      benchmark::DoNotOptimize(to_trainer);
    }
  }
  state.SetItemsProcessed(state.iterations() * kGroupSize);
}
BENCHMARK(BM_CopiesOnly);

TrajectoryQueue* shared_queue = nullptr;

void BM_CycleShared(benchmark::State& state) {
  if (state.thread_index() == 0) shared_queue = NewQueue(1 << 16).release();
  const v1::Trajectory prototype = Template();
  const v1::Verdict verdict = Verdict();
  int64_t group = 0;
  const std::string prefix = absl::StrCat("t", state.thread_index(), "g");
  for (auto _ : state) {
    AddGroup(*shared_queue, prototype, absl::StrCat(prefix, group++));
    benchmark::DoNotOptimize(ConsumeOnce(*shared_queue, verdict));
  }
  state.SetItemsProcessed(state.iterations() * kGroupSize);
  if (state.thread_index() == 0) {
    // Threads may leave each other's groups behind; count them drained.
    while (ConsumeOnce(*shared_queue, verdict) > 0) {
    }
    delete shared_queue;
    shared_queue = nullptr;
  }
}
BENCHMARK(BM_CycleShared)->Threads(1)->Threads(2)->UseRealTime();

// Each iteration pushes kGroupsPerIteration groups per producer through.
constexpr int kGroupsPerIteration = 1024;

void BM_Pipeline(benchmark::State& state) {
  const int producers = static_cast<int>(state.range(0));
  const v1::Trajectory prototype = Template();
  const v1::Verdict verdict = Verdict();
  int64_t round = 0;
  for (auto _ : state) {
    auto queue = NewQueue(4096, Backpressure::kWait);
    const int64_t total = int64_t{producers} * kGroupsPerIteration * kGroupSize;
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p) {
      threads.emplace_back([&, p] {
        for (int g = 0; g < kGroupsPerIteration; ++g) {
          AddGroup(*queue, prototype, absl::StrCat("r", round, "p", p, "g", g));
        }
      });
    }
    int64_t trained = 0;
    while (trained < total) {
      int64_t done = ConsumeOnce(*queue, verdict);
      if (done == 0) std::this_thread::yield();
      trained += done;
    }
    for (auto& thread : threads) thread.join();
    ++round;
  }
  state.SetItemsProcessed(state.iterations() * producers * kGroupsPerIteration *
                          kGroupSize);
}
BENCHMARK(BM_Pipeline)
    ->ArgName("producers")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace fapo::scheduler

BENCHMARK_MAIN();
