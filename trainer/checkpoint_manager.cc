#include "trainer/checkpoint_manager.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "services/crc32c/crc32c.h"
#include "services/files/files.h"
#include "services/logging/log.h"
#include "services/status/status_macros.h"

namespace fapo::trainer {
namespace {

constexpr char kManifestFormat[] = "fapo-checkpoint-v1";
constexpr char kStepPrefix[] = "step-";
constexpr char kTempPrefix[] = ".tmp-step-";

std::string ErrnoText() { return std::strerror(errno); }

absl::Status SyncPath(const std::string& path, bool directory) {
  int fd = open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("cannot open ", path, " to sync: ", ErrnoText()));
  }
  const int synced = fsync(fd);
  close(fd);
  if (synced != 0) {
    return absl::InternalError(
        absl::StrCat("cannot fsync ", path, ": ", ErrnoText()));
  }
  return absl::OkStatus();
}

// Files under `dir` (recursively), as paths relative to it, sorted.
absl::Status ListFiles(const std::string& dir, const std::string& prefix,
                       std::vector<std::string>* files) {
  DIR* handle = opendir(dir.c_str());
  if (handle == nullptr) {
    return absl::InternalError(
        absl::StrCat("cannot list ", dir, ": ", ErrnoText()));
  }
  std::vector<std::string> names;
  while (dirent* entry = readdir(handle)) {
    std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    names.push_back(std::move(name));
  }
  closedir(handle);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const std::string path = absl::StrCat(dir, "/", name);
    struct stat info;
    if (lstat(path.c_str(), &info) != 0) {
      return absl::InternalError(
          absl::StrCat("cannot stat ", path, ": ", ErrnoText()));
    }
    const std::string relative = absl::StrCat(prefix, name);
    if (S_ISDIR(info.st_mode)) {
      RETURN_IF_ERROR(ListFiles(path, absl::StrCat(relative, "/"), files));
    } else if (S_ISREG(info.st_mode)) {
      files->push_back(relative);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          path,
          " is neither a file nor a directory: checkpoints hold only "
          "regular files"));
    }
  }
  return absl::OkStatus();
}

// The step of a "step-<N>" name; -1 for any other name.
int64_t StepOfName(absl::string_view name) {
  if (!absl::StartsWith(name, kStepPrefix)) return -1;
  int64_t step = 0;
  if (!absl::SimpleAtoi(name.substr(std::strlen(kStepPrefix)), &step) ||
      step < 0) {
    return -1;
  }
  // Only the canonical spelling, so "step-007" is not a second step 7.
  if (absl::StrCat(kStepPrefix, step) != name) return -1;
  return step;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CheckpointManager>> CheckpointManager::Create(
    std::string root, int keep_last) {
  if (root.empty()) {
    return absl::InvalidArgumentError("checkpoint root directory is empty");
  }
  if (keep_last < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("trainer.keep_checkpoints must be >= 1, got ", keep_last));
  }
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  RETURN_IF_ERROR(files::MakeDirectories(root));
  return std::unique_ptr<CheckpointManager>(
      new CheckpointManager(std::move(root), keep_last));
}

absl::StatusOr<std::string> CheckpointManager::Save(
    int64_t step, const ContentWriter& write_content) {
  if (step < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint step must be >= 0, got ", step));
  }
  const std::string final_dir = absl::StrCat(root_, "/", kStepPrefix, step);
  if (files::PathExists(final_dir)) {
    absl::Status valid = Verify(final_dir);
    if (valid.ok()) return final_dir;  // keyed by step: keep the first one
    FAPO_LOG(WARNING) << "replacing invalid checkpoint " << final_dir << ": "
                      << valid.message();
  }
  const std::string temp_dir = absl::StrCat(root_, "/", kTempPrefix, step);
  RETURN_IF_ERROR(
      files::RemoveRecursively(temp_dir));  // a crashed earlier attempt
  RETURN_IF_ERROR(files::MakeDirectories(temp_dir));
  absl::Status written = [&]() -> absl::Status {
    RETURN_IF_ERROR(write_content(temp_dir));
    std::vector<std::string> files;
    RETURN_IF_ERROR(ListFiles(temp_dir, "", &files));
    nlohmann::json manifest_files = nlohmann::json::array();
    for (const std::string& relative : files) {
      if (relative == kCheckpointManifestName) {
        return absl::InvalidArgumentError(absl::StrCat(
            "checkpoint content may not contain ", kCheckpointManifestName));
      }
      const std::string path = absl::StrCat(temp_dir, "/", relative);
      ASSIGN_OR_RETURN(std::string contents, files::ReadFile(path));
      RETURN_IF_ERROR(SyncPath(path, /*directory=*/false));
      manifest_files.push_back(
          {{"path", relative},
           {"num_bytes", contents.size()},
           {"crc32c", crc32c::Value(contents.data(), contents.size())}});
    }
    nlohmann::json manifest = {{"format", kManifestFormat},
                               {"step", step},
                               {"files", std::move(manifest_files)}};
    RETURN_IF_ERROR(
        files::WriteFile(absl::StrCat(temp_dir, "/", kCheckpointManifestName),
                         manifest.dump(1)));
    RETURN_IF_ERROR(SyncPath(temp_dir, /*directory=*/true));
    // An invalid checkpoint of the same step goes out of the way first:
    // rename() does not replace a non-empty directory.
    RETURN_IF_ERROR(files::RemoveRecursively(final_dir));
    if (rename(temp_dir.c_str(), final_dir.c_str()) != 0) {
      return absl::InternalError(absl::StrCat(
          "cannot rename ", temp_dir, " to ", final_dir, ": ", ErrnoText()));
    }
    return SyncPath(root_, /*directory=*/true);
  }();
  if (!written.ok()) {
    absl::Status removed = files::RemoveRecursively(temp_dir);
    if (!removed.ok()) FAPO_LOG(WARNING) << removed.message();
    return written;
  }
  Prune(step);
  return final_dir;
}

std::vector<CheckpointInfo> CheckpointManager::List() const {
  std::vector<CheckpointInfo> checkpoints;
  DIR* handle = opendir(root_.c_str());
  if (handle == nullptr) return checkpoints;
  while (dirent* entry = readdir(handle)) {
    const int64_t step = StepOfName(entry->d_name);
    if (step < 0) continue;
    const std::string path = absl::StrCat(root_, "/", entry->d_name);
    struct stat info;
    if (stat(path.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) continue;
    checkpoints.push_back({step, path});
  }
  closedir(handle);
  std::sort(checkpoints.begin(), checkpoints.end(),
            [](const CheckpointInfo& a, const CheckpointInfo& b) {
              return a.step > b.step;
            });
  return checkpoints;
}

absl::StatusOr<CheckpointInfo> CheckpointManager::FindNewestValid(
    std::vector<std::string>* skipped) const {
  for (const CheckpointInfo& checkpoint : List()) {
    absl::Status valid = Verify(checkpoint.path);
    if (valid.ok()) return checkpoint;
    FAPO_LOG(WARNING) << "skipping checkpoint " << checkpoint.path << ": "
                      << valid.message();
    if (skipped != nullptr) skipped->push_back(checkpoint.path);
  }
  return absl::NotFoundError(absl::StrCat("no valid checkpoint under ", root_));
}

absl::Status CheckpointManager::Verify(const std::string& dir) {
  const std::string manifest_path =
      absl::StrCat(dir, "/", kCheckpointManifestName);
  absl::StatusOr<std::string> text = files::ReadFile(manifest_path);
  if (!text.ok()) {
    return absl::NotFoundError(absl::StrCat("no readable ", manifest_path,
                                            " (a partial checkpoint?)"));
  }
  nlohmann::json manifest = nlohmann::json::parse(*text, nullptr,
                                                  /*allow_exceptions=*/false);
  auto corrupt = [&](absl::string_view why) {
    return absl::DataLossError(absl::StrCat(manifest_path, ": ", why));
  };
  if (!manifest.is_object() ||
      manifest.value("format", "") != kManifestFormat ||
      !manifest.contains("files") || !manifest["files"].is_array()) {
    return corrupt("not a fapo-checkpoint-v1 manifest");
  }
  for (const nlohmann::json& file : manifest["files"]) {
    if (!file.is_object() || !file.contains("path") ||
        !file["path"].is_string() || !file.contains("num_bytes") ||
        !file["num_bytes"].is_number_unsigned() || !file.contains("crc32c") ||
        !file["crc32c"].is_number_unsigned()) {
      return corrupt("malformed file entry");
    }
    const std::string relative = file["path"].get<std::string>();
    if (relative.empty() || relative[0] == '/' ||
        absl::StrContains(relative, "..")) {
      return corrupt(absl::StrCat("bad file path '", relative, "'"));
    }
    const std::string path = absl::StrCat(dir, "/", relative);
    absl::StatusOr<std::string> contents = files::ReadFile(path);
    if (!contents.ok()) {
      return absl::DataLossError(
          absl::StrCat(path, " is listed in the manifest but missing"));
    }
    if (contents->size() != file["num_bytes"].get<uint64_t>()) {
      return absl::DataLossError(absl::StrCat(
          path, " has ", contents->size(), " bytes, the manifest says ",
          file["num_bytes"].get<uint64_t>()));
    }
    if (crc32c::Value(contents->data(), contents->size()) !=
        file["crc32c"].get<uint32_t>()) {
      return absl::DataLossError(
          absl::StrCat(path, " fails its CRC-32C check (corrupted)"));
    }
  }
  return absl::OkStatus();
}

void CheckpointManager::Prune(int64_t saved_step) {
  std::vector<CheckpointInfo> kept;
  for (const CheckpointInfo& checkpoint : List()) {
    if (checkpoint.step > saved_step) {
      FAPO_LOG(WARNING) << "removing checkpoint " << checkpoint.path
                        << ": the run is at step " << saved_step
                        << " and went back past it";
      absl::Status removed = files::RemoveRecursively(checkpoint.path);
      if (!removed.ok()) FAPO_LOG(WARNING) << removed.message();
      continue;
    }
    kept.push_back(checkpoint);
  }
  for (size_t i = keep_last_; i < kept.size(); ++i) {
    absl::Status removed = files::RemoveRecursively(kept[i].path);
    if (!removed.ok()) {
      FAPO_LOG(WARNING) << "cannot prune old checkpoint: " << removed.message();
    }
  }
}

}  // namespace fapo::trainer
