// trainer/comm/gloo_communicator.h: the Communicator over c10d's Gloo backend,
// and MakeCommunicator, which picks a backend.
//
// Rendezvous: rank 0 hosts a c10d::TCPStore at store_host:store_port; every
// rank (rank 0 too) connects to it, and c10d::ProcessGroupGloo uses it to
// exchange the addresses of its full mesh of TCP pairs. Gloo binds those
// pairs to `gloo_hostname` (an address or a name of this machine:
// "127.0.0.1" for single-machine jobs and tests), or, when it is empty, to
// the address this machine's hostname resolves to (c10d's default device).
//
// Tensors must be CPU tensors. Errors follow communicator.h's contract; the
// rendezvous itself is bounded by `timeout` too (a rank that never shows up
// makes the others' Create fail with DEADLINE_EXCEEDED).
//
// NOTE [ranks in one process]: a trainer is one rank per process. Tests and
// benchmarks that run several ranks as threads of one process must call
// AllowRanksInOneProcess() before their first communicator: LibTorch's c10d
// FlightRecorder (one per process, recording every collective for hang
// diagnosis) races when several process groups enqueue at once, and
// crashes in its std::map under load (seen as SIGSEGV in
// communicator_contract_test). It turns the recorder off
// (TORCH_FR_BUFFER_SIZE=0, read once at its first use) unless the
// environment already sets it.
#ifndef FAPO_TRAINER_COMM_GLOO_COMMUNICATOR_H_
#define FAPO_TRAINER_COMM_GLOO_COMMUNICATOR_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "trainer/comm/communicator.h"

namespace fapo::trainer {

// NOTE [ranks in one process]. Call before the process's first communicator.
void AllowRanksInOneProcess();

struct GlooCommunicatorOptions {
  // This process's rank, in [0, world_size). Default 0.
  int rank = 0;
  // Number of ranks. Default 1.
  int world_size = 1;
  // Where rank 0 hosts the rendezvous store (rank 0 listens on all
  // interfaces at store_port; the others connect to store_host). Defaults
  // 127.0.0.1 and 29500 (torch.distributed's MASTER_PORT default).
  std::string store_host = "127.0.0.1";
  int store_port = 29500;
  // The address or hostname Gloo's TCP pairs bind to; "" = c10d's default
  // device (this machine's hostname, else loopback). Default "127.0.0.1".
  std::string gloo_hostname = "127.0.0.1";
  // Bound on the rendezvous and on each collective. Default 5 minutes.
  absl::Duration timeout = kDefaultCollectiveTimeout;
  // Gloo worker threads (collectives in flight at once). Default 2.
  int threads = 2;
  // NCCL only: this rank's CUDA device; -1 = rank % visible devices.
  int cuda_device = -1;
};

// Opaque holder of the c10d objects, so this header stays free of c10d.
struct GlooState;

class GlooCommunicator : public Communicator {
 public:
  // Connects to (rank 0: hosts) the store and joins the group; blocks until
  // all world_size ranks have joined or `timeout` passes.
  // INVALID_ARGUMENT for bad options; DEADLINE_EXCEEDED / UNAVAILABLE when
  // the group cannot be formed in time.
  static absl::StatusOr<std::unique_ptr<GlooCommunicator>> Create(
      const GlooCommunicatorOptions& options);

  ~GlooCommunicator() override;

  int rank() const override { return options_.rank; }
  int world_size() const override { return options_.world_size; }
  std::string backend_name() const override { return "gloo"; }
  absl::Status AllReduceSum(std::vector<at::Tensor>& tensors) override;
  absl::Status Broadcast(std::vector<at::Tensor>& tensors, int root) override;
  absl::Status Barrier() override;
  absl::Status AllGather(const at::Tensor& input,
                         std::vector<at::Tensor>* outputs) override;

 private:
  struct Core;  // the c10d objects and the logic shared with NCCL
  GlooCommunicator(const GlooCommunicatorOptions& options,
                   std::unique_ptr<GlooState> state);

  const GlooCommunicatorOptions options_;
  std::unique_ptr<Core> core_;
};

enum class CollectiveBackend {
  kGloo,  // CPU tensors over TCP
  kNccl,  // CUDA tensors; needs a LibTorch built with CUDA and NCCL
};

// "gloo" / "nccl" (case-insensitive) to the enum; INVALID_ARGUMENT otherwise.
absl::StatusOr<CollectiveBackend> ParseCollectiveBackend(
    const std::string& name);

// The communicator for `backend`, over the same rendezvous options
// (gloo_hostname and threads are Gloo's; cuda_device is NCCL's).
// kNccl takes CUDA tensors, one GPU per rank; FAILED_PRECONDITION when no
// GPU is visible, UNIMPLEMENTED when this build has no NCCL (NOTE [nccl] in
// the .cc); never silently replaced by Gloo.
absl::StatusOr<std::unique_ptr<Communicator>> MakeCommunicator(
    CollectiveBackend backend, const GlooCommunicatorOptions& options);

// Whether this build has the NCCL communicator (FAPO_WITH_NCCL).
bool NcclCommunicatorBuilt();

}  // namespace fapo::trainer

#endif  // FAPO_TRAINER_COMM_GLOO_COMMUNICATOR_H_
