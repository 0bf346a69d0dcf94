// multiproc/futex.hpp — process-shared futex waits and wakes.
//
// Only SHARED futexes (never FUTEX_PRIVATE_FLAG): the waiters live in other processes, and
// the kernel keys a shared futex by the physical page, so the same word mapped at different
// addresses in two processes is one futex.
//
// Timed waits use FUTEX_WAIT_BITSET with an *absolute* CLOCK_MONOTONIC deadline: a wait
// interrupted by a signal and restarted still ends at the same moment. Timed waits overshoot
// by ~50-140 µs on this class of machine; they never return early with `timed_out`.
//
// These are the only futex system calls in the library; primitives use them (mostly through
// `multiproc/park.hpp`) and never call syscall(SYS_futex) themselves.
#pragma once

#include <multiproc/deadline.hpp>

#include <atomic>
#include <cstdint>

namespace multiproc {

enum class FutexResult {
  woken,          // a FUTEX_WAKE (or a spurious wake-up): re-check your condition
  value_changed,  // *word != expected when the kernel looked (EAGAIN): re-check
  interrupted,    // a signal handler ran (EINTR): re-check, then wait again
  timed_out,      // the deadline passed
};

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t) &&
                  std::atomic<std::uint32_t>::is_always_lock_free,
              "a futex word must be a plain, lock-free 32-bit atomic");

/// Sleeps while `word == expected`, until woken or `deadline` passes.
/// Never throws; an unexpected kernel error is reported as `woken` (callers re-check).
FutexResult futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                       const Deadline& deadline = Deadline::never()) noexcept;

/// Wakes up to `n` waiters of `word` (INT_MAX: all); returns how many were woken.
/// A wake with nobody waiting still costs a system call (~1.2 µs here): callers keep a
/// waiter count and skip the call when it is zero.
int futex_wake(const std::atomic<std::uint32_t>& word, int n) noexcept;

inline int futex_wake_all(const std::atomic<std::uint32_t>& word) noexcept { return futex_wake(word, 0x7fffffff); }

}  // namespace multiproc
