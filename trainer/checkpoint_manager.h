// Checkpoint directories: atomic, checksummed, the last N kept.
//
//   <root>/step-<N>/              one checkpoint (root is usually
//                                 <job.output_dir>/checkpoints)
//   <root>/step-<N>/MANIFEST.json {"format": "fapo-checkpoint-v1",
//                                  "step": N, "files": [{"path": "...",
//                                  "num_bytes": B, "crc32c": C}, ...]}
//   <root>/.tmp-step-<N>/         being written; never read
//
// What goes inside is the caller's business (the Trainer writes the policy
// in the Hugging Face layout, the optimizer and RNG state, its own state and
// the scheduler's snapshot: trainer.h). This class only makes a checkpoint
// appear whole or not at all: the content is written into a temporary
// directory, every file is fsync'ed and checksummed (CRC-32C) into the
// manifest (services/crc32c), the manifest is written last, and the directory
// is rename()d into place. A reader trusts a checkpoint only when its manifest
// parses and every listed file has its size and checksum (Verify), so a crash
// mid-write or a corrupted file is caught and skipped on resume.
//
// No LibTorch here. Not thread-safe: one caller (the trainer thread).
#ifndef FAPO_TRAINER_CHECKPOINT_MANAGER_H_
#define FAPO_TRAINER_CHECKPOINT_MANAGER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fapo::trainer {

inline constexpr char kCheckpointManifestName[] = "MANIFEST.json";

struct CheckpointInfo {
  int64_t step = 0;
  std::string path;  // <root>/step-<N>
};

class CheckpointManager {
 public:
  // `root` is created (with parents) when missing; keep_last >= 1.
  // InvalidArgument for keep_last < 1 or an empty root; Internal when the
  // directory cannot be created (naming it).
  static absl::StatusOr<std::unique_ptr<CheckpointManager>> Create(
      std::string root, int keep_last);

  CheckpointManager(const CheckpointManager&) = delete;
  CheckpointManager& operator=(const CheckpointManager&) = delete;

  // Fills the directory it is given (empty, existing) with the checkpoint's
  // files; subdirectories are allowed.
  using ContentWriter = std::function<absl::Status(const std::string& dir)>;

  // Writes checkpoint `step` (>= 0) through `write_content` as described in
  // the file comment and returns its path, then prunes: checkpoints of
  // later steps are removed (a warning names each: the run went back past
  // them, e.g. they were corrupted and it resumed from an older one, or it
  // started fresh with trainer.resume off, so a later resume must not pick
  // them), then all but the newest keep_last. Keyed by step: when step-<N>
  // already exists and verifies, nothing is written and its path is returned
  // (the first one is kept); an invalid step-<N> is replaced. Errors: the
  // writer's, or Internal naming the file or directory that could not be
  // written; the temporary directory is removed on failure.
  absl::StatusOr<std::string> Save(int64_t step,
                                   const ContentWriter& write_content);

  // Every step-<N> directory under the root, newest first, valid or not.
  std::vector<CheckpointInfo> List() const;

  // The newest checkpoint that verifies; each newer one that does not is
  // logged as a warning naming it and why, and appended to `skipped` when
  // given. NotFound when there is none.
  absl::StatusOr<CheckpointInfo> FindNewestValid(
      std::vector<std::string>* skipped = nullptr) const;

  // OK when `dir`'s manifest parses and every file it lists exists with the
  // recorded size and CRC-32C. DataLoss naming the manifest or the file
  // otherwise (NotFound when there is no manifest: a partial checkpoint).
  static absl::Status Verify(const std::string& dir);

  const std::string& root() const { return root_; }
  int keep_last() const { return keep_last_; }

 private:
  CheckpointManager(std::string root, int keep_last)
      : root_(std::move(root)), keep_last_(keep_last) {}

  // As Save describes: removes checkpoints after `saved_step`, then those
  // beyond the newest keep_last_.
  void Prune(int64_t saved_step);

  const std::string root_;
  const int keep_last_;
};

}  // namespace fapo::trainer

#endif  // FAPO_TRAINER_CHECKPOINT_MANAGER_H_
