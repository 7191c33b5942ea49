// Weight-transfer throughput for a ~100 MB float32 model (issue #6's target:
// >= 1 GB/s over loopback): snapshot, chunking, assembly + apply, and the
// whole pull over a loopback gRPC stream, both as protobuf messages
// (BM_LoopbackPullAndApply) and raw (BM_LoopbackRawPullAndApply: what the
// trainer and the rollout worker use, NOTE [zero-copy weights]). Bytes/s
// are the model's bytes. scripts/bench-weights.sh runs it.
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include <cstdio>
#include <memory>

#include "engine/model/model.h"
#include "engine/weights/weights.h"
#include "engine/weights/weights_rpc.h"
#include "services/rpc/channel.h"
#include "services/rpc/server.h"

namespace fapo::engine {
namespace {

// Qwen3-shaped, 27.3M parameters = 109 MB in float32.
ModelConfig HundredMegabyteConfig() {
  ModelConfig c;
  c.family = ModelFamily::kQwen3;
  c.vocab_size = 8192;
  c.hidden_size = 1024;
  c.intermediate_size = 2048;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 4;
  c.head_dim = 128;
  c.max_position_embeddings = 512;
  c.qk_norm = true;
  c.tie_word_embeddings = true;
  return c;
}

CausalLM& Model() {
  static CausalLM* model = [] {
    at::set_num_threads(1);
    auto made = CausalLM::FromConfig(HundredMegabyteConfig(), 1);
    if (!made.ok()) {
      std::fprintf(stderr, "%s\n", made.status().ToString().c_str());
      std::abort();
    }
    return made->release();
  }();
  return *model;
}

std::shared_ptr<const WeightsSnapshot> Snapshot() {
  static auto snapshot = *SnapshotWeights(Model(), 1);
  return snapshot;
}

void SetBytes(benchmark::State& state) {
  state.SetBytesProcessed(state.iterations() *
                          Snapshot()->manifest.total_bytes());
  state.counters["MB"] = Snapshot()->manifest.total_bytes() / 1e6;
}

void BM_Snapshot(benchmark::State& state) {
  for (auto _ : state) {
    auto snapshot = SnapshotWeights(Model(), 1);
    benchmark::DoNotOptimize(snapshot);
  }
  SetBytes(state);
}
BENCHMARK(BM_Snapshot)->Unit(benchmark::kMillisecond);

void BM_ChunkMessages(benchmark::State& state) {
  for (auto _ : state) {
    int64_t bytes = 0;
    ForEachWeightsMessage(*Snapshot(), 0, [&](const v1::WeightsMessage& m) {
      bytes += m.chunk().data().size();
      return true;
    });
    benchmark::DoNotOptimize(bytes);
  }
  SetBytes(state);
}
BENCHMARK(BM_ChunkMessages)->Unit(benchmark::kMillisecond);

void BM_AssembleAndApply(benchmark::State& state) {
  std::vector<v1::WeightsMessage> messages;
  ForEachWeightsMessage(*Snapshot(), 0, [&](const v1::WeightsMessage& m) {
    messages.push_back(m);
    return true;
  });
  for (auto _ : state) {
    WeightsAssembler assembler;
    for (const auto& m : messages) {
      if (!assembler.Add(m).ok()) state.SkipWithError("Add");
    }
    if (!assembler.Finish().ok()) state.SkipWithError("Finish");
    if (!assembler.ApplyTo(Model()).ok()) state.SkipWithError("ApplyTo");
  }
  SetBytes(state);
}
BENCHMARK(BM_AssembleAndApply)->Unit(benchmark::kMillisecond);

// What TrainerService::GetWeights does, minus the version lookup.
class RawSnapshotTrainer : public v1::Trainer::WithRawCallbackMethod_GetWeights<
                               v1::Trainer::CallbackService> {
 public:
  grpc::ServerWriteReactor<grpc::ByteBuffer>* GetWeights(
      grpc::CallbackServerContext* context,
      const grpc::ByteBuffer* request) override {
    auto parsed = ParseGetWeightsRequest(*request);
    if (!parsed.ok()) return NewRawWeightsErrorReactor(parsed.status());
    return NewRawWeightsStreamReactor(Snapshot(), parsed->max_chunk_bytes());
  }
};

// The pull as the rollout worker does it (raw, over a channel) from a raw
// server: pull, per-chunk checks, assembly, whole-tensor checks, apply.
void BM_LoopbackRawPullAndApply(benchmark::State& state) {
  RawSnapshotTrainer trainer;
  rpc::ServerOptions options;
  options.host = "127.0.0.1";
  auto server = rpc::RpcServer::Start(
      options, {{&trainer, v1::Trainer::service_full_name()}});
  if (!server.ok()) {
    state.SkipWithError("server");
    return;
  }
  auto channel = rpc::MakeChannel((*server)->address(), {});
  PullWeightsOptions pull;
  pull.max_chunk_bytes = state.range(0) << 20;
  WeightsBuffer assembly_buffer;  // reused across pulls, as the worker does
  for (auto _ : state) {
    WeightsAssembler assembler(&assembly_buffer);
    absl::Status status = PullWeights(**channel, 1, pull, assembler);
    if (status.ok()) status = assembler.ApplyTo(Model());
    if (!status.ok()) state.SkipWithError(status.ToString().c_str());
  }
  SetBytes(state);
  (*server)->Shutdown();
}
BENCHMARK(BM_LoopbackRawPullAndApply)
    ->Arg(1)
    ->Arg(4)
    ->Arg(16)
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()  // both ends, every thread: load-independent
    ->UseRealTime();

class SnapshotTrainer : public v1::Trainer::CallbackService {
 public:
  grpc::ServerWriteReactor<v1::WeightsMessage>* GetWeights(
      grpc::CallbackServerContext* context,
      const v1::GetWeightsRequest* request) override {
    return NewWeightsStreamReactor(Snapshot(), request->max_chunk_bytes());
  }
};

// The whole UpdateWeights path minus the Rollout RPC: snapshot on the
// trainer side is excluded (it is taken once per version), the pull,
// assembly, checks and apply are included.
void BM_LoopbackPullAndApply(benchmark::State& state) {
  SnapshotTrainer trainer;
  rpc::ServerOptions options;
  options.host = "127.0.0.1";
  auto server = rpc::RpcServer::Start(
      options, {{&trainer, v1::Trainer::service_full_name()}});
  if (!server.ok()) {
    state.SkipWithError("server");
    return;
  }
  auto channel = rpc::MakeChannel((*server)->address(), {});
  auto stub = v1::Trainer::NewStub(*channel);
  PullWeightsOptions pull;
  pull.max_chunk_bytes = state.range(0) << 20;
  for (auto _ : state) {
    WeightsAssembler assembler;
    absl::Status status = PullWeights(*stub, 1, pull, assembler);
    if (status.ok()) status = assembler.ApplyTo(Model());
    if (!status.ok()) state.SkipWithError(status.ToString().c_str());
  }
  SetBytes(state);
  (*server)->Shutdown();
}
BENCHMARK(BM_LoopbackPullAndApply)
    ->Arg(1)
    ->Arg(4)
    ->Arg(16)
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()  // both ends, every thread: load-independent
    ->UseRealTime();

}  // namespace
}  // namespace fapo::engine

BENCHMARK_MAIN();
