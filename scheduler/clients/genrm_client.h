// scheduler/clients/genrm_client.h: how the scheduler talks to one GenRM
// server.
//
//   genrm_client.h        GenrmClient, the interface (this)
//   grpc_genrm_client.h   the real one, over fapo.v1.GenRM/Score
//   fake_genrm_client.h   test-only: records calls, the test finishes them
//
// Contract of GenrmClient::Score (every implementation; the contract test
// in grpc_genrm_client_test.cc runs against the fake and the real one):
//
//   - `done` runs exactly once per Score call, on any thread, possibly
//     before Score returns (an implementation may complete inline), and
//     never while the client holds one of its own locks, so `done` may call
//     back into the client.
//   - It gets the server's Verdict, or an error with a canonical code:
//     DEADLINE_EXCEEDED when `deadline` passed, UNAVAILABLE when the server
//     cannot be reached, CANCELLED after GenrmCall::Cancel, and whatever
//     code the server answered with otherwise.
//   - `request` and `server` are only read during the Score call itself;
//     implementations copy what they keep.
//   - The returned GenrmCall may be destroyed at any time; destroying it
//     does not cancel the call, and `done` still runs.
#ifndef FAPO_SCHEDULER_CLIENTS_GENRM_CLIENT_H_
#define FAPO_SCHEDULER_CLIENTS_GENRM_CLIENT_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fapo/v1/common.pb.h"
#include "fapo/v1/genrm.pb.h"

namespace fapo::scheduler {

// One GenRM server as the scheduler knows it (from its WorkerInfo).
struct GenrmServer {
  // Stable id of the server process (WorkerInfo.worker_id).
  std::string worker_id;
  // "host:port" of its fapo.v1.GenRM service.
  std::string address;
  // Requests it works on at once (WorkerInfo.capacity).
  int capacity = 0;
};

// A Score call in progress. Thread-safe.
class GenrmCall {
 public:
  virtual ~GenrmCall() = default;
  // Asks the call to stop. Its `done` still runs exactly once, with
  // CANCELLED unless the result was already on its way. Idempotent; a no-op
  // after completion.
  virtual void Cancel() = 0;
};

// Thread-safe. See the contract above.
class GenrmClient {
 public:
  // By rvalue reference: a Verdict is a message with strings, and each
  // by-value hop is a construct, a swap and a destruction.
  using Done = std::function<void(absl::StatusOr<v1::Verdict>&&)>;

  virtual ~GenrmClient() = default;

  // Asks `server` to judge `request`, giving up at `deadline`. Never null.
  virtual std::unique_ptr<GenrmCall> Score(const GenrmServer& server,
                                           const v1::ScoreRequest& request,
                                           absl::Time deadline, Done done) = 0;
};

}  // namespace fapo::scheduler

#endif  // FAPO_SCHEDULER_CLIENTS_GENRM_CLIENT_H_
