// NOTE [static TLS and small thread stacks]: glibc carves a thread's static
// TLS out of the stack it is given, and pthread_create fails (EINVAL) when
// the requested stack cannot hold it. LibTorch and the CUDA libraries it
// pulls in have ~200 KB of static TLS, more than the fixed stack size
// libcivetweb (the /metrics server) asks for, so in a binary that links
// LibTorch the metrics server cannot start ("Cannot create threads").
//
// This file, linked into such binaries only, interposes
// pthread_attr_setstacksize and raises every requested size to at least
// kStackFloorBytes; a library cannot ask for less stack than its threads
// need. Threads that keep the default size (8 MiB) are unaffected.
#include <dlfcn.h>
#include <pthread.h>

#include <cstddef>

namespace {

constexpr size_t kStackFloorBytes = size_t{2} << 20;  // 2 MiB

using SetStackSizeFn = int (*)(pthread_attr_t*, size_t);

SetStackSizeFn RealSetStackSize() {
  static const SetStackSizeFn real = reinterpret_cast<SetStackSizeFn>(
      dlsym(RTLD_NEXT, "pthread_attr_setstacksize"));
  return real;
}

}  // namespace

extern "C" int pthread_attr_setstacksize(pthread_attr_t* attr,
                                         size_t stack_size) {
  SetStackSizeFn real = RealSetStackSize();
  if (real == nullptr) return 22;  // EINVAL: cannot happen with glibc
  return real(attr,
              stack_size < kStackFloorBytes ? kStackFloorBytes : stack_size);
}
