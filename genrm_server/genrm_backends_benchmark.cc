// Throughput of the rule backend behind the DynamicBatcher: the GenRM
// server's ceiling with the exact checker (no model), per batch size.
//
//   build-genrm/bench/genrm_backends_benchmark
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "benchmark/benchmark.h"
#include "genrm_server/dynamic_batcher.h"
#include "genrm_server/options_from_spec.h"
#include "genrm_server/rule_backend.h"
#include "tasks/arith/arith.h"

namespace fapo::genrm {
namespace {

std::vector<fapo::v1::ScoreRequest> MakeRequests(int count) {
  namespace arith = ::fapo::tasks::arith;
  auto generator = arith::CorpusGenerator::Create({}, {}, /*seed=*/1);
  std::vector<fapo::v1::ScoreRequest> requests;
  for (int i = 0; i < count; ++i) {
    arith::CorpusRecord record = *generator->Next();
    fapo::v1::ScoreRequest request;
    request.set_request_id(absl::StrCat("r", i));
    request.set_trajectory_id(absl::StrCat("t", i));
    request.set_task("arith");
    request.set_problem(record.prompt);
    request.set_solution(record.response);
    requests.push_back(std::move(request));
  }
  return requests;
}

// Each iteration pushes kRequestsPerIteration requests through Score() and
// waits for every callback.
void BM_RuleThroughBatcher(benchmark::State& state) {
  constexpr int kRequestsPerIteration = 4096;
  const std::vector<fapo::v1::ScoreRequest> requests =
      MakeRequests(kRequestsPerIteration);
  DynamicBatcherOptions options =
      BatcherOptionsFromSpec(config::JobSpec(), "bench");
  options.max_batch_size = static_cast<int>(state.range(0));
  options.max_batch_delay_ms = 1;
  options.max_in_flight_batches = 4;
  options.genrm_server_id = "bench";
  auto batcher = *DynamicBatcher::Create(options, *RuleBackend::Create({}));
  for (auto _ : state) {
    absl::BlockingCounter done(kRequestsPerIteration);
    for (const fapo::v1::ScoreRequest& request : requests) {
      batcher->Score(request, [&done](absl::StatusOr<fapo::v1::Verdict> v) {
        benchmark::DoNotOptimize(v);
        done.DecrementCount();
      });
    }
    done.Wait();
  }
  const DynamicBatcher::Stats stats = batcher->stats();
  state.SetItemsProcessed(state.iterations() * kRequestsPerIteration);
  state.counters["mean_batch"] =
      static_cast<double>(stats.requests) / std::max<int64_t>(1, stats.batches);
}
BENCHMARK(BM_RuleThroughBatcher)->Arg(8)->Arg(64)->UseRealTime();

// The backend alone, for reference: what batching costs on top.
void BM_RuleBackendDirect(benchmark::State& state) {
  const std::vector<fapo::v1::ScoreRequest> requests = MakeRequests(4096);
  auto backend = *RuleBackend::Create({});
  const size_t batch = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    for (size_t i = 0; i < requests.size(); i += batch) {
      std::vector<fapo::v1::ScoreRequest> chunk(
          requests.begin() + i,
          requests.begin() + std::min(requests.size(), i + batch));
      backend->ScoreBatch(std::move(chunk), [](BatchResults results) {
        benchmark::DoNotOptimize(results);
      });
    }
  }
  state.SetItemsProcessed(state.iterations() * requests.size());
}
BENCHMARK(BM_RuleBackendDirect)->Arg(8)->Arg(64);

}  // namespace
}  // namespace fapo::genrm

BENCHMARK_MAIN();
