// Trainer (trainer.h): SaveCheckpoint and Resume. Files go through
// services/files: this library links LibTorch (NOTE [no std::filesystem]
// in services/files/files.h).
#include <torch/torch.h>

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "services/files/files.h"
#include "services/logging/log.h"
#include "services/status/status_macros.h"
#include "trainer/checkpoint_manager.h"
#include "trainer/trainer_internal.h"

namespace fapo::trainer {

using internal::CopyWeights;
using internal::kLastMetricsFile;
using internal::kOptimizerFile;
using internal::kPolicySubdir;
using internal::kRngFile;
using internal::kSchedulerSnapshotFile;
using internal::kTrainerStateFile;
using internal::kTrainerStateFormat;

namespace {

absl::Status CopyFile(const std::string& from, const std::string& to) {
  ASSIGN_OR_RETURN(std::string contents, files::ReadFile(from));
  return files::WriteFile(to, contents);
}

}  // namespace

absl::StatusOr<std::string> Trainer::SaveCheckpoint(
    int64_t step, absl::string_view scheduler_snapshot) {
  if (impl_->checkpoints == nullptr) {
    return absl::FailedPreconditionError(
        "no checkpoint directory (job.output_dir) is configured");
  }
  if (step != step_) {
    return absl::FailedPreconditionError(
        absl::StrCat("SaveCheckpoint ", step, ": the trainer is at step ",
                     step_, " and can only save that step"));
  }
  auto write = [&](const std::string& dir) -> absl::Status {
    const std::string policy_dir = absl::StrCat(dir, "/", kPolicySubdir);
    RETURN_IF_ERROR(policy_->Save(policy_dir));
    const std::string tokenizer_copy =
        absl::StrCat(policy_dir, "/tokenizer.json");
    if (!settings_.tokenizer_path.empty() &&
        files::PathExists(settings_.tokenizer_path)) {
      RETURN_IF_ERROR(CopyFile(settings_.tokenizer_path, tokenizer_copy));
    } else if (!settings_.tokenizer_json.empty()) {
      RETURN_IF_ERROR(
          files::WriteFile(tokenizer_copy, settings_.tokenizer_json));
    }
    const std::string optimizer_path = absl::StrCat(dir, "/", kOptimizerFile);
    const std::string rng_path = absl::StrCat(dir, "/", kRngFile);
    try {
      torch::save(*impl_->optimizer, optimizer_path);
      at::Tensor rng_state;
      {
        auto generator = at::detail::getDefaultCPUGenerator();
        std::lock_guard<std::mutex> lock(generator.mutex());
        rng_state = generator.get_state();
      }
      torch::save(rng_state, rng_path);
    } catch (const c10::Error& error) {
      return absl::InternalError(absl::StrCat("writing ", optimizer_path, " / ",
                                              rng_path, ": ", error.what()));
    }
    nlohmann::json state = {{"format", kTrainerStateFormat},
                            {"step", step_},
                            {"policy_version", policy_version()}};
    RETURN_IF_ERROR(files::WriteFile(absl::StrCat(dir, "/", kTrainerStateFile),
                                     state.dump(1)));
    if (last_result_.has_value() && last_result_->step == step_) {
      RETURN_IF_ERROR(
          files::WriteFile(absl::StrCat(dir, "/", kLastMetricsFile),
                           last_result_->metrics.SerializeAsString()));
    }
    return files::WriteFile(absl::StrCat(dir, "/", kSchedulerSnapshotFile),
                            scheduler_snapshot);
  };
  return impl_->checkpoints->Save(step, write);
}

absl::StatusOr<bool> Trainer::Resume() {
  if (impl_->checkpoints == nullptr) return false;
  absl::StatusOr<CheckpointInfo> newest = impl_->checkpoints->FindNewestValid();
  if (absl::IsNotFound(newest.status())) return false;
  RETURN_IF_ERROR(newest.status());
  const std::string& dir = newest->path;
  auto file_error = [&](absl::string_view file, absl::string_view why) {
    return absl::DataLossError(
        absl::StrCat("checkpoint file ", dir, "/", file, ": ", why));
  };
  // Everything is read and checked before the trainer changes.
  ASSIGN_OR_RETURN(std::string state_text,
                   files::ReadFile(absl::StrCat(dir, "/", kTrainerStateFile)));
  nlohmann::json state = nlohmann::json::parse(state_text, nullptr, false);
  if (!state.is_object() || state.value("format", "") != kTrainerStateFormat ||
      !state.contains("step") || !state["step"].is_number_integer()) {
    return file_error(kTrainerStateFile, "not a fapo-trainer-state-v1 file");
  }
  const int64_t step = state["step"].get<int64_t>();
  ASSIGN_OR_RETURN(
      std::string snapshot,
      files::ReadFile(absl::StrCat(dir, "/", kSchedulerSnapshotFile)));
  std::optional<v1::TrainMetrics> last_metrics;
  const std::string metrics_path = absl::StrCat(dir, "/", kLastMetricsFile);
  if (files::PathExists(metrics_path)) {
    ASSIGN_OR_RETURN(std::string bytes, files::ReadFile(metrics_path));
    last_metrics.emplace();
    if (!last_metrics->ParseFromString(bytes)) {
      return file_error(kLastMetricsFile, "not a fapo.v1.TrainMetrics");
    }
  }
  const std::string policy_dir = absl::StrCat(dir, "/", kPolicySubdir);
  absl::StatusOr<std::unique_ptr<engine::CausalLM>> loaded =
      engine::CausalLM::Load(
          policy_dir, engine::LoadOptions{policy_->device(), policy_->dtype()});
  if (!loaded.ok()) {
    return file_error(kPolicySubdir, loaded.status().message());
  }
  // From here on a failure leaves a mix of old and new state: the trainer
  // refuses to train until a Resume succeeds.
  broken_ = true;
  RETURN_IF_ERROR(
      CopyWeights(**loaded, *policy_, absl::StrCat("checkpoint ", policy_dir)));
  const std::string optimizer_path = absl::StrCat(dir, "/", kOptimizerFile);
  try {
    torch::load(*impl_->optimizer, optimizer_path);
  } catch (const c10::Error& error) {
    return file_error(kOptimizerFile, error.what());
  }
  try {
    at::Tensor rng_state;
    torch::load(rng_state, absl::StrCat(dir, "/", kRngFile));
    auto generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(rng_state);
  } catch (const c10::Error& error) {
    return file_error(kRngFile, error.what());
  }
  step_ = step;
  broken_ = false;
  last_result_.reset();
  if (last_metrics.has_value()) {
    last_result_ = TrainStepResult{step, step, *last_metrics};
  }
  resume_info_ = ResumeInfo{step, step, std::move(snapshot), dir};
  FAPO_LOG(INFO) << "resumed from " << dir << " at step " << step;
  return true;
}

}  // namespace fapo::trainer
