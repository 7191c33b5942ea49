// The scheduler's throughput with a no-op GenRM and 1 KB trajectories
// (issue #5's targets), and Redis streams doing the same queueing work on
// the same machine, in one run so the ratio is fair.
//
//   BM_InProcess          Scheduler alone: admit a group, AddTrajectory x8
//                         (verify, queue, dispatch to a GenRM client that
//                         answers inline), batches of 16 groups taken and
//                         marked trained. Target >= 500,000/s.
//   BM_InProcessWithSamples  the same, with every trajectory written to
//                         samples.jsonl in a temporary directory.
//   BM_InProcessProducers/threads:N  one scheduler fed by N producer
//                         threads at once (as gRPC's threads feed it):
//                         how the locks scale.
//   BM_GrpcLoopback       the same, but the trajectories arrive over
//                         loopback gRPC: a Rollout service in this process
//                         streams them to a RolloutDriver (8 streams at
//                         once). Target >= 20,000/s.
//   BM_GrpcLoopbackGenrm  ...and the GenRM is a no-op GenRM service over
//                         loopback gRPC too (one Score RPC per correct
//                         trajectory).
//   BM_DispatchLatency    arrival (AddTrajectory) to dispatch (the GenRM
//                         client's Score) at a paced rate, as p50/p99
//                         counters; run it at half the BM_InProcess rate.
//   BM_RedisStreams       Debian's redis-server on a Unix socket: XADD the
//                         same 1 KB payloads (pipelined), XREADGROUP them
//                         as a consumer group and XACK them; the floor a
//                         Redis-based queue would pay for the same traffic.
//
// scripts/bench-scheduler.sh runs them and prints the ratios.
#include <hiredis/hiredis.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "benchmark/benchmark.h"
#include "fapo/v1/genrm.grpc.pb.h"
#include "fapo/v1/rollout.grpc.pb.h"
#include "scheduler/clients/fake_genrm_client.h"
#include "scheduler/clients/grpc_genrm_client.h"
#include "scheduler/clients/grpc_rollout_client.h"
#include "scheduler/options_from_spec.h"
#include "scheduler/rollout_driver.h"
#include "scheduler/samples_writer.h"
#include "scheduler/scheduler.h"
#include "services/logging/log.h"
#include "services/metrics/metrics_registry.h"
#include "services/rpc/server.h"
#include "tests/support/subprocess.h"

namespace fapo::scheduler {
namespace {

constexpr int kGroupSize = 8;
constexpr int kGroupsPerStep = 16;
constexpr int kResponseBytes = 1024;

// 1 KB of steps ending with the right answer: the verifier reads it whole
// and finds the answer correct, so every trajectory goes to the GenRM.
std::string Response(const v1::Prompt& prompt) {
  // The steps are the same for every prompt: made once, so the harness's
  // own cost stays small next to the scheduler's.
  static const std::string* const kSteps = [] {
    auto* steps = new std::string;
    while (steps->size() < kResponseBytes - 8) *steps += "1+1=2\n";
    return steps;
  }();
  return absl::StrCat(*kSteps, "#", prompt.ground_truth());
}

v1::Verdict Sound(const v1::ScoreRequest& request) {
  v1::Verdict verdict;
  verdict.set_trajectory_id(request.trajectory_id());
  verdict.set_answer_correct(true);
  verdict.set_first_error_step(-1);
  verdict.set_status(v1::VERDICT_STATUS_OK);
  return verdict;
}

// The no-op GenRM: answers every call inline with a sound verdict, filled
// in as a GenRM server fills its own (trajectory id and server id), and
// keeps no state: what is measured is the scheduler, not a test double's
// bookkeeping (FakeGenrmClient records and locks per call).
class NoopGenrmClient final : public GenrmClient {
 public:
  std::unique_ptr<GenrmCall> Score(const GenrmServer& server,
                                   const v1::ScoreRequest& request, absl::Time,
                                   Done done) override {
    v1::Verdict verdict = Sound(request);
    verdict.set_genrm_server_id(server.worker_id);
    done(std::move(verdict));
    return std::make_unique<FinishedCall>();
  }

 private:
  class FinishedCall final : public GenrmCall {
   public:
    void Cancel() override {}
  };
};

SchedulerOptions Options() {
  SchedulerOptions options = DefaultSchedulerOptions();
  options.group_size = kGroupSize;
  options.groups_per_step = kGroupsPerStep;
  options.total_steps = int64_t{1} << 40;
  options.max_staleness = 1;
  options.queue.capacity = 1 << 16;
  options.max_consecutive_failures = 1 << 20;
  return options;
}

std::unique_ptr<Scheduler> NewScheduler(
    GenrmClient* client, TrajectoryOutcomeSink* outcomes = nullptr,
    metrics::MetricsRegistry* registry = nullptr) {
  config::JobSpec spec;
  spec.data.task = config::Task::kArith;
  SchedulerOptions options = Options();
  options.outcomes = outcomes;
  options.metrics = registry;
  auto scheduler = Scheduler::Create(options, *tasks::MakePromptSource(spec),
                                     *tasks::MakeAnswerVerifier(spec), client);
  if (!scheduler.ok()) {
    FAPO_LOG(ERROR) << scheduler.status();
    std::abort();
  }
  return *std::move(scheduler);
}

void Register(Scheduler& scheduler, v1::WorkerRole role, const std::string& id,
              const std::string& address, int capacity) {
  v1::WorkerInfo info;
  info.set_worker_id(id);
  info.set_role(role);
  info.set_address(address);
  info.set_capacity(capacity);
  (void)scheduler.RegisterWorker(info);
}

// Takes and trains every full batch; returns trajectories trained.
int64_t TrainReady(Scheduler& scheduler) {
  int64_t trained = 0;
  while (std::shared_ptr<const TrainBatch> batch = scheduler.TakeTrainBatch()) {
    trained += static_cast<int64_t>(batch->trajectories.size());
    (void)scheduler.CompleteTrainStep(batch->step, batch->policy_version + 1,
                                      {});
    // What the weight sync would report (no trainer here).
    for (const v1::WorkerInfo& worker :
         scheduler.workers().Alive(v1::WORKER_ROLE_ROLLOUT)) {
      scheduler.workers().NotePolicyVersion(worker.worker_id(),
                                            batch->policy_version + 1);
    }
  }
  return trained;
}

// Four no-op GenRM servers, room for everything.
void RegisterNoopGenrms(Scheduler& scheduler) {
  for (int i = 0; i < 4; ++i) {
    Register(scheduler, v1::WORKER_ROLE_GENRM, absl::StrCat("genrm-", i),
             "noop", 1 << 20);
  }
}

// One step of a producer: admits a group and adds its kGroupSize samples;
// or, when no group may be admitted, trains the batches that are ready.
// Returns the samples added.
int ProduceOneGroup(Scheduler& scheduler) {
  auto group = scheduler.NextPromptGroup();
  if (!group.ok() || !group->has_value()) {
    TrainReady(scheduler);
    return 0;
  }
  const PromptGroup& g = **group;
  const std::string response = Response(g.prompt);
  const int64_t version = scheduler.policy_version();
  for (int i = 0; i < kGroupSize; ++i) {
    // A fresh message moved in, as the RolloutDriver moves each one it
    // reads off a stream.
    v1::Trajectory trajectory;
    trajectory.set_trajectory_id(absl::StrCat(g.group_id, "/", i));
    trajectory.set_group_id(g.group_id);
    trajectory.set_sample_index(i);
    trajectory.set_response_text(response);
    trajectory.set_policy_version(version);
    if (!scheduler.AddTrajectory(std::move(trajectory)).ok()) std::abort();
  }
  return kGroupSize;
}

// With `samples_path`, every trajectory also goes to samples.jsonl there
// (SamplesWriter, as fapo-scheduler with job.sample_fraction 1).
// With `registry`, the scheduler and its parts export their metrics there,
// as fapo-scheduler always does.
void RunInProcess(benchmark::State& state, const std::string& samples_path,
                  metrics::MetricsRegistry* registry = nullptr) {
  std::unique_ptr<SamplesWriter> samples;
  if (!samples_path.empty()) {
    SamplesWriterOptions samples_options =
        SamplesWriterOptionsFromSpec(config::JobSpec());
    samples_options.path = samples_path;
    samples = *SamplesWriter::Create(samples_options);
  }
  NoopGenrmClient client;
  std::unique_ptr<Scheduler> scheduler =
      NewScheduler(&client, samples.get(), registry);
  RegisterNoopGenrms(*scheduler);
  int64_t items = 0;
  for (auto _ : state) {
    items += ProduceOneGroup(*scheduler);
  }
  TrainReady(*scheduler);
  // The writer's backlog is part of the cost: the clock stops once it is
  // on disk.
  if (samples != nullptr) (void)samples->Flush();
  state.SetItemsProcessed(items);
}

void BM_InProcess(benchmark::State& state) { RunInProcess(state, ""); }

// BM_InProcess with every metric the services export updated on the way:
// the difference is what /metrics costs the hot path.
void BM_InProcessWithMetrics(benchmark::State& state) {
  std::unique_ptr<metrics::MetricsRegistry> registry =
      metrics::NewMetricsRegistry();
  RunInProcess(state, "", registry.get());
}
BENCHMARK(BM_InProcessWithMetrics)
    ->Unit(benchmark::kMicrosecond)
    ->MinTime(2.0)
    ->UseRealTime();

// The same scheduler fed by state.threads() producers at once, as the
// RolloutDriver's streams feed it from gRPC's threads; each producer also
// trains the batches it finds ready, as the trainer driver would.
void BM_InProcessProducers(benchmark::State& state) {
  static NoopGenrmClient* client = nullptr;
  static Scheduler* scheduler = nullptr;
  if (state.thread_index() == 0) {
    client = new NoopGenrmClient;
    scheduler = NewScheduler(client).release();
    RegisterNoopGenrms(*scheduler);
  }
  int64_t items = 0;
  // The loop's start waits for every thread (google/benchmark's barrier),
  // so the others see the scheduler thread 0 made.
  for (auto _ : state) {
    items += ProduceOneGroup(*scheduler);
  }
  state.SetItemsProcessed(items);
  // ... and its end waits for every thread too: no one uses it any more.
  if (state.thread_index() == 0) {
    delete scheduler;
    delete client;
  }
}
BENCHMARK(BM_InProcessProducers)
    ->Unit(benchmark::kMicrosecond)
    ->MinTime(2.0)
    ->UseRealTime()
    ->Threads(1)
    ->Threads(2);
BENCHMARK(BM_InProcess)
    ->Unit(benchmark::kMicrosecond)
    ->MinTime(2.0)
    ->UseRealTime();

void BM_InProcessWithSamples(benchmark::State& state) {
  testing::TempDir dir("fapo-samples-bench-");
  RunInProcess(state, dir.path() + "/samples.jsonl");
}
BENCHMARK(BM_InProcessWithSamples)
    ->Unit(benchmark::kMicrosecond)
    ->MinTime(2.0)
    ->UseRealTime();

// A Rollout service that streams G 1 KB trajectories per Generate.
class Writer final : public grpc::ServerWriteReactor<v1::Trajectory> {
 public:
  explicit Writer(const v1::GenerateRequest& request) : request_(request) {
    response_ = Response(request.prompt());
    Next();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::CANCELLED);
      return;
    }
    Next();
  }
  void OnDone() override { delete this; }

 private:
  void Next() {
    if (next_ == request_.num_samples()) {
      Finish(grpc::Status::OK);
      return;
    }
    trajectory_.set_trajectory_id(
        absl::StrCat(request_.group_id(), "/", next_));
    trajectory_.set_group_id(request_.group_id());
    trajectory_.set_sample_index(next_);
    trajectory_.set_response_text(response_);
    trajectory_.set_policy_version(request_.min_policy_version() + 1);
    ++next_;
    StartWrite(&trajectory_);
  }
  v1::GenerateRequest request_;
  std::string response_;
  v1::Trajectory trajectory_;
  int next_ = 0;
};

class StreamingRollout final : public v1::Rollout::CallbackService {
 public:
  grpc::ServerWriteReactor<v1::Trajectory>* Generate(
      grpc::CallbackServerContext*,
      const v1::GenerateRequest* request) override {
    return new Writer(*request);
  }
};

class NoopGenrm final : public v1::GenRM::CallbackService {
 public:
  grpc::ServerUnaryReactor* Score(grpc::CallbackServerContext* context,
                                  const v1::ScoreRequest* request,
                                  v1::ScoreResponse* response) override {
    *response->mutable_verdict() = Sound(*request);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

void RunGrpcLoopback(benchmark::State& state, bool genrm_over_grpc) {
  FakeGenrmClient fake;
  fake.set_record(false);
  fake.SetAutoResponder([](const GenrmServer&, const v1::ScoreRequest& request)
                            -> std::optional<absl::StatusOr<v1::Verdict>> {
    return Sound(request);
  });
  StreamingRollout rollout;
  NoopGenrm genrm;
  rpc::ServerOptions server_options;
  server_options.host = "127.0.0.1";
  auto server = rpc::RpcServer::Start(
      server_options, {{&rollout, v1::Rollout::service_full_name()},
                       {&genrm, v1::GenRM::service_full_name()}});
  if (!server.ok()) {
    state.SkipWithError("cannot start the loopback server");
    return;
  }
  std::unique_ptr<GrpcGenrmClient> grpc_genrm = *GrpcGenrmClient::Create({});
  GenrmClient* client =
      genrm_over_grpc ? static_cast<GenrmClient*>(grpc_genrm.get()) : &fake;
  std::unique_ptr<Scheduler> scheduler = NewScheduler(client);
  Register(*scheduler, v1::WORKER_ROLE_GENRM, "genrm", (*server)->address(),
           256);
  Register(*scheduler, v1::WORKER_ROLE_ROLLOUT, "rollout", (*server)->address(),
           8);
  std::unique_ptr<GrpcRolloutClient> rollout_client =
      *GrpcRolloutClient::Create({});
  RolloutDriverOptions driver_options;
  driver_options.poll_interval = absl::Milliseconds(1);
  std::unique_ptr<RolloutDriver> driver = *RolloutDriver::Create(
      driver_options, scheduler.get(), rollout_client.get());
  driver->Start();
  // One iteration = one train batch of 16 groups x 8 arrived over gRPC.
  int64_t items = 0;
  for (auto _ : state) {
    int64_t trained = 0;
    while (trained == 0) {
      trained = TrainReady(*scheduler);
      if (trained == 0) std::this_thread::yield();
    }
    items += trained;
  }
  driver->Shutdown();
  state.SetItemsProcessed(items);
}

void BM_GrpcLoopback(benchmark::State& state) { RunGrpcLoopback(state, false); }
BENCHMARK(BM_GrpcLoopback)
    ->Unit(benchmark::kMillisecond)
    ->MinTime(3.0)
    ->UseRealTime();
void BM_GrpcLoopbackGenrm(benchmark::State& state) {
  RunGrpcLoopback(state, true);
}
BENCHMARK(BM_GrpcLoopbackGenrm)
    ->Unit(benchmark::kMillisecond)
    ->MinTime(3.0)
    ->UseRealTime();

// Arrival -> dispatch at range(0) trajectories per second.
void BM_DispatchLatency(benchmark::State& state) {
  const double rate = static_cast<double>(state.range(0));
  absl::Mutex mu;
  absl::Time dispatched;
  FakeGenrmClient client;
  client.set_record(false);
  client.SetAutoResponder(
      [&](const GenrmServer&, const v1::ScoreRequest& request)
          -> std::optional<absl::StatusOr<v1::Verdict>> {
        absl::MutexLock lock(&mu);
        dispatched = absl::Now();
        return Sound(request);
      });
  std::unique_ptr<Scheduler> scheduler = NewScheduler(&client);
  Register(*scheduler, v1::WORKER_ROLE_GENRM, "genrm", "noop", 1 << 20);
  std::vector<double> latencies_us;
  const absl::Duration period = absl::Seconds(1.0 / rate);
  absl::Time next = absl::Now();
  for (auto _ : state) {
    auto group = scheduler->NextPromptGroup();
    if (!group.ok() || !group->has_value()) {
      TrainReady(*scheduler);
      continue;
    }
    const PromptGroup& g = **group;
    const std::string response = Response(g.prompt);
    for (int i = 0; i < kGroupSize; ++i) {
      while (absl::Now() < next) {
      }
      next += period;
      v1::Trajectory trajectory;
      trajectory.set_trajectory_id(absl::StrCat(g.group_id, "/", i));
      trajectory.set_group_id(g.group_id);
      trajectory.set_sample_index(i);
      trajectory.set_response_text(response);
      trajectory.set_policy_version(scheduler->policy_version());
      const absl::Time arrival = absl::Now();
      if (!scheduler->AddTrajectory(std::move(trajectory)).ok()) std::abort();
      absl::MutexLock lock(&mu);
      latencies_us.push_back(absl::ToDoubleMicroseconds(dispatched - arrival));
    }
  }
  std::sort(latencies_us.begin(), latencies_us.end());
  auto quantile = [&](double q) {
    if (latencies_us.empty()) return 0.0;
    return latencies_us[static_cast<size_t>(q * (latencies_us.size() - 1))];
  };
  state.counters["p50_us"] = quantile(0.50);
  state.counters["p99_us"] = quantile(0.99);
  state.counters["max_us"] = quantile(1.0);
  state.SetItemsProcessed(static_cast<int64_t>(latencies_us.size()));
}
// Rates: about 1/8, 1/4 and 1/2 of BM_InProcess's median on the 2-core
// development machine (about 600k/s).
BENCHMARK(BM_DispatchLatency)
    ->Arg(75000)
    ->Arg(150000)
    ->Arg(300000)
    ->Unit(benchmark::kMicrosecond)
    ->MinTime(2.0)
    ->UseRealTime();

// ---- Redis streams -----------------------------------------------------

class RedisServer {
 public:
  RedisServer() : dir_("fapo-redis-bench-") {
    socket_ = dir_.path() + "/redis.sock";
    auto process = testing::Subprocess::Start(
        {"redis-server", "--port", "0", "--unixsocket", socket_, "--save", "",
         "--appendonly", "no", "--dir", dir_.path()},
        dir_.path() + "/redis.log");
    if (process.ok()) process_ = *std::move(process);
  }
  redisContext* Connect() {
    for (int i = 0; i < 500 && process_ != nullptr; ++i) {
      redisContext* context = redisConnectUnix(socket_.c_str());
      if (context != nullptr && context->err == 0) return context;
      if (context != nullptr) redisFree(context);
      absl::SleepFor(absl::Milliseconds(10));
    }
    return nullptr;
  }

 private:
  testing::TempDir dir_;
  std::string socket_;
  std::unique_ptr<testing::Subprocess> process_;
};

bool Ok(redisReply* reply) {
  const bool ok = reply != nullptr && reply->type != REDIS_REPLY_ERROR;
  if (reply != nullptr) freeReplyObject(reply);
  return ok;
}

// One iteration: 1,024 payloads XADDed (pipelined), read back with
// XREADGROUP ... COUNT 1024 and XACKed with one command.
void BM_RedisStreams(benchmark::State& state) {
  RedisServer server;
  redisContext* redis = server.Connect();
  if (redis == nullptr) {
    state.SkipWithError("cannot start redis-server (is it installed?)");
    return;
  }
  constexpr int kBatch = 1024;
  const std::string payload(kResponseBytes, 'x');
  if (!Ok(static_cast<redisReply*>(redisCommand(
          redis, "XGROUP CREATE trajectories scheduler $ MKSTREAM")))) {
    state.SkipWithError("XGROUP CREATE failed");
    redisFree(redis);
    return;
  }
  int64_t items = 0;
  int64_t id = 0;
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) {
      const std::string trajectory_id = absl::StrCat("t", id++);
      redisAppendCommand(redis, "XADD trajectories * id %b payload %b",
                         trajectory_id.data(), trajectory_id.size(),
                         payload.data(), payload.size());
    }
    for (int i = 0; i < kBatch; ++i) {
      void* reply = nullptr;
      if (redisGetReply(redis, &reply) != REDIS_OK ||
          !Ok(static_cast<redisReply*>(reply))) {
        state.SkipWithError("XADD failed");
        break;
      }
    }
    auto* read = static_cast<redisReply*>(redisCommand(
        redis, "XREADGROUP GROUP scheduler c1 COUNT %d STREAMS trajectories >",
        kBatch));
    if (read == nullptr || read->type != REDIS_REPLY_ARRAY ||
        read->elements != 1) {
      if (read != nullptr) freeReplyObject(read);
      state.SkipWithError("XREADGROUP failed");
      break;
    }
    redisReply* entries = read->element[0]->element[1];
    std::vector<const char*> argv = {"XACK", "trajectories", "scheduler"};
    std::vector<size_t> lengths = {4, 12, 9};
    for (size_t i = 0; i < entries->elements; ++i) {
      redisReply* entry_id = entries->element[i]->element[0];
      argv.push_back(entry_id->str);
      lengths.push_back(entry_id->len);
    }
    const int64_t read_count = static_cast<int64_t>(entries->elements);
    if (!Ok(static_cast<redisReply*>(
            redisCommandArgv(redis, static_cast<int>(argv.size()), argv.data(),
                             lengths.data())))) {
      freeReplyObject(read);
      state.SkipWithError("XACK failed");
      break;
    }
    freeReplyObject(read);
    // Keep the stream bounded like our queue is.
    Ok(static_cast<redisReply*>(
        redisCommand(redis, "XTRIM trajectories MAXLEN 0")));
    items += read_count;
  }
  redisFree(redis);
  state.SetItemsProcessed(items);
}
BENCHMARK(BM_RedisStreams)
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0)
    ->UseRealTime();

}  // namespace
}  // namespace fapo::scheduler

int main(int argc, char** argv) {
  // As in the services (NOTE [mutex deadlock detection] in
  // apps/service_main.cc): Debian's abseil records a lock graph on
  // every acquisition unless told not to.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // NOTE [allocator] in CMakeLists.txt: the figures
  // depend on it, so the report says which one ran.
#ifdef FAPO_SCHEDULER_TCMALLOC
  benchmark::AddCustomContext("allocator", "tcmalloc (as fapo-scheduler)");
#else
  benchmark::AddCustomContext("allocator",
                              "glibc malloc (no libtcmalloc_minimal)");
#endif
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
