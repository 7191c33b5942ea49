#include "services/files/files.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "services/status/status_macros.h"

namespace fapo::files {
namespace {

int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) {
  return ::remove(path);
}

absl::Status WriteAll(int fd, const std::string& path,
                      absl::string_view contents) {
  size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n =
        ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, absl::StrCat(path, ": write failed"));
    written += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ErrnoError(int error_number, absl::string_view what) {
  return absl::Status(absl::ErrnoToStatusCode(error_number),
                      absl::StrCat(what, ": ", std::strerror(error_number)));
}

std::string JoinPath(const std::string& directory, const std::string& name) {
  if (directory.empty() || directory.back() == '/') return directory + name;
  return absl::StrCat(directory, "/", name);
}

std::string ParentDirectory(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

absl::Status MakeDirectories(const std::string& directory) {
  if (directory.empty()) return absl::OkStatus();
  struct stat info;
  if (::stat(directory.c_str(), &info) == 0) {
    if (S_ISDIR(info.st_mode)) return absl::OkStatus();
    return absl::FailedPreconditionError(
        absl::StrCat(directory, ": exists and is not a directory"));
  }
  const std::string parent = ParentDirectory(directory);
  if (parent != directory && parent != "." && parent != "/") {
    RETURN_IF_ERROR(MakeDirectories(parent));
  }
  if (::mkdir(directory.c_str(), 0777) != 0 && errno != EEXIST) {
    return ErrnoError(errno, absl::StrCat(directory, ": mkdir failed"));
  }
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents) {
  const std::string temp = absl::StrCat(path, ".tmp.", ::getpid());
  const int fd =
      ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError(errno, absl::StrCat(temp, ": cannot create"));
  absl::Status written = WriteAll(fd, temp, contents);
  if (!written.ok()) {
    ::close(fd);
    ::unlink(temp.c_str());
    return written;
  }
  if (::close(fd) != 0) {
    const int error = errno;
    ::unlink(temp.c_str());
    return ErrnoError(error, absl::StrCat(temp, ": close failed"));
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temp.c_str());
    return ErrnoError(error,
                      absl::StrCat("cannot rename ", temp, " to ", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, absl::StrCat(path, ": cannot open"));
  std::string contents;
  char buffer[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      return ErrnoError(error, absl::StrCat(path, ": read failed"));
    }
    if (n == 0) break;
    contents.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return contents;
}

absl::Status WriteFile(const std::string& path, absl::string_view contents) {
  const int fd =
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError(errno, absl::StrCat(path, ": cannot create"));
  absl::Status written = WriteAll(fd, path, contents);
  if (written.ok() && ::fsync(fd) != 0) {
    written = ErrnoError(errno, absl::StrCat(path, ": fsync failed"));
  }
  if (::close(fd) != 0 && written.ok()) {
    written = ErrnoError(errno, absl::StrCat(path, ": close failed"));
  }
  return written;
}

bool PathExists(const std::string& path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0;
}

absl::Status RemoveRecursively(const std::string& path) {
  struct stat info;
  if (::lstat(path.c_str(), &info) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoError(errno, absl::StrCat(path, ": cannot stat"));
  }
  if (::nftw(path.c_str(), &RemoveEntry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
    return ErrnoError(errno, absl::StrCat(path, ": cannot remove"));
  }
  return absl::OkStatus();
}

}  // namespace fapo::files
