// multiproc/lock.hpp — Lock and RLock: robust, process-shared mutexes (Python's
// multiprocessing.Lock / RLock) that survive a holder killed mid-section.
//
// Guarantees
//   * Mutual exclusion across every thread of every process that maps the lock.
//   * Robustness (POSIX robust-mutex semantics in C++ form): when a holder thread or process
//     ends in any way while holding the lock, the next lock(), try_lock(), try_lock_for() or
//     try_lock_until() acquires it and throws `OwnerDead` *while holding it*. Repair the
//     protected state, call make_consistent(), unlock(). An unlock() without make_consistent()
//     makes the lock not recoverable: every later acquisition throws Error(not_recoverable) at
//     once (never after waiting out a deadline). A receiver of OwnerDead that itself dies
//     passes OwnerDead on to the next locker.
//   * A fork()ed child never owns a lock its parent holds.
//   * Lock meets the standard's TimedLockable requirements (static_asserted below): it works
//     with std::scoped_lock, std::unique_lock, std::lock and Condition.
//
// Waiting strategy and memory ordering are RobustMutex's (core/robust_mutex.hpp): the
// uncontended lock and unlock are one CAS and one exchange plus the robust-list links, inline,
// with no system call; a contended locker spins briefly with `pause`, then sleeps on the futex
// word (FUTEX_WAITERS set), and unlock wakes one sleeper only when one is recorded. A
// successful acquisition is an acquire operation, unlock a release operation.
//
// Backend: the native robust-futex path, linked into glibc's per-thread robust list; or, when
// that layout check fails (another libc) or MULTIPROC_LOCK_FALLBACK=1 is set at start-up, a
// robust process-shared pthread_mutex_t in the same bytes. `Lock::robust_backend()` says which.
//
// Layout: Lock is 48 bytes, RLock 56; both standard layout with no pointers to shared data,
// valid at any address in any MAP_SHARED mapping (an Arena, or mmap).
#pragma once

#include <multiproc/deadline.hpp>
#include <multiproc/error.hpp>
#include <multiproc/robust_mutex.hpp>

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <mutex>
#include <type_traits>

namespace multiproc {

// ---- The standard's lockable requirements ([thread.req.lockable]) as concepts ----------------

/// BasicLockable: lock() and unlock().
template <class L>
concept basic_lockable = requires(L& l) {
  l.lock();
  l.unlock();
};

/// Lockable: BasicLockable plus a try_lock() whose result tests as bool.
template <class L>
concept lockable = basic_lockable<L> && requires(L& l) {
  { l.try_lock() } -> std::convertible_to<bool>;
};

/// TimedLockable: Lockable plus try_lock_for(duration) and try_lock_until(time_point).
template <class L>
concept timed_lockable = lockable<L> && requires(L& l, std::chrono::milliseconds d,
                                                 std::chrono::steady_clock::time_point t) {
  { l.try_lock_for(d) } -> std::convertible_to<bool>;
  { l.try_lock_until(t) } -> std::convertible_to<bool>;
};

/// Which implementation the robust locks of this process use.
enum class LockBackend {
  robust_futex,    // native: TID futex word linked into glibc's kernel-registered robust list
  pthread_robust,  // fallback: a robust, process-shared pthread_mutex_t
};

namespace detail {
/// Throws what a failed acquisition reports: OwnerDead (holding the lock), Error(not_recoverable)
/// or, for a blocking call that could not complete, Error(timeout). `who` is "Lock::lock" etc.
[[noreturn]] void throw_lock_result(LockResult r, const char* who);
/// Throws Error(permission_denied), or Error(not_recoverable) when `m` is not recoverable.
[[noreturn]] void throw_not_owner(const RobustMutex& m, const char* who);
}  // namespace detail

// ---- Lock -----------------------------------------------------------------------------------

class Lock {
 public:
  Lock() noexcept = default;
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

  /// Blocks until this thread holds the lock.
  /// Throws OwnerDead (holding the lock) if the previous holder died holding it;
  /// Error(not_recoverable) at once if the lock is not recoverable. Locking a Lock this thread
  /// already holds deadlocks (use RLock to re-enter).
  void lock() {
    const LockResult r = m_.lock();
    if (r != LockResult::acquired) [[unlikely]]
      detail::throw_lock_result(r, "Lock::lock");
  }

  /// Never blocks: true if acquired, false if another thread holds it.
  /// Throws like lock(): OwnerDead (holding it), Error(not_recoverable).
  bool try_lock() {
    const LockResult r = m_.try_lock();
    if (r == LockResult::acquired) [[likely]]
      return true;
    if (r == LockResult::timed_out) return false;
    detail::throw_lock_result(r, "Lock::try_lock");
  }

  /// Blocks until acquired (true) or `timeout` has passed (false; never earlier).
  /// Throws like lock(); on a not-recoverable lock at once, without waiting.
  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout) {
    return lock_until(Deadline::after(timeout), "Lock::try_lock_for");
  }

  /// Blocks until acquired (true) or the time point `t` (false). A clock other than
  /// steady_clock is converted once, at the call. Throws like lock().
  template <class Clock, class Duration>
  bool try_lock_until(const std::chrono::time_point<Clock, Duration>& t) {
    return lock_until(Deadline::at(t), "Lock::try_lock_until");
  }

  /// Releases the lock. After OwnerDead without make_consistent(), releases it *not
  /// recoverable*. Throws Error(permission_denied) when this thread does not hold the lock
  /// (never held, already released, held by another thread or process: the owner is a
  /// thread, as in a robust pthread mutex, so only it may release — pthread says EPERM), and
  /// Error(not_recoverable) on a lock that is not recoverable. Neither changes the lock.
  void unlock() {
    if (!m_.unlock()) [[unlikely]]
      detail::throw_not_owner(m_, "Lock::unlock");
  }

  /// After OwnerDead, by the thread holding the lock: declares the protected state repaired,
  /// so unlock() releases it normally. No effect when this thread does not hold the lock or
  /// the lock is consistent.
  void make_consistent() noexcept {
    if (m_.held_by_this_thread()) m_.make_consistent();
  }

  /// Snapshot: held by some thread, or not recoverable (Python's Lock.locked()).
  bool locked() const noexcept { return m_.locked(); }
  /// Snapshot: held by the calling thread.
  bool held_by_this_thread() const noexcept { return m_.held_by_this_thread(); }
  /// False once an unlock() without make_consistent() after OwnerDead has poisoned the lock.
  bool recoverable() const noexcept { return m_.recoverable(); }

  /// The backend every Lock and RLock of this process uses (chosen once per process).
  static LockBackend robust_backend() noexcept {
    return RobustMutex::native() ? LockBackend::robust_futex : LockBackend::pthread_robust;
  }

 private:
  bool lock_until(const Deadline& deadline, const char* who) {
    const LockResult r = m_.lock(deadline);
    if (r == LockResult::acquired) [[likely]]
      return true;
    if (r == LockResult::timed_out) return false;
    detail::throw_lock_result(r, who);
  }

  RobustMutex m_;
};

static_assert(timed_lockable<Lock>, "Lock meets TimedLockable: std::scoped_lock, std::unique_lock and try_lock_for work");
static_assert(sizeof(Lock) == 48, "a Lock is exactly its RobustMutex: 48 bytes");
static_assert(std::is_standard_layout_v<Lock>, "a Lock lives in shared memory: standard layout");

// ---- RLock ----------------------------------------------------------------------------------

/// A recursive Lock: the holding thread may lock again and must unlock as often. The owner is
/// the robust word's TID, so the same robustness contract holds; an RLock recovered from a
/// dead owner is held at depth 1 (the dead owner's depth is gone with it).
class RLock {
 public:
  RLock() noexcept = default;
  RLock(const RLock&) = delete;
  RLock& operator=(const RLock&) = delete;

  /// Re-entry by the holder: depth + 1, no atomic read-modify-write. Otherwise as Lock::lock().
  void lock() {
    if (reenter()) return;
    const LockResult r = m_.lock();
    if (r != LockResult::acquired) [[unlikely]]
      acquired_or_throw(r, "RLock::lock");
    depth_.store(1, std::memory_order_relaxed);
  }
  bool try_lock() {
    if (reenter()) return true;
    const LockResult r = m_.try_lock();
    if (r == LockResult::timed_out) return false;
    if (r != LockResult::acquired) [[unlikely]]
      acquired_or_throw(r, "RLock::try_lock");
    depth_.store(1, std::memory_order_relaxed);
    return true;
  }
  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout) {
    return lock_until(Deadline::after(timeout), "RLock::try_lock_for");
  }
  template <class Clock, class Duration>
  bool try_lock_until(const std::chrono::time_point<Clock, Duration>& t) {
    return lock_until(Deadline::at(t), "RLock::try_lock_until");
  }

  /// Depth - 1; releases the lock when it reaches 0 (not recoverable after an unrepaired
  /// OwnerDead). Throws Error(permission_denied) when this thread does not hold it.
  void unlock() {
    if (!m_.held_by_this_thread()) [[unlikely]]
      detail::throw_not_owner(m_, "RLock::unlock");
    // relaxed: depth_ is only ever touched by the holder (see depth_).
    const std::uint32_t d = depth_.load(std::memory_order_relaxed);
    if (d > 1) {
      depth_.store(d - 1, std::memory_order_relaxed);
      return;
    }
    depth_.store(0, std::memory_order_relaxed);
    if (!m_.unlock()) [[unlikely]]
      detail::throw_not_owner(m_, "RLock::unlock");
  }

  /// As Lock::make_consistent().
  void make_consistent() noexcept {
    if (m_.held_by_this_thread()) m_.make_consistent();
  }

  bool locked() const noexcept { return m_.locked(); }
  bool held_by_this_thread() const noexcept { return m_.held_by_this_thread(); }
  bool recoverable() const noexcept { return m_.recoverable(); }

  /// How many times the calling thread holds the lock (0: not held by it).
  std::uint32_t depth() const noexcept {
    return m_.held_by_this_thread() ? depth_.load(std::memory_order_relaxed) : 0;
  }

  /// For Condition (Python's _release_save): releases every level this thread holds and
  /// returns the depth to restore. Throws Error(permission_denied) when it does not hold it.
  std::uint32_t unlock_all();
  /// For Condition (Python's _acquire_restore): blocks until acquired, then holds it at
  /// `depth`. If the previous holder died, throws OwnerDead holding the lock *at `depth`*, so
  /// the caller's scopes unwind their unlocks exactly as after a successful wait.
  void lock_restore(std::uint32_t depth);

 private:
  bool reenter() {
    if (!m_.held_by_this_thread()) return false;
    // relaxed: only the holder reads or writes depth_.
    const std::uint32_t d = depth_.load(std::memory_order_relaxed);
    if (d == UINT32_MAX) [[unlikely]]
      throw_depth_overflow();
    depth_.store(d + 1, std::memory_order_relaxed);
    return true;
  }
  bool lock_until(const Deadline& deadline, const char* who) {
    if (reenter()) return true;
    const LockResult r = m_.lock(deadline);
    if (r == LockResult::timed_out) return false;
    if (r != LockResult::acquired) [[unlikely]]
      acquired_or_throw(r, who);
    depth_.store(1, std::memory_order_relaxed);
    return true;
  }
  // owner_dead: held at depth 1, throws OwnerDead. not_recoverable/timed_out: throws.
  [[noreturn]] void acquired_or_throw(LockResult r, const char* who);
  [[noreturn]] static void throw_depth_overflow();

  RobustMutex m_;
  // The holder's recursion depth. Atomic only so that a new holder's write after the kernel
  // handed it the lock of a dead owner is not a formal data race; every access is relaxed,
  // because only the current holder touches it and lock/unlock order the hand-over.
  std::atomic<std::uint32_t> depth_{0};
  [[maybe_unused]] std::uint32_t reserved_ = 0;
};

static_assert(timed_lockable<RLock>, "RLock meets TimedLockable too");
static_assert(sizeof(RLock) == 56, "an RLock is a RobustMutex plus a 32-bit depth, padded: 56 bytes");
static_assert(std::is_standard_layout_v<RLock>, "an RLock lives in shared memory: standard layout");

}  // namespace multiproc
