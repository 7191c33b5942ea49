// StubCache: one channel and stub per address, made on first use with
// rpc::MakeChannel and kept for the cache's lifetime (fleets of GenRM
// servers and rollout workers are small and their addresses stable).
// Thread-safe. Used by the scheduler's gRPC clients.
#ifndef FAPO_SERVICES_RPC_STUB_CACHE_H_
#define FAPO_SERVICES_RPC_STUB_CACHE_H_

#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "services/rpc/channel.h"

namespace fapo::rpc {

template <typename Service>
class StubCache {
 public:
  using Stub = typename Service::Stub;

  explicit StubCache(ChannelOptions options) : options_(std::move(options)) {}
  StubCache(const StubCache&) = delete;
  StubCache& operator=(const StubCache&) = delete;

  // The stub for `address`; MakeChannel's errors (bad credentials files).
  absl::StatusOr<std::shared_ptr<Stub>> Get(const std::string& address) {
    absl::MutexLock lock(&mu_);
    auto it = stubs_.find(address);
    if (it != stubs_.end()) return it->second;
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
        MakeChannel(address, options_);
    if (!channel.ok()) return channel.status();
    std::shared_ptr<Stub> stub = Service::NewStub(*std::move(channel));
    stubs_.emplace(address, stub);
    return stub;
  }

  const ChannelOptions& options() const { return options_; }

 private:
  const ChannelOptions options_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<Stub>> stubs_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace fapo::rpc

#endif  // FAPO_SERVICES_RPC_STUB_CACHE_H_
