// services/files: the few filesystem operations services need, on POSIX
// calls (never std::filesystem: LibTorch exports its own copy of those
// symbols, so code linked with it must not use them).
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

}  // namespace fapo::files

#endif  // FAPO_SERVICES_FILES_FILES_H_
