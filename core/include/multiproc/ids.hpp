// multiproc/ids.hpp — this thread's kernel TID and this process's PID, without a system call.
//
// Both are cached (the TID per thread, the PID per process) and re-read in a `fork()`ed child:
// a pthread_atfork child handler clears the caches, so the first call in the child asks the
// kernel again. Processes made by a raw clone(2) that bypasses glibc's fork are not covered.
//
// The cached thread state also holds this thread's kernel robust-list head (see
// robust_mutex.hpp), read once per thread with get_robust_list(2).
#pragma once

#include <sys/types.h>

namespace multiproc {
namespace detail {

struct ThreadIds {
  pid_t tid = 0;               // 0: not read yet (or invalidated by fork)
  void* robust_head = nullptr;  // glibc's registered `struct robust_list_head` for this thread
  bool robust_ok = false;       // the head has the layout RobustMutex links into
};

// Initial-exec TLS: one `mov %fs:` on the fast path even from inside a shared library.
inline thread_local ThreadIds t_ids __attribute__((tls_model("initial-exec")));

ThreadIds& init_thread_ids() noexcept;  // fills t_ids; registers the atfork handler once
pid_t read_pid() noexcept;

inline ThreadIds& thread_ids() noexcept {
  ThreadIds& ids = t_ids;
  return ids.tid != 0 ? ids : init_thread_ids();
}

}  // namespace detail

/// This thread's kernel thread id (gettid(2)), cached; correct in a fork()ed child.
inline pid_t this_tid() noexcept { return detail::thread_ids().tid; }

/// This process's id (getpid(2)), cached; correct in a fork()ed child.
pid_t this_pid() noexcept;

/// This process's effective user id (geteuid(2)): whom SO_PEERCRED checks compare against.
uid_t this_euid() noexcept;

}  // namespace multiproc
