// All-reduce throughput of the Gloo communicator: 2 ranks (threads of this
// process) over loopback, float32 buffers of 1 MB and 25 MB (DDP's default
// bucket), one tensor per call; and gradient averaging of 25 gradients of
// 1 MB (one 25 MB bucket), with fresh or reused buckets. bytes_per_second
// counts the buffer once per call ("algorithm bandwidth", as nccl-tests'
// algbw).
//
//   OMP_NUM_THREADS=1 build/bench/gloo_communicator_benchmark
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "tests/support/subprocess.h"
#include "trainer/comm/gloo_communicator.h"

namespace fapo::trainer {
namespace {

struct Pair {
  std::unique_ptr<GlooCommunicator> rank0;
  std::unique_ptr<GlooCommunicator> rank1;
};

Pair MakePair() {
  AllowRanksInOneProcess();
  Pair pair;
  const int port = fapo::testing::FreeLoopbackPort().value();
  auto options = [&](int rank) {
    GlooCommunicatorOptions result;
    result.rank = rank;
    result.world_size = 2;
    result.store_port = port;
    return result;
  };
  std::thread peer(
      [&] { pair.rank1 = GlooCommunicator::Create(options(1)).value(); });
  pair.rank0 = GlooCommunicator::Create(options(0)).value();
  peer.join();
  return pair;
}

// Runs `collective(rank)` on both ranks once per benchmark iteration: rank 0
// on the benchmark's thread, rank 1 on a helper thread in lock-step.
template <typename Collective>
void RunPaired(benchmark::State& state, Collective collective,
               int64_t bytes_per_call) {
  absl::Mutex mutex;
  int64_t started = 0;   // iterations released to rank 1
  int64_t finished = 0;  // iterations rank 1 completed
  bool stop = false;
  std::thread peer([&] {
    for (int64_t i = 0;; ++i) {
      {
        absl::MutexLock lock(&mutex);
        auto released = [&] { return stop || started > i; };
        mutex.Await(absl::Condition(&released));
        if (started <= i) return;  // stopped
      }
      collective(1);
      absl::MutexLock lock(&mutex);
      ++finished;
    }
  });
  for (auto _ : state) {
    {
      absl::MutexLock lock(&mutex);
      ++started;
    }
    collective(0);
    absl::MutexLock lock(&mutex);
    auto peer_done = [&] { return finished == started; };
    mutex.Await(absl::Condition(&peer_done));
  }
  {
    absl::MutexLock lock(&mutex);
    stop = true;
  }
  peer.join();
  state.SetBytesProcessed(state.iterations() * bytes_per_call);
}

void BM_GlooAllReduce(benchmark::State& state) {
  at::set_num_threads(1);
  const int64_t bytes = state.range(0);
  Pair pair = MakePair();
  std::vector<at::Tensor> buffers[2] = {{at::ones({bytes / 4})},
                                        {at::ones({bytes / 4})}};
  GlooCommunicator* ranks[2] = {pair.rank0.get(), pair.rank1.get()};
  RunPaired(
      state,
      [&](int rank) {
        if (!ranks[rank]->AllReduceSum(buffers[rank]).ok()) std::abort();
      },
      bytes);
}
BENCHMARK(BM_GlooAllReduce)
    ->Arg(1 << 20)
    ->Arg(25 << 20)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// state.range(0): 1 = a GradientAverager kept across iterations (buckets
// reused, as in a training loop), 0 = AllReduceGradients (fresh buckets).
void BM_GlooAllReduceGradients(benchmark::State& state) {
  at::set_num_threads(1);
  constexpr int kGradients = 25;
  constexpr int64_t kGradientBytes = 1 << 20;
  const bool reuse_buckets = state.range(0) == 1;
  Pair pair = MakePair();
  std::vector<at::Tensor> grads[2];
  for (auto& list : grads) {
    for (int i = 0; i < kGradients; ++i) {
      list.push_back(at::ones({kGradientBytes / 4}));
    }
  }
  GlooCommunicator* ranks[2] = {pair.rank0.get(), pair.rank1.get()};
  GradientAverager averagers[2];
  RunPaired(
      state,
      [&](int rank) {
        const absl::Status status =
            reuse_buckets ? averagers[rank].AllReduce(*ranks[rank], grads[rank])
                          : AllReduceGradients(*ranks[rank], grads[rank]);
        if (!status.ok()) std::abort();
      },
      kGradients * kGradientBytes);
}
BENCHMARK(BM_GlooAllReduceGradients)
    ->ArgName("reuse_buckets")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace fapo::trainer

BENCHMARK_MAIN();
