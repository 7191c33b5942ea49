// fapo-trainer: TrainerServer (trainer/trainer_server.h) under the common
// service main, with the flags that place this process in the trainer
// ranks' group (NOTE [trainer ranks] in trainer/comm/rank_group.h).
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "apps/service_main.h"

#ifdef FAPO_HAVE_TRAINER
#include "trainer/trainer_server.h"
#endif

int main(int argc, char** argv) {
  fapo::apps::ServiceDefinition definition;
  definition.binary = "fapo-trainer";
  definition.component = "trainer";
  definition.summary =
      "Applies GRPO/FAPO policy updates (clipped-ratio loss, AdamW, "
      "gradient clipping, LR schedule) in micro-batches, writes atomic "
      "checksummed checkpoints (resuming from the newest valid one) and "
      "serves the weights to rollout workers. With --scheduler it registers "
      "and exits when the job is over.";
  static int64_t rank = 0;
  static std::string rendezvous;
  static int64_t keep_alive_ms = 2000;
  definition.add_flags = [](fapo::flags::FlagSet& flags) {
    flags.Int("rank", &rank,
              "this process's rank in [0, trainer.ranks); rank 0 serves the "
              "Trainer service and registers with --scheduler");
    flags.String("rendezvous", &rendezvous, "HOST:PORT",
                 "where rank 0 hosts the store the trainer ranks meet at "
                 "(the same on every rank; required when trainer.ranks > 1)");
    flags.Int("rank-keep-alive-ms", &keep_alive_ms,
              "rank 0 of several: how long it may be idle before it pings "
              "the other ranks (a dead one is found within this; ranks > 0 "
              "take as long to stop on SIGTERM)");
  };
#ifdef FAPO_HAVE_TRAINER
  static const auto rank_address = [](const fapo::config::JobSpec& spec) {
    fapo::trainer::RankAddress address;
    address.rank =
        static_cast<int>(std::clamp<int64_t>(rank, INT32_MIN, INT32_MAX));
    address.rendezvous = rendezvous;
    address.timeout = absl::Milliseconds(spec.trainer.collective_timeout_ms);
    return address;
  };
  definition.check_flags = [](const fapo::config::JobSpec& spec) {
    // Above trainer.collective_timeout_ms an idle follower times out
    // between steps; tests do that on purpose, so it is allowed.
    if (keep_alive_ms < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--rank-keep-alive-ms must be >= 1, got ", keep_alive_ms));
    }
    return fapo::trainer::ValidateRankAddress(spec, rank_address(spec));
  };
  definition.factory = [](const fapo::runtime::ServiceContext& context)
      -> absl::StatusOr<std::unique_ptr<fapo::runtime::ServiceInstance>> {
    return fapo::trainer::TrainerServer::Create(
        context, rank_address(*context.spec),
        absl::Milliseconds(keep_alive_ms));
  };
#else
  definition.missing_note =
      "this build has no LibTorch (FAPO_WITH_TORCH=OFF): it serves only "
      "health, reflection and /metrics";
#endif
  return fapo::apps::RunServiceMain(definition, argc, argv);
}
