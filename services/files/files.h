// services/files: the file-system operations the project needs, on POSIX
// calls. Errors carry errno's canonical code and name the path.
//
// NOTE [no std::filesystem]: the torch wheel's libtorch.so exports its own
// copy of the std::filesystem symbols, built with another ABI than this
// compiler's libstdc++. A binary that links LibTorch (the trainer, the
// rollout worker, `fapo`) and calls std::filesystem binds to libtorch's
// copy and crashes or misbehaves at run time. Code that may be linked with
// LibTorch uses this library (or POSIX calls) instead; every other place
// that reads or writes files cites this note.
#ifndef FAPO_SERVICES_FILES_FILES_H_
#define FAPO_SERVICES_FILES_FILES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fapo::files {

// A Status for errno `error_number`: its canonical code and
// "<what>: <strerror>".
absl::Status ErrnoError(int error_number, absl::string_view what);

// "a/b" from ("a", "b"); `name` alone when `directory` is empty.
std::string JoinPath(const std::string& directory, const std::string& name);

// The directory part of `path`: "." when there is none, "/" for the root.
std::string ParentDirectory(const std::string& path);

// mkdir -p: `directory` and its missing parents (mode 0777 & ~umask). OK
// when it exists already; FailedPrecondition when it or a parent is a
// file; errno's code otherwise, naming the path.
absl::Status MakeDirectories(const std::string& directory);

// Replaces `path` with `contents` atomically: written to a temporary file
// beside it, then renamed over it, so a reader sees the old file or the
// whole new one, never a part. Errors name the file.
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents);

// The whole file. NotFound (naming it) when it does not exist.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Creates or truncates `path` and writes `contents`, then fsyncs it, so the
// bytes are on disk when it returns OK (checkpoint files, which a manifest
// with their sizes and CRCs then vouches for). Not atomic: a reader may see
// a part; use WriteFileAtomically for files read while being replaced.
absl::Status WriteFile(const std::string& path, absl::string_view contents);

// True when something (file, directory, link target) exists at `path`.
bool PathExists(const std::string& path);

// rm -rf: `path` and everything below it (links are removed, not
// followed). OK when nothing is there.
absl::Status RemoveRecursively(const std::string& path);

}  // namespace fapo::files

#endif  // FAPO_SERVICES_FILES_FILES_H_
