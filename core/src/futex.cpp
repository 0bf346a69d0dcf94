#include <multiproc/futex.hpp>

#include <cerrno>
#include <climits>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace multiproc {

FutexResult futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                       const Deadline& deadline) noexcept {
  // FUTEX_WAIT_BITSET without FUTEX_CLOCK_REALTIME takes an absolute CLOCK_MONOTONIC time.
  const long rc = ::syscall(SYS_futex, const_cast<std::atomic<std::uint32_t>*>(&word), FUTEX_WAIT_BITSET, expected,
                            deadline.abs_timespec(), nullptr, FUTEX_BITSET_MATCH_ANY);
  if (rc == 0) return FutexResult::woken;
  switch (errno) {
    case EAGAIN: return FutexResult::value_changed;
    case EINTR: return FutexResult::interrupted;
    case ETIMEDOUT: return FutexResult::timed_out;
    default: return FutexResult::woken;
  }
}

int futex_wake(const std::atomic<std::uint32_t>& word, int n) noexcept {
  const long rc = ::syscall(SYS_futex, const_cast<std::atomic<std::uint32_t>*>(&word), FUTEX_WAKE, n, nullptr,
                            nullptr, 0);
  return rc < 0 ? 0 : static_cast<int>(rc);
}

}  // namespace multiproc
