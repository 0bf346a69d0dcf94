#include <multiproc/robust_mutex.hpp>

#include <multiproc/futex.hpp>
#include <multiproc/park.hpp>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <pthread.h>
#include <time.h>

namespace multiproc {
namespace {

// The process-wide choice, made once: native robust futexes unless the layout check fails or
// MULTIPROC_LOCK_FALLBACK=1 asks for the pthread path (so tests can exercise it).
bool decide_native() noexcept {
  const char* force = std::getenv("MULTIPROC_LOCK_FALLBACK");
  if (force != nullptr && force[0] == '1') return false;
  return detail::thread_ids().robust_ok;
}

bool process_native() noexcept {
  static const bool native = decide_native();
  return native;
}

}  // namespace

bool RobustMutex::native() noexcept { return process_native(); }

RobustMutex::RobustMutex() noexcept {
  static_assert(offsetof(RobustMutex, word_) == 0 && offsetof(RobustMutex, next_) == 32 &&
                    offsetof(RobustMutex, prev_) == 24,
                "the kernel finds the futex word 32 bytes below the list node, as in a robust pthread_mutex_t");
  static_assert(sizeof(pthread_mutex_t) <= offsetof(RobustMutex, native_),
                "the fallback pthread_mutex_t fits in the native layout's 40 bytes");
  native_ = process_native() ? 1 : 0;
  if (!native_) {
    pthread_mutexattr_t attr;
    ::pthread_mutexattr_init(&attr);
    ::pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    ::pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    ::pthread_mutex_init(reinterpret_cast<pthread_mutex_t*>(this), &attr);
    ::pthread_mutexattr_destroy(&attr);
  }
}

RobustMutex::~RobustMutex() = default;  // nothing to release: the fallback mutex needs no destroy on glibc

bool RobustMutex::locked() const noexcept {
  if (!native_) {
    if (fallback_state_.load(std::memory_order_relaxed) == kFallbackDead) return true;
  }  // glibc keeps the owner TID in the first word of a robust mutex, as we do
  return (word_.load(std::memory_order_relaxed) & kTidMask) != 0;
}

bool RobustMutex::held_by_this_thread() const noexcept {
  const std::uint32_t w = word_.load(std::memory_order_relaxed);
  return (w & kTidMask) == static_cast<std::uint32_t>(this_tid()) && w != kNotRecoverable;
}

bool RobustMutex::recoverable() const noexcept {
  if (!native_) return fallback_state_.load(std::memory_order_relaxed) != kFallbackDead;
  return word_.load(std::memory_order_relaxed) != kNotRecoverable;
}

void RobustMutex::make_consistent() noexcept {
  if (!native_) {
    std::uint32_t expected = kFallbackInconsistent;
    if (fallback_state_.compare_exchange_strong(expected, kFallbackOk, std::memory_order_relaxed))
      ::pthread_mutex_consistent(reinterpret_cast<pthread_mutex_t*>(this));
    return;
  }
  // Only the holder calls this; relaxed: the holder's own later unlock (release) publishes it.
  inconsistent_.store(0, std::memory_order_relaxed);
}

// Takes a word whose owner part is empty (free, or free with OWNER_DIED set by the kernel).
// `keep_waiters`: set FUTEX_WAITERS even if the word lacks it. A waiter that slept must: the
// unlock that woke it cleared the bit, yet others may still sleep behind it (glibc does the same).
LockResult RobustMutex::acquire_free(std::uint32_t seen, detail::ThreadIds& ids, bool keep_waiters) noexcept {
  auto* head = static_cast<ListHead*>(ids.robust_head);
  head->list_op_pending = &next_;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  // Drop OWNER_DIED: we are the owner now.
  const std::uint32_t desired = static_cast<std::uint32_t>(ids.tid) | (seen & kWaiters) | (keep_waiters ? kWaiters : 0u);
  if (!word_.compare_exchange_strong(seen, desired, std::memory_order_acquire, std::memory_order_relaxed)) {
    head->list_op_pending = nullptr;
    return LockResult::timed_out;  // lost the race: caller retries
  }
  enqueue(head);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  head->list_op_pending = nullptr;
  if (seen & kOwnerDied) {
    // relaxed: only the holder reads this flag, and the next holder sees it through the
    // release/acquire pair of unlock/lock (or the kernel's death handling, a full barrier).
    inconsistent_.store(1, std::memory_order_relaxed);
    return LockResult::owner_dead;
  }
  // (A receiver of owner_dead that dies before make_consistent leaves OWNER_DIED set again by
  // the kernel, so owner_dead passes on through the branch above.)
  return LockResult::acquired;
}

// The contended spin (robust_mutex.hpp, "Waiting strategy"): a budget of pauses, spent with
// exponential backoff between reads of the word, because every read pulls the word's cache
// line away from the owner, whose next unlock/lock then misses.
constexpr int kLockSpinPauses = 256;  // ~2.8 µs at 11 ns per pause (this VM's Xeon)
constexpr int kLockBackoffMax = 64;   // reads after 1, 3, 7, ... 127, 191, 255 pauses: 9 in all

LockResult RobustMutex::lock_slow(const Deadline& deadline) noexcept {
  detail::ThreadIds& ids = detail::thread_ids();
  if (!ids.robust_ok) return LockResult::not_recoverable;  // a thread whose robust list we cannot use
  bool slept = false;
  int spins = 0, backoff = 1;
  for (;;) {
    std::uint32_t w = word_.load(std::memory_order_relaxed);
    if (w == kNotRecoverable) return LockResult::not_recoverable;
    if ((w & kTidMask) == 0) {
      const LockResult r = acquire_free(w, ids, slept);
      if (r != LockResult::timed_out) return r;
      continue;
    }
    // (w's owner may be this very thread: a self-deadlock waits out the deadline like any waiter.)
    if (deadline.expired()) return LockResult::timed_out;
    if (spins < kLockSpinPauses && !(w & kWaiters)) {
      for (int i = 0; i < backoff; ++i) cpu_relax();
      spins += backoff;
      if (backoff < kLockBackoffMax) backoff *= 2;
      continue;
    }
    if (!(w & kWaiters)) {
      if (!word_.compare_exchange_weak(w, w | kWaiters, std::memory_order_relaxed, std::memory_order_relaxed)) continue;
      w |= kWaiters;
    }
    const FutexResult fr = futex_wait(word_, w, deadline);
    slept = true;
    if (fr == FutexResult::timed_out) {
      // One last look: the lock may have been freed as the deadline passed.
      std::uint32_t last = word_.load(std::memory_order_relaxed);
      if (last != kNotRecoverable && (last & kTidMask) == 0) {
        const LockResult r = acquire_free(last, ids, true);
        if (r != LockResult::timed_out) return r;
      }
      return last == kNotRecoverable ? LockResult::not_recoverable : LockResult::timed_out;
    }
  }
}

void RobustMutex::wake_one() noexcept { futex_wake(word_, 1); }

void RobustMutex::wake_all() noexcept { futex_wake_all(word_); }

bool RobustMutex::fallback_unlock() noexcept {
  auto* m = reinterpret_cast<pthread_mutex_t*>(this);
  if (!held_by_this_thread()) return false;
  std::uint32_t expected = kFallbackInconsistent;
  fallback_state_.compare_exchange_strong(expected, kFallbackDead, std::memory_order_relaxed);
  return ::pthread_mutex_unlock(m) == 0;  // glibc makes an inconsistent mutex not recoverable
}

LockResult RobustMutex::fallback_lock(const Deadline* deadline) noexcept {
  // Never pthread_mutex_trylock a possibly not-recoverable mutex: glibc 2.36 returns
  // ENOTRECOVERABLE yet leaves it locked by the caller. Our own flag is checked first.
  auto* m = reinterpret_cast<pthread_mutex_t*>(this);
  if (fallback_state_.load(std::memory_order_relaxed) == kFallbackDead) return LockResult::not_recoverable;
  int rc;
  if (deadline == nullptr) {
    rc = ::pthread_mutex_trylock(m);
    if (rc == EBUSY) return LockResult::timed_out;
  } else if (deadline->infinite()) {
    rc = ::pthread_mutex_lock(m);
  } else {
    rc = ::pthread_mutex_clocklock(m, CLOCK_MONOTONIC, deadline->abs_timespec());
    if (rc == ETIMEDOUT) return LockResult::timed_out;
  }
  if (rc == 0) return LockResult::acquired;
  if (rc == EOWNERDEAD) {
    fallback_state_.store(kFallbackInconsistent, std::memory_order_relaxed);
    return LockResult::owner_dead;
  }
  fallback_state_.store(kFallbackDead, std::memory_order_relaxed);
  return LockResult::not_recoverable;
}

}  // namespace multiproc
