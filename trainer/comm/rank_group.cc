#include "trainer/comm/rank_group.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "fapo/v1/trainer.pb.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/wire_format_lite.h"
#include "services/logging/log.h"
#include "services/status/status_macros.h"
#include "trainer/comm/gloo_communicator.h"

namespace fapo::trainer {
namespace {

using Trajectories = google::protobuf::RepeatedPtrField<v1::ScoredTrajectory>;

// Values of the header's first slot.
enum CommandKind : int64_t {
  kKeepAlive = 1,
  kTrainStep = 2,
  kStop = 3,
};

// Header: [kind, step, payload bytes of each rank (N), minibatch sizes of
// each rank (N * M)]; the same length on every rank (JoinRankGroup checks M).
int64_t HeaderLength(int world_size, int minibatches) {
  return 2 + world_size + static_cast<int64_t>(world_size) * minibatches;
}

std::string GroupName(const Communicator& communicator) {
  return absl::StrCat("trainer rank ", communicator.rank(), "/",
                      communicator.world_size(), " (",
                      communicator.backend_name(), ")");
}

// Rank r's TrainStepRequest, written straight from the batch's messages
// (no copies of the trajectories): field 1 the step, field 2 each one.
std::string SerializeShard(int64_t step, const Trajectories& batch,
                           const std::vector<int>& indices) {
  using google::protobuf::internal::WireFormatLite;
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream out(&stream);
    WireFormatLite::WriteInt64(v1::TrainStepRequest::kStepFieldNumber, step,
                               &out);
    for (int index : indices) {
      // WriteMessage writes the cached size, which ByteSizeLong sets.
      batch[index].ByteSizeLong();
      WireFormatLite::WriteMessage(
          v1::TrainStepRequest::kTrajectoriesFieldNumber, batch[index], &out);
    }
  }
  return bytes;
}

// "HOST:PORT" or "[V6]:PORT".
absl::Status ParseHostPort(const std::string& text, std::string* host,
                           int* port) {
  const size_t colon = text.rfind(':');
  int parsed = 0;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(text.substr(colon + 1), &parsed) || parsed < 1 ||
      parsed > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--rendezvous \"", text,
                     "\": expected HOST:PORT with a port in [1, "
                     "65535], e.g. 127.0.0.1:29500"));
  }
  *host = text.substr(0, colon);
  if (host->size() > 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  *port = parsed;
  return absl::OkStatus();
}

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

}  // namespace

absl::Status ValidateRankAddress(const config::JobSpec& spec,
                                 const RankAddress& address) {
  const int ranks = spec.trainer.ranks;
  if (address.rank < 0 || address.rank >= ranks) {
    return absl::InvalidArgumentError(
        absl::StrCat("--rank ", address.rank,
                     " is outside [0, trainer.ranks = ", ranks, ")"));
  }
  if (ranks == 1) return absl::OkStatus();
  if (address.rendezvous.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "trainer.ranks is ", ranks,
        ": --rendezvous HOST:PORT is required (where rank 0 hosts the store "
        "the ranks meet at; the same on every rank)"));
  }
  std::string host;
  int port = 0;
  RETURN_IF_ERROR(ParseHostPort(address.rendezvous, &host, &port));
  if (spec.trainer.backend == config::CollectiveBackend::kNccl) {
    if (spec.policy.device != config::Device::kCuda) {
      return absl::InvalidArgumentError(
          "trainer.backend nccl needs policy.device cuda (NCCL reduces CUDA "
          "tensors); use trainer.backend gloo on CPU");
    }
    if (!NcclCommunicatorBuilt()) {
      return absl::UnimplementedError(
          "trainer.backend nccl: this fapo-trainer has no NCCL communicator "
          "(it needs a LibTorch with CUDA and NCCL); use trainer.backend "
          "gloo");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Communicator>> ConnectTrainerRanks(
    const config::JobSpec& spec, const RankAddress& address) {
  RETURN_IF_ERROR(ValidateRankAddress(spec, address));
  if (spec.trainer.ranks == 1) {
    return std::unique_ptr<Communicator>(new LocalCommunicator());
  }
  GlooCommunicatorOptions options;
  options.rank = address.rank;
  options.world_size = spec.trainer.ranks;
  RETURN_IF_ERROR(ParseHostPort(address.rendezvous, &options.store_host,
                                &options.store_port));
  // One machine: loopback pairs. Several: c10d's default device (the
  // address this machine's hostname resolves to), which peers can reach.
  options.gloo_hostname = IsLoopback(options.store_host) ? "127.0.0.1" : "";
  options.timeout = address.timeout;
  const CollectiveBackend backend =
      spec.trainer.backend == config::CollectiveBackend::kNccl
          ? CollectiveBackend::kNccl
          : CollectiveBackend::kGloo;
  return MakeCommunicator(backend, options);
}

ShardPlan PlanShards(const Trajectories& batch, int world_size,
                     int minibatches) {
  ShardPlan plan;
  plan.indices.assign(world_size, {});
  plan.minibatch_sizes.assign(world_size, std::vector<int64_t>(minibatches, 0));
  const int64_t count = batch.size();
  std::vector<int64_t> total_load(world_size, 0);
  for (int k = 0; k < minibatches; ++k) {
    // The single-process minibatch bounds (Trainer's equal split), so each
    // rank's k-th minibatch is its part of that one.
    const int begin = static_cast<int>(count * k / minibatches);
    const int end = static_cast<int>(count * (k + 1) / minibatches);
    std::vector<int> order(end - begin);
    std::iota(order.begin(), order.end(), begin);
    auto cost = [&](int i) {
      const v1::Trajectory& t = batch[i].trajectory();
      return static_cast<int64_t>(t.prompt_token_ids_size()) +
             t.response_token_ids_size();
    };
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return cost(a) > cost(b); });
    std::vector<int64_t> load(world_size, 0);
    std::vector<std::vector<int>> assigned(world_size);
    for (int i : order) {
      int best = 0;
      for (int r = 1; r < world_size; ++r) {
        if (std::make_pair(load[r], total_load[r]) <
            std::make_pair(load[best], total_load[best])) {
          best = r;
        }
      }
      load[best] += cost(i);
      total_load[best] += cost(i);
      assigned[best].push_back(i);
    }
    for (int r = 0; r < world_size; ++r) {
      std::sort(assigned[r].begin(), assigned[r].end());
      plan.indices[r].insert(plan.indices[r].end(), assigned[r].begin(),
                             assigned[r].end());
      plan.minibatch_sizes[r][k] = static_cast<int64_t>(assigned[r].size());
    }
  }
  return plan;
}

absl::Status JoinRankGroup(Trainer& trainer, Communicator& communicator) {
  const c10::Device device = trainer.policy().device();
  const auto& parameters = trainer.policy().named_parameters();
  try {
    const int64_t minibatches = trainer.settings().trainer.minibatches_per_step;
    at::Tensor mine = torch::tensor({trainer.step(), minibatches,
                                     static_cast<int64_t>(parameters.size())},
                                    torch::kInt64)
                          .to(device);
    std::vector<at::Tensor> all;
    RETURN_IF_ERROR(communicator.AllGather(mine, &all));
    const at::Tensor root = all[0].to(torch::kCPU);
    for (int r = 1; r < communicator.world_size(); ++r) {
      const at::Tensor other = all[r].to(torch::kCPU);
      static constexpr const char* kWhat[] = {
          "is at step", "has trainer.minibatches_per_step",
          "has a policy with this many tensors:"};
      for (int i = 0; i < 3; ++i) {
        if (other[i].item<int64_t>() != root[i].item<int64_t>()) {
          return absl::FailedPreconditionError(absl::StrCat(
              GroupName(communicator), ": rank ", r, " ", kWhat[i], " ",
              other[i].item<int64_t>(), ", rank 0 ", kWhat[i], " ",
              root[i].item<int64_t>(),
              "; every rank must run the same job spec and resume from the "
              "same checkpoint (a shared job.output_dir)"));
        }
      }
    }
    // Rank 0's weights everywhere: a rank that loaded other weights would
    // otherwise train a different model in lock-step, unnoticed.
    torch::NoGradGuard no_grad;
    std::vector<at::Tensor> weights;
    weights.reserve(parameters.size());
    for (const auto& [name, tensor] : parameters) {
      weights.push_back(tensor.detach());
    }
    return communicator.Broadcast(weights, /*root=*/0);
  } catch (const std::exception& error) {
    return absl::InternalError(
        absl::StrCat(GroupName(communicator), ": joining: ", error.what()));
  }
}

// --- RankGroupLeader --------------------------------------------------------

absl::StatusOr<std::unique_ptr<RankGroupLeader>> RankGroupLeader::Create(
    Trainer& trainer, Communicator* communicator, RankGroupOptions options) {
  if (communicator == nullptr || communicator->rank() != 0) {
    return absl::InvalidArgumentError(
        "RankGroupLeader needs rank 0's communicator");
  }
  if (options.keep_alive_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("keep_alive_interval must be > 0");
  }
  RETURN_IF_ERROR(JoinRankGroup(trainer, *communicator));
  return std::unique_ptr<RankGroupLeader>(new RankGroupLeader(
      communicator, std::move(options), trainer.policy().device(),
      trainer.settings().trainer.minibatches_per_step));
}

RankGroupLeader::RankGroupLeader(Communicator* communicator,
                                 RankGroupOptions options, c10::Device device,
                                 int minibatches)
    : communicator_(communicator),
      options_(std::move(options)),
      device_(device),
      minibatches_(minibatches),
      last_command_(absl::Now()),
      keep_alive_([this] { KeepAlive(); }) {}

RankGroupLeader::~RankGroupLeader() {
  absl::Status stopped = Stop();
  if (!stopped.ok()) FAPO_LOG(WARNING) << stopped.message();
  keep_alive_.join();
}

std::function<void()> RankGroupLeader::MarkLostLocked(
    const absl::Status& status) {
  if (!lost_.ok()) return nullptr;
  lost_ = status;
  FAPO_LOG(ERROR) << status.message();
  if (!options_.on_group_lost) return nullptr;
  return [callback = options_.on_group_lost, status] { callback(status); };
}

void RankGroupLeader::KeepAlive() {
  const int64_t length =
      HeaderLength(communicator_->world_size(), minibatches_);
  while (true) {
    std::function<void()> lost_callback;
    {
      absl::MutexLock lock(&mutex_);
      const absl::Time due = last_command_ + options_.keep_alive_interval;
      mutex_.AwaitWithDeadline(absl::Condition(&stopped_), due);
      if (stopped_ || !lost_.ok()) return;
      // A step may have run while this thread waited for the lock.
      if (absl::Now() < last_command_ + options_.keep_alive_interval) continue;
      absl::Status sent;
      try {
        at::Tensor header = torch::zeros({length}, torch::kInt64);
        header[0] = static_cast<int64_t>(kKeepAlive);
        std::vector<at::Tensor> tensors = {header.to(device_)};
        sent = communicator_->Broadcast(tensors, /*root=*/0);
      } catch (const std::exception& error) {
        sent = absl::InternalError(error.what());
      }
      last_command_ = absl::Now();
      if (!sent.ok()) {
        lost_callback = MarkLostLocked(absl::AbortedError(absl::StrCat(
            GroupName(*communicator_),
            ": a peer was lost while the trainer was idle (", sent.message(),
            "); the group cannot continue: restart every rank "
            "from the last checkpoint")));
      }
    }
    if (lost_callback) {
      lost_callback();
      return;
    }
  }
}

absl::StatusOr<TrainStepResult> RankGroupLeader::TrainStep(
    Trainer& trainer, int64_t step, const Trajectories& batch) {
  std::function<void()> lost_callback;
  absl::StatusOr<TrainStepResult> result;
  {
    absl::MutexLock lock(&mutex_);
    if (stopped_) {
      return absl::FailedPreconditionError(
          absl::StrCat("TrainStep ", step, ": ", GroupName(*communicator_),
                       " is shutting down"));
    }
    if (!lost_.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("TrainStep ", step, " refused: ", lost_.message()));
    }
    // A repeat, an out-of-order step, a bad batch: rank 0's answer alone,
    // before anything is sent (no rank may fail a step the others run).
    bool repeat = false;
    absl::Status order = trainer.CheckStepOrder(step, &repeat);
    if (!order.ok() || repeat) return trainer.TrainStep(step, batch);
    RETURN_IF_ERROR(trainer.ValidateBatch(step, batch));

    const int world_size = communicator_->world_size();
    const ShardPlan plan = PlanShards(batch, world_size, minibatches_);
    // Rank 0 trains on its share in place; the others get theirs as bytes.
    std::vector<std::string> shards(world_size);
    for (int r = 1; r < world_size; ++r) {
      shards[r] = SerializeShard(step, batch, plan.indices[r]);
    }
    absl::Status status;
    try {
      at::Tensor header =
          torch::zeros({HeaderLength(world_size, minibatches_)}, torch::kInt64);
      auto slots = header.accessor<int64_t, 1>();
      slots[0] = kTrainStep;
      slots[1] = step;
      int64_t payload_bytes = 0;
      for (int r = 0; r < world_size; ++r) {
        slots[2 + r] = static_cast<int64_t>(shards[r].size());
        payload_bytes += static_cast<int64_t>(shards[r].size());
        for (int k = 0; k < minibatches_; ++k) {
          slots[2 + world_size + r * minibatches_ + k] =
              plan.minibatch_sizes[r][k];
        }
      }
      std::vector<at::Tensor> tensors = {header.to(device_)};
      status = communicator_->Broadcast(tensors, /*root=*/0);
      if (status.ok() && payload_bytes > 0) {
        at::Tensor payload = torch::empty({payload_bytes}, torch::kUInt8);
        uint8_t* out = payload.data_ptr<uint8_t>();
        for (const std::string& shard : shards) {
          std::memcpy(out, shard.data(), shard.size());
          out += shard.size();
        }
        tensors = {payload.to(device_)};
        status = communicator_->Broadcast(tensors, /*root=*/0);
      }
    } catch (const std::exception& error) {
      status = absl::InternalError(error.what());
    }
    if (status.ok()) {
      Trajectories local;
      local.Reserve(static_cast<int>(plan.indices[0].size()));
      for (int index : plan.indices[0]) *local.Add() = batch[index];
      result = trainer.TrainStep(step, local, plan.minibatch_sizes[0]);
      status = result.status();
    }
    last_command_ = absl::Now();
    if (!status.ok()) {
      // ABORTED, not the communicator's UNAVAILABLE: RPC clients retry
      // UNAVAILABLE, and no retry can succeed on a broken group.
      const absl::Status lost = absl::AbortedError(
          absl::StrCat(GroupName(*communicator_), ": TrainStep ", step,
                       " failed after it went out to the ranks, which are "
                       "now out of step (",
                       status.message(),
                       "); the group cannot continue: restart every rank "
                       "from the last checkpoint"));
      lost_callback = MarkLostLocked(lost);
      result = lost;
    }
  }
  if (lost_callback) lost_callback();
  return result;
}

absl::Status RankGroupLeader::Stop() {
  absl::MutexLock lock(&mutex_);
  if (stopped_) return absl::OkStatus();
  stopped_ = true;
  if (!lost_.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        GroupName(*communicator_),
        ": cannot tell the other ranks to stop: ", lost_.message()));
  }
  try {
    at::Tensor header =
        torch::zeros({HeaderLength(communicator_->world_size(), minibatches_)},
                     torch::kInt64);
    header[0] = static_cast<int64_t>(kStop);
    std::vector<at::Tensor> tensors = {header.to(device_)};
    return communicator_->Broadcast(tensors, /*root=*/0);
  } catch (const std::exception& error) {
    return absl::InternalError(absl::StrCat(GroupName(*communicator_),
                                            ": sending stop: ", error.what()));
  }
}

// --- RankGroupFollower ------------------------------------------------------

absl::StatusOr<std::unique_ptr<RankGroupFollower>> RankGroupFollower::Create(
    Trainer& trainer, Communicator* communicator) {
  if (communicator == nullptr || communicator->rank() == 0) {
    return absl::InvalidArgumentError(
        "RankGroupFollower needs the communicator of a rank > 0");
  }
  RETURN_IF_ERROR(JoinRankGroup(trainer, *communicator));
  return std::unique_ptr<RankGroupFollower>(
      new RankGroupFollower(trainer, communicator));
}

absl::Status RankGroupFollower::Run(
    const std::function<bool()>& stop_requested) {
  const int world_size = communicator_->world_size();
  const int rank = communicator_->rank();
  const int minibatches = trainer_.settings().trainer.minibatches_per_step;
  const c10::Device device = trainer_.policy().device();
  const std::string who = GroupName(*communicator_);
  while (true) {
    if (stop_requested && stop_requested()) {
      return absl::CancelledError(
          absl::StrCat(who, ": stopped before rank 0 said so"));
    }
    int64_t kind = 0;
    int64_t step = 0;
    std::string shard_bytes;
    std::vector<int64_t> minibatch_sizes(minibatches);
    absl::Status status;
    try {
      std::vector<at::Tensor> tensors = {
          torch::zeros({HeaderLength(world_size, minibatches)},
                       torch::TensorOptions(torch::kInt64).device(device))};
      status = communicator_->Broadcast(tensors, /*root=*/0);
      if (status.ok()) {
        const at::Tensor header = tensors[0].to(torch::kCPU);
        auto slots = header.accessor<int64_t, 1>();
        kind = slots[0];
        step = slots[1];
        int64_t offset = 0;
        int64_t payload_bytes = 0;
        for (int r = 0; r < world_size; ++r) {
          if (r < rank) offset += slots[2 + r];
          payload_bytes += slots[2 + r];
        }
        for (int k = 0; k < minibatches; ++k) {
          minibatch_sizes[k] = slots[2 + world_size + rank * minibatches + k];
        }
        if (kind == kTrainStep && payload_bytes > 0) {
          tensors = {
              torch::empty({payload_bytes},
                           torch::TensorOptions(torch::kUInt8).device(device))};
          status = communicator_->Broadcast(tensors, /*root=*/0);
          if (status.ok()) {
            const at::Tensor payload = tensors[0].to(torch::kCPU);
            shard_bytes.assign(
                reinterpret_cast<const char*>(payload.data_ptr<uint8_t>()) +
                    offset,
                static_cast<size_t>(slots[2 + rank]));
          }
        }
      }
    } catch (const std::exception& error) {
      status = absl::InternalError(error.what());
    }
    if (!status.ok()) {
      return absl::Status(
          status.code(),
          absl::StrCat(who,
                       ": lost rank 0 while waiting for its next "
                       "command (",
                       status.message(), ")"));
    }
    switch (kind) {
      case kKeepAlive:
        break;
      case kStop:
        FAPO_LOG(INFO) << who << ": rank 0 is stopping; stopping too";
        return absl::OkStatus();
      case kTrainStep: {
        v1::TrainStepRequest shard;
        if (!shard.ParseFromString(shard_bytes) || shard.step() != step) {
          return absl::DataLossError(absl::StrCat(
              who, ": step ", step, ": rank 0's shard does not parse"));
        }
        absl::StatusOr<TrainStepResult> result =
            trainer_.TrainStep(step, shard.trajectories(), minibatch_sizes);
        if (!result.ok()) {
          return absl::Status(result.status().code(),
                              absl::StrCat(who, ": ", result.status().message(),
                                           "; the ranks are out of step"));
        }
        break;
      }
      default:
        return absl::InternalError(absl::StrCat(
            who, ": unknown command ", kind, " from rank 0 (mixed builds?)"));
    }
  }
}

}  // namespace fapo::trainer
