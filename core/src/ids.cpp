#include <multiproc/ids.hpp>

#include <atomic>
#include <mutex>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace multiproc {
namespace detail {
namespace {

// The PID cache: 0 means "ask the kernel". Relaxed is enough: every thread that reads a
// stale 0 just asks the kernel again and stores the same value.
std::atomic<pid_t> g_pid{0};

void after_fork_in_child() noexcept {
  // Runs in the child's only thread — the one that called fork() — so this clears exactly
  // the TLS cache that is now wrong. The robust head address stays valid: glibc re-registers
  // the same per-thread head (emptied) in the child.
  t_ids.tid = 0;
  g_pid.store(0, std::memory_order_relaxed);
}

struct RobustListHead {
  void* list;
  long futex_offset;
  void* list_op_pending;
};

}  // namespace

ThreadIds& init_thread_ids() noexcept {
  static std::once_flag atfork_once;
  std::call_once(atfork_once, [] { ::pthread_atfork(nullptr, nullptr, &after_fork_in_child); });
  ThreadIds& ids = t_ids;
  ids.tid = static_cast<pid_t>(::syscall(SYS_gettid));
  if (ids.robust_head == nullptr) {
    void* head = nullptr;
    std::size_t len = 0;
    if (::syscall(SYS_get_robust_list, 0, &head, &len) == 0 && head != nullptr && len == sizeof(RobustListHead)) {
      auto* h = static_cast<RobustListHead*>(head);
      // The layout RobustMutex links into: glibc's robust `pthread_mutex_t` on 64-bit, where
      // the kernel finds the futex word 32 bytes below each node, and the head's own `prev`
      // slot sits just below it (robust_prev), pointing into the list.
      const bool offset_ok = h->futex_offset == -32;
      void* head_prev = *reinterpret_cast<void**>(static_cast<char*>(head) - sizeof(void*));
      const bool links_ok = head_prev != nullptr && h->list != nullptr;
      ids.robust_ok = offset_ok && links_ok;
      ids.robust_head = head;
    }
  }
  return ids;
}

pid_t read_pid() noexcept {
  pid_t pid = static_cast<pid_t>(::getpid());
  g_pid.store(pid, std::memory_order_relaxed);
  return pid;
}

}  // namespace detail

pid_t this_pid() noexcept {
  (void)detail::thread_ids();  // registers the atfork handler that clears the cache
  const pid_t pid = detail::g_pid.load(std::memory_order_relaxed);
  return pid != 0 ? pid : detail::read_pid();
}

uid_t this_euid() noexcept { return ::geteuid(); }

}  // namespace multiproc
