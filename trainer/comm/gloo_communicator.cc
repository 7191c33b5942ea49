#include "trainer/comm/gloo_communicator.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <utility>

// c10d's headers are not -Wextra clean; keep their warnings out of ours.
// ProcessGroupGloo.hpp compiles against generated Gloo declarations (NOTE
// [gloo headers] in trainer/comm/CMakeLists.txt).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef FAPO_WITH_NCCL
#include <c10/cuda/CUDAFunctions.h>

#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#pragma GCC diagnostic pop

#include <stdlib.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/status/status_macros.h"

namespace fapo::trainer {

void AllowRanksInOneProcess() {
  setenv("TORCH_FR_BUFFER_SIZE", "0", /*overwrite=*/0);
}

struct GlooState {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> group;
};

namespace {

std::chrono::milliseconds ToChrono(absl::Duration duration) {
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(duration));
}

// c10d reports everything as c10::Error (DistNetworkError, DistStoreError,
// DistBackendError, or plain). What the caller can act on is whether a peer
// was late (DEADLINE_EXCEEDED: retrying with a longer timeout may help) or
// gone (UNAVAILABLE: the group must be rebuilt), so classify by the type
// and by the words Gloo and the TCPStore use.
absl::Status FromTorchError(const std::string& where,
                            const std::exception& error) {
  std::string message;
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&error)) {
    message = c10_error->what_without_backtrace();
  } else {
    message = error.what();
  }
  // Keep the first line or two: c10d appends long hints.
  if (message.size() > 600) message = message.substr(0, 600) + "...";
  const std::string lower = absl::AsciiStrToLower(message);
  const std::string text = absl::StrCat(where, ": ", message);
  if (absl::StrContains(lower, "timed out") ||
      absl::StrContains(lower, "timeout")) {
    return absl::DeadlineExceededError(text);
  }
  if (dynamic_cast<const c10::DistNetworkError*>(&error) != nullptr ||
      absl::StrContains(lower, "connection") ||
      absl::StrContains(lower, "connect") ||
      absl::StrContains(lower, "broken pipe") ||
      absl::StrContains(lower, "closed")) {
    return absl::UnavailableError(text);
  }
  return absl::InternalError(text);
}

absl::Status RequireDevice(const Communicator& communicator,
                           const char* operation,
                           const std::vector<at::Tensor>& tensors,
                           c10::DeviceType device_type) {
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i].device().type() != device_type) {
      return absl::InvalidArgumentError(absl::StrCat(
          communicator.backend_name(), " rank ", communicator.rank(), "/",
          communicator.world_size(), ": ", operation, ": tensor ", i, " is on ",
          tensors[i].device().str(), "; the ", communicator.backend_name(),
          " communicator takes ", c10::DeviceTypeName(device_type),
          " tensors"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateOptions(const GlooCommunicatorOptions& options,
                             const std::string& where) {
  if (options.world_size < 1 || options.rank < 0 ||
      options.rank >= options.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(where,
                     ": rank must be in [0, world_size) and "
                     "world_size >= 1"));
  }
  if (options.store_port < 1 || options.store_port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": store_port must be in [1, 65535]"));
  }
  if (options.store_host.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": store_host is empty"));
  }
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": timeout must be positive"));
  }
  if (options.threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": threads must be >= 1"));
  }
  return absl::OkStatus();
}

// Rank 0 hosts the store; every rank (rank 0 too) is its client. Throws.
c10::intrusive_ptr<c10d::Store> ConnectStore(
    const GlooCommunicatorOptions& options) {
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<std::uint16_t>(options.store_port);
  store_options.isServer = options.rank == 0;
  store_options.numWorkers = options.world_size;
  // The group's own rendezvous waits for every rank (within the timeout),
  // so the store need not wait for its workers as well.
  store_options.waitWorkers = false;
  store_options.timeout = ToChrono(options.timeout);
  return c10::make_intrusive<c10d::TCPStore>(options.store_host, store_options);
}

// The collectives, the same over any c10d backend; each throws c10::Error.
// One collective per tensor (c10d reads a vector as one tensor per local
// device, reduced together); all are queued before waiting, so the
// backend's threads overlap them.
void RunAllReduceSum(c10d::Backend& group, std::vector<at::Tensor>& tensors,
                     std::chrono::milliseconds timeout) {
  c10d::AllreduceOptions reduce_options;
  reduce_options.reduceOp = c10d::ReduceOp::SUM;
  reduce_options.timeout = timeout;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  works.reserve(tensors.size());
  for (at::Tensor& tensor : tensors) {
    std::vector<at::Tensor> one = {tensor};
    works.push_back(group.allreduce(one, reduce_options));
  }
  for (auto& work : works) work->wait(timeout);
}

void RunBroadcast(c10d::Backend& group, std::vector<at::Tensor>& tensors,
                  int root, std::chrono::milliseconds timeout) {
  c10d::BroadcastOptions broadcast_options;
  broadcast_options.rootRank = root;
  broadcast_options.rootTensor = 0;
  broadcast_options.timeout = timeout;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  works.reserve(tensors.size());
  for (at::Tensor& tensor : tensors) {
    std::vector<at::Tensor> one = {tensor};
    works.push_back(group.broadcast(one, broadcast_options));
  }
  for (auto& work : works) work->wait(timeout);
}

void RunBarrier(c10d::Backend& group, std::chrono::milliseconds timeout,
                const std::vector<int64_t>& device_ids) {
  c10d::BarrierOptions barrier_options;
  barrier_options.timeout = timeout;
  barrier_options.device_ids = device_ids;
  group.barrier(barrier_options)->wait(timeout);
}

std::vector<at::Tensor> RunAllGather(c10d::Backend& group,
                                     const at::Tensor& input,
                                     std::chrono::milliseconds timeout) {
  std::vector<at::Tensor> inputs = {input};
  std::vector<std::vector<at::Tensor>> gathered(1);
  for (int r = 0; r < group.getSize(); ++r) {
    gathered[0].push_back(at::empty_like(input));
  }
  c10d::AllgatherOptions gather_options;
  gather_options.timeout = timeout;
  group.allgather(gathered, inputs, gather_options)->wait(timeout);
  return std::move(gathered[0]);
}

// What both communicators share: the c10d objects, the device their
// tensors live on, and the broken-after-a-failure latch (communicator.h).
// `owner` supplies names for messages.
class C10dCore {
 public:
  C10dCore(const Communicator* owner, absl::Duration timeout,
           std::unique_ptr<GlooState> state, c10::DeviceType device_type,
           std::vector<int64_t> barrier_device_ids)
      : owner_(owner),
        timeout_(ToChrono(timeout)),
        state_(std::move(state)),
        device_type_(device_type),
        barrier_device_ids_(std::move(barrier_device_ids)) {}

  ~C10dCore() {
    // The group's worker threads use the store; stop them first.
    try {
      state_->group.reset();
      state_->store.reset();
    } catch (...) {
      // A destructor must not throw; c10d's destructors log what failed.
    }
  }

  absl::Status AllReduceSum(std::vector<at::Tensor>& tensors) {
    const char* kOperation = "AllReduceSum";
    RETURN_IF_ERROR(CheckCall(kOperation, tensors));
    return Guard(kOperation,
                 [&] { RunAllReduceSum(*state_->group, tensors, timeout_); });
  }

  absl::Status Broadcast(std::vector<at::Tensor>& tensors, int root) {
    const char* kOperation = "Broadcast";
    if (root < 0 || root >= owner_->world_size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(Where(kOperation), ": root ", root, " is not a rank"));
    }
    RETURN_IF_ERROR(CheckCall(kOperation, tensors));
    return Guard(kOperation, [&] {
      RunBroadcast(*state_->group, tensors, root, timeout_);
    });
  }

  absl::Status Barrier() {
    const char* kOperation = "Barrier";
    RETURN_IF_ERROR(CheckCall(kOperation, {}));
    return Guard(kOperation, [&] {
      RunBarrier(*state_->group, timeout_, barrier_device_ids_);
    });
  }

  absl::Status AllGather(const at::Tensor& input,
                         std::vector<at::Tensor>* outputs) {
    const char* kOperation = "AllGather";
    RETURN_IF_ERROR(CheckCall(kOperation, {input}));
    return Guard(kOperation, [&] {
      *outputs = RunAllGather(*state_->group, input, timeout_);
    });
  }

 private:
  std::string Where(const char* operation) const {
    return absl::StrCat(owner_->backend_name(), " rank ", owner_->rank(), "/",
                        owner_->world_size(), ": ", operation);
  }

  // Local checks, before anything is sent (a failing one breaks nothing).
  absl::Status CheckCall(const char* operation,
                         const std::vector<at::Tensor>& tensors) const {
    if (!first_error_.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat(Where(operation),
                       ": the communicator is broken by an earlier failure (",
                       first_error_.message(), ")"));
    }
    RETURN_IF_ERROR(ValidateTensors(*owner_, operation, tensors));
    return RequireDevice(*owner_, operation, tensors, device_type_);
  }

  template <typename Body>
  absl::Status Guard(const char* operation, Body body) {
    try {
      body();
    } catch (const std::exception& error) {
      absl::Status status = FromTorchError(Where(operation), error);
      if (first_error_.ok()) first_error_ = status;
      return status;
    }
    return absl::OkStatus();
  }

  const Communicator* const owner_;
  const std::chrono::milliseconds timeout_;
  const std::unique_ptr<GlooState> state_;
  const c10::DeviceType device_type_;
  const std::vector<int64_t> barrier_device_ids_;
  absl::Status first_error_;
};

}  // namespace

// The core holds the c10d objects; GlooState is its payload.
struct GlooCommunicator::Core : C10dCore {
  using C10dCore::C10dCore;
};

absl::StatusOr<std::unique_ptr<GlooCommunicator>> GlooCommunicator::Create(
    const GlooCommunicatorOptions& options) {
  const std::string where = absl::StrCat(
      "gloo rank ", options.rank, "/", options.world_size, ": Create (store ",
      options.store_host, ":", options.store_port, ")");
  RETURN_IF_ERROR(ValidateOptions(options, where));
  auto state = std::make_unique<GlooState>();
  try {
    state->store = ConnectStore(options);
    auto gloo_options =
        c10d::ProcessGroupGloo::Options::create(ToChrono(options.timeout));
    gloo_options->devices.push_back(
        options.gloo_hostname.empty()
            ? c10d::ProcessGroupGloo::createDefaultDevice()
            : c10d::ProcessGroupGloo::createDeviceForHostname(
                  options.gloo_hostname));
    gloo_options->threads = options.threads;
    state->group = c10::make_intrusive<c10d::ProcessGroupGloo>(
        state->store, options.rank, options.world_size, gloo_options);
  } catch (const std::exception& error) {
    return FromTorchError(
        absl::StrCat(where, " joining a group of ", options.world_size), error);
  }
  // A cheap guard on NOTE [gloo headers]: the group answers, from inside
  // libtorch, with the identity it was built with.
  if (state->group->getBackendName() != "gloo" ||
      state->group->getRank() != options.rank ||
      state->group->getSize() != options.world_size) {
    return absl::InternalError(absl::StrCat(
        where, ": c10d built a group that reports backend ",
        state->group->getBackendName(), " rank ", state->group->getRank(), "/",
        state->group->getSize(),
        " (does ProcessGroupGloo.hpp still match NOTE [gloo headers]?)"));
  }
  return std::unique_ptr<GlooCommunicator>(
      new GlooCommunicator(options, std::move(state)));
}

GlooCommunicator::GlooCommunicator(const GlooCommunicatorOptions& options,
                                   std::unique_ptr<GlooState> state)
    : options_(options),
      core_(std::make_unique<Core>(this, options.timeout, std::move(state),
                                   c10::DeviceType::CPU,
                                   std::vector<int64_t>{})) {}

GlooCommunicator::~GlooCommunicator() = default;

absl::Status GlooCommunicator::AllReduceSum(std::vector<at::Tensor>& tensors) {
  return core_->AllReduceSum(tensors);
}

absl::Status GlooCommunicator::Broadcast(std::vector<at::Tensor>& tensors,
                                         int root) {
  return core_->Broadcast(tensors, root);
}

absl::Status GlooCommunicator::Barrier() { return core_->Barrier(); }

absl::Status GlooCommunicator::AllGather(const at::Tensor& input,
                                         std::vector<at::Tensor>* outputs) {
  return core_->AllGather(input, outputs);
}

absl::StatusOr<CollectiveBackend> ParseCollectiveBackend(
    const std::string& name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "gloo") return CollectiveBackend::kGloo;
  if (lower == "nccl") return CollectiveBackend::kNccl;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown collective backend \"", name, "\" (gloo or nccl)"));
}

// NOTE [nccl]: the NCCL communicator is the same core over
// c10d::ProcessGroupNCCL, for CUDA tensors, one GPU per rank. It is built
// when LibTorch has CUDA and NCCL's header is found (FAPO_WITH_NCCL, see
// trainer/comm/CMakeLists.txt), and it has only been compiled, never run: this
// project's developer and CI machines have no GPU (the device test in
// gloo_communicator_test.cc runs where one is visible). Two settings differ
// from torch's defaults so that a late peer is an error instead of a dead
// process: TORCH_NCCL_BLOCKING_WAIT=1 (Work::wait blocks the host and
// throws on timeout) and TORCH_NCCL_ASYNC_ERROR_HANDLING=2 (the watchdog
// aborts the NCCL communicators, not the process). Both are set only when
// the environment has not set them. Without FAPO_WITH_NCCL, kNccl is
// UNIMPLEMENTED; it is never quietly replaced by Gloo.
#ifdef FAPO_WITH_NCCL
namespace {

class NcclCommunicator final : public Communicator {
 public:
  static absl::StatusOr<std::unique_ptr<Communicator>> Create(
      const GlooCommunicatorOptions& options) {
    const std::string where = absl::StrCat(
        "nccl rank ", options.rank, "/", options.world_size, ": Create (store ",
        options.store_host, ":", options.store_port, ")");
    RETURN_IF_ERROR(ValidateOptions(options, where));
    const int devices = c10::cuda::device_count();
    if (devices < 1) {
      return absl::FailedPreconditionError(
          absl::StrCat(where,
                       ": the NCCL backend needs a CUDA device and none is "
                       "visible; use the gloo backend with CPU tensors"));
    }
    const int device =
        options.cuda_device >= 0 ? options.cuda_device : options.rank % devices;
    if (device >= devices) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": cuda_device ", device, " but ", devices, " visible"));
    }
    setenv("TORCH_NCCL_BLOCKING_WAIT", "1", /*overwrite=*/0);
    setenv("TORCH_NCCL_ASYNC_ERROR_HANDLING", "2", /*overwrite=*/0);
    auto state = std::make_unique<GlooState>();
    try {
      c10::cuda::set_device(static_cast<c10::DeviceIndex>(device));
      state->store = ConnectStore(options);
      auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
      nccl_options->timeout = ToChrono(options.timeout);
      state->group = c10::make_intrusive<c10d::ProcessGroupNCCL>(
          state->store, options.rank, options.world_size, nccl_options);
    } catch (const std::exception& error) {
      return FromTorchError(where, error);
    }
    return std::unique_ptr<Communicator>(
        new NcclCommunicator(options, device, std::move(state)));
  }

  int rank() const override { return options_.rank; }
  int world_size() const override { return options_.world_size; }
  std::string backend_name() const override { return "nccl"; }
  absl::Status AllReduceSum(std::vector<at::Tensor>& tensors) override {
    return core_.AllReduceSum(tensors);
  }
  absl::Status Broadcast(std::vector<at::Tensor>& tensors, int root) override {
    return core_.Broadcast(tensors, root);
  }
  absl::Status Barrier() override { return core_.Barrier(); }
  absl::Status AllGather(const at::Tensor& input,
                         std::vector<at::Tensor>* outputs) override {
    return core_.AllGather(input, outputs);
  }

 private:
  NcclCommunicator(const GlooCommunicatorOptions& options, int device,
                   std::unique_ptr<GlooState> state)
      : options_(options),
        core_(this, options.timeout, std::move(state), c10::DeviceType::CUDA,
              {device}) {}

  const GlooCommunicatorOptions options_;
  C10dCore core_;
};

}  // namespace
#endif  // FAPO_WITH_NCCL

bool NcclCommunicatorBuilt() {
#ifdef FAPO_WITH_NCCL
  return true;
#else
  return false;
#endif
}

absl::StatusOr<std::unique_ptr<Communicator>> MakeCommunicator(
    CollectiveBackend backend, const GlooCommunicatorOptions& options) {
  switch (backend) {
    case CollectiveBackend::kGloo: {
      ASSIGN_OR_RETURN(std::unique_ptr<GlooCommunicator> gloo,
                       GlooCommunicator::Create(options));
      return std::unique_ptr<Communicator>(std::move(gloo));
    }
    case CollectiveBackend::kNccl: {
#ifdef FAPO_WITH_NCCL
      return NcclCommunicator::Create(options);
#else
      const bool has_cuda = at::globalContext().hasCUDA();
      return absl::UnimplementedError(absl::StrCat(
          "nccl rank ", options.rank, "/", options.world_size,
          ": the NCCL communicator is not built in (",
          has_cuda ? "this LibTorch has CUDA, but NCCL's header was not found"
                   : "NCCL needs a CUDA LibTorch",
          "); use the gloo backend with CPU tensors"));
#endif
    }
  }
  return absl::InvalidArgumentError("unknown collective backend");
}

}  // namespace fapo::trainer
