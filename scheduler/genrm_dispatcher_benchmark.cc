// Dispatcher overhead per trajectory: Submit, dispatch to one of 4
// servers, a client that answers inline, the sink. The GenRM work itself
// is not measured; the target is >= 500k trajectories/s on one thread.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "scheduler/genrm_dispatcher.h"
#include "scheduler/options_from_spec.h"

namespace fapo::scheduler {
namespace {

// Answers every call inline with a fixed verdict; Cancel does nothing.
class NoOpClient final : public GenrmClient {
 public:
  std::unique_ptr<GenrmCall> Score(const GenrmServer&, const v1::ScoreRequest&,
                                   absl::Time, Done done) override {
    v1::Verdict verdict;
    verdict.set_status(v1::VERDICT_STATUS_OK);
    verdict.set_first_error_step(-1);
    done(std::move(verdict));
    return std::make_unique<NoOpCall>();
  }

 private:
  class NoOpCall final : public GenrmCall {
   public:
    void Cancel() override {}
  };
};

void BM_SubmitAndCompleteInline(benchmark::State& state) {
  NoOpClient client;
  int64_t verdicts = 0;
  auto dispatcher = GenrmDispatcher::Create(
      DefaultSchedulerOptions().genrm, &client,
      [&verdicts](const std::string&, v1::Verdict) { ++verdicts; });
  if (!dispatcher.ok()) {
    state.SkipWithError(dispatcher.status().ToString().c_str());
    return;
  }
  for (int i = 0; i < 4; ++i) {
    (*dispatcher)
        ->AddServer({absl::StrCat("genrm-", i),
                     absl::StrCat("10.0.0.", i, ":50051"), 64});
  }
  // Ids prepared up front: the benchmark measures the dispatcher.
  constexpr int kIds = 1 << 16;
  std::vector<std::string> ids;
  ids.reserve(kIds);
  for (int i = 0; i < kIds; ++i) ids.push_back(absl::StrCat("traj-", i));
  v1::ScoreRequest request;
  request.set_task("arith");
  request.set_problem("3+7*4-2");
  request.set_ground_truth("29");
  request.set_solution("7*4=28\n3+28=31\n31-2=29");
  int64_t i = 0;
  for (auto _ : state) {
    request.set_trajectory_id(ids[i++ & (kIds - 1)]);
    benchmark::DoNotOptimize((*dispatcher)->Submit(request));
  }
  state.SetItemsProcessed(state.iterations());
  if (verdicts != state.iterations()) state.SkipWithError("lost verdicts");
}
BENCHMARK(BM_SubmitAndCompleteInline);

}  // namespace
}  // namespace fapo::scheduler

BENCHMARK_MAIN();
