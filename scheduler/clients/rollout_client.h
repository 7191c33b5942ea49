// scheduler/clients/rollout_client.h: how the scheduler asks one rollout worker
// for a prompt group's samples (fapo.v1.Rollout/Generate, a server stream).
//
//   rollout_client.h        RolloutClient, the interface (this)
//   grpc_rollout_client.h   the real one, with the gRPC callback API
//   fake_rollout_client.h   test-only: records streams, the test feeds them
//
// Contract of RolloutClient::Generate (every implementation):
//   - `on_trajectory` runs once per streamed trajectory, in stream order,
//     never concurrently with itself or `on_done` for the same stream;
//   - `on_done` runs exactly once, last, with OK when the worker ended the
//     stream, DEADLINE_EXCEEDED past `deadline`, UNAVAILABLE when the worker
//     cannot be reached, CANCELLED after RolloutStream::Cancel, or the
//     worker's error (e.g. FAILED_PRECONDITION: its weights are too old);
//   - callbacks run on any thread (possibly inline, before Generate
//     returns), never under the client's locks;
//   - destroying the RolloutStream does not cancel the call.
#ifndef FAPO_SCHEDULER_CLIENTS_ROLLOUT_CLIENT_H_
#define FAPO_SCHEDULER_CLIENTS_ROLLOUT_CLIENT_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "fapo/v1/common.pb.h"
#include "fapo/v1/rollout.pb.h"

namespace fapo::scheduler {

// One rollout worker as the scheduler knows it (its WorkerInfo).
struct RolloutWorker {
  std::string worker_id;
  // "host:port" of its fapo.v1.Rollout service.
  std::string address;
  // Prompt groups it generates at once.
  int capacity = 1;
};

// A Generate stream in progress. Thread-safe.
class RolloutStream {
 public:
  virtual ~RolloutStream() = default;
  // Asks the stream to stop; on_done still runs once (CANCELLED unless the
  // stream had already ended). Idempotent.
  virtual void Cancel() = 0;
};

class RolloutClient {
 public:
  using OnTrajectory = std::function<void(v1::Trajectory)>;
  using OnDone = std::function<void(absl::Status)>;
  virtual ~RolloutClient() = default;

  // Starts Generate on `worker`. Never null.
  virtual std::unique_ptr<RolloutStream> Generate(
      const RolloutWorker& worker, const v1::GenerateRequest& request,
      absl::Time deadline, OnTrajectory on_trajectory, OnDone on_done) = 0;
};

}  // namespace fapo::scheduler

#endif  // FAPO_SCHEDULER_CLIENTS_ROLLOUT_CLIENT_H_
