// The `latency` GenRM backend: another backend plus a sampled delay, to
// emulate a remote GenRM pool (network and queueing, a 4B model's decode) in
// scheduling experiments and benchmarks, at no CPU cost.
//
// Each batch is handed to the inner backend at once; when the inner backend
// completes it, one delay is drawn for the whole batch and its completion is
// held back that long on a TimerQueue (one thread sleeping until the earliest
// deadline; no thread per request, no busy-waiting). So a batch completes
// inner time + delay after ScoreBatch.
//
// Destruction first destroys the inner backend (which completes what it
// owes), then cancels every pending delay: those batches complete at once
// with Cancelled for each request.
//
// Thread-safe. `done` runs on the TimerQueue's thread, or on the destroying
// thread for cancelled batches.
#ifndef FAPO_GENRM_SERVER_LATENCY_BACKEND_H_
#define FAPO_GENRM_SERVER_LATENCY_BACKEND_H_

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "genrm_server/genrm_backend.h"
#include "genrm_server/timer_queue.h"

namespace fapo::genrm {

enum class LatencyKind { kConstant, kUniform, kNormal, kLogNormal };

// "constant", "uniform", "normal", "lognormal" (config values).
absl::string_view LatencyKindName(LatencyKind kind);
// The inverse of LatencyKindName; InvalidArgument for any other text.
absl::StatusOr<LatencyKind> ParseLatencyKind(absl::string_view name);

// A delay distribution, given by its mean and standard deviation in ms:
//   constant:  always mean_ms (stddev_ms ignored);
//   uniform:   uniform on mean_ms +- sqrt(3) * stddev_ms;
//   normal:    Normal(mean_ms, stddev_ms);
//   lognormal: the log-normal with this mean and stddev (a long right tail,
//              like real serving latency); needs mean_ms > 0 when
//              stddev_ms > 0.
// Draws below 0 are clamped to 0 (uniform and normal can go negative), which
// raises the mean of a wide distribution a little.
// genrm.latency.*: no defaults here (NOTE [one default]:
// LatencyOptionsFromSpec fills them).
struct LatencyDistribution {
  // genrm.latency.distribution.
  LatencyKind kind = LatencyKind::kConstant;
  // genrm.latency.mean_ms: mean delay, ms; >= 0.
  double mean_ms = 0;
  // genrm.latency.stddev_ms: standard deviation, ms; >= 0.
  double stddev_ms = 0;
};

// OK, or InvalidArgument naming the bad field (negative or non-finite
// values; lognormal with mean_ms 0 and stddev_ms > 0).
absl::Status ValidateLatencyDistribution(const LatencyDistribution& dist);

// Seeded draws from a LatencyDistribution. The same seed gives the same
// delays on every machine: the engine's raw output is mapped by this code,
// not by std:: distributions (as in NOTE [reproducible randomness],
// tasks/arith/random.h). Not thread-safe.
class LatencySampler {
 public:
  // InvalidArgument when ValidateLatencyDistribution fails.
  static absl::StatusOr<LatencySampler> Create(const LatencyDistribution& dist,
                                               uint64_t seed);

  // A delay in ms, >= 0.
  double NextMs();
  absl::Duration Next() { return absl::Milliseconds(NextMs()); }

 private:
  LatencySampler(const LatencyDistribution& dist, uint64_t seed);
  double UniformOpen01();  // in (0, 1)
  double StandardNormal();

  LatencyDistribution dist_;
  std::mt19937_64 rng_;
  // lognormal: the underlying normal's parameters.
  double log_mu_ = 0;
  double log_sigma_ = 0;
};

struct LatencyBackendOptions {
  LatencyDistribution distribution;
  // job.seed: the delay draws'.
  uint64_t seed = 0;
};

class LatencyBackend : public GenrmBackend {
 public:
  // InvalidArgument for an invalid distribution or a null inner backend.
  static absl::StatusOr<std::unique_ptr<LatencyBackend>> Create(
      const LatencyBackendOptions& options,
      std::unique_ptr<GenrmBackend> inner);

  ~LatencyBackend() override;
  LatencyBackend(const LatencyBackend&) = delete;
  LatencyBackend& operator=(const LatencyBackend&) = delete;

  void ScoreBatch(std::vector<fapo::v1::ScoreRequest> requests,
                  BatchDone done) override;
  // "latency(<inner name>)".
  std::string name() const override;

  // Batches whose delay has not yet elapsed.
  size_t pending_batches() const { return timers_.pending(); }

 private:
  LatencyBackend(LatencySampler sampler, std::unique_ptr<GenrmBackend> inner);

  absl::Mutex mu_;
  LatencySampler sampler_ ABSL_GUARDED_BY(mu_);
  // Declared before inner_: the destructor resets inner_ explicitly first,
  // whose completions still schedule onto timers_.
  TimerQueue timers_;
  std::unique_ptr<GenrmBackend> inner_;
};

}  // namespace fapo::genrm

#endif  // FAPO_GENRM_SERVER_LATENCY_BACKEND_H_
