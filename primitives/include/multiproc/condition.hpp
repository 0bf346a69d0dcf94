// multiproc/condition.hpp — Condition: a process-shared condition variable for Lock, RLock or
// any BasicLockable wrapper of them (Python's multiprocessing.Condition; the surface of
// std::condition_variable_any).
//
// Guarantees
//   * No lost notification: wait() reads the condition's sequence word while the caller still
//     holds the lock, then releases it; any notify after that read changes the word, so the
//     waiter either sees the change before parking or is parked and woken by it.
//   * notify(n) lets at least min(n, waiters) of the waiters blocked at the time return (a
//     waiter that is spinning or about to park when the sequence changes returns too, so more
//     may: spurious wake-ups are allowed, as for every condition variable; wait with a
//     predicate). It wakes at most n parked waiters with one FUTEX_WAKE, and makes no system
//     call when nobody is parked. Parked waiters are woken oldest first (the kernel's futex
//     queue is FIFO among non-real-time threads), which is what lets notify_one reach one of
//     the waiters that were blocked when it was called.
//   * Re-acquisition goes through the lock's own lock(): if its previous holder died,
//     OwnerDead comes out of wait*() with the lock held (and an RLock at the depth it had).
//   * An RLock held at depth d (directly or through std::unique_lock<RLock>) is released fully
//     for the wait and restored to depth d, as Python does.
//     A std::unique_lock<M> is waited on through its mutex, so owns_lock() stays true even when
//     re-locking throws. Any other BasicLockable is released once with unlock() and re-taken
//     with lock().
//
// Waiting strategy: notify is one atomic increment of the sequence word plus, only when a
// waiter is parked, one FUTEX_WAKE. A waiter spins ~0.4 µs on the sequence word, then parks on
// a ParkingLot (core/park.hpp).
//
// Memory ordering: the sequence word is read (seq_cst) before the lock is released and
// changed (seq_cst) by notify, which pairs with the parking lot's sleeper count (park.hpp).
// What the notifier wrote is published to the waiter by the lock, not by the condition: the
// waiter re-acquires the lock before it returns.
//
// Sequence wrap: the word is 32 bits; a waiter that sleeps through exactly 2^32 notifications
// would miss them (it is woken by the last one but sees no change).
//
// Layout: 12 bytes (sequence word, ParkingLot), standard layout, no pointers.
#pragma once

#include <multiproc/deadline.hpp>
#include <multiproc/lock.hpp>
#include <multiproc/park.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <type_traits>

namespace multiproc {

namespace detail {

/// Throws Error(permission_denied): waiting on a std::unique_lock that owns no lock.
[[noreturn]] void throw_condition_not_held();

template <class L>
struct is_unique_lock : std::false_type {};
template <class M>
struct is_unique_lock<std::unique_lock<M>> : std::true_type {};

/// What waiting on `L` releases and re-acquires: the RLock (all levels), the mutex of a
/// std::unique_lock (so its owns_lock() never changes), or L itself (one unlock/lock).
template <class L>
class ConditionLockGuard {
 public:
  explicit ConditionLockGuard(L& lock) : lock_(lock) {}
  void release() { unlock(lock_); }
  void reacquire() { relock(lock_); }

 private:
  template <class M>
  void unlock(M& m) {
    if constexpr (is_unique_lock<M>::value) {
      if (!m.owns_lock()) throw_condition_not_held();
      unlock(*m.mutex());
    } else if constexpr (std::is_same_v<M, RLock>) {
      depth_ = m.unlock_all();
    } else {
      m.unlock();
    }
  }
  template <class M>
  void relock(M& m) {
    if constexpr (is_unique_lock<M>::value) {
      relock(*m.mutex());
    } else if constexpr (std::is_same_v<M, RLock>) {
      m.lock_restore(depth_);
    } else {
      m.lock();
    }
  }
  L& lock_;
  std::uint32_t depth_ = 0;
};

}  // namespace detail

class Condition {
 public:
  Condition() noexcept = default;
  Condition(const Condition&) = delete;
  Condition& operator=(const Condition&) = delete;

  /// Releases `lock` (held by the caller), blocks until notified (or spuriously woken), then
  /// re-acquires it through its lock(). Throws what that lock() throws — OwnerDead with the
  /// lock held — and Error(permission_denied) if the caller does not hold `lock`.
  template <basic_lockable L>
  void wait(L& lock) {
    (void)wait_deadline(lock, Deadline::never());
  }
  /// Waits until `pred()` is true (checked with the lock held, first before any wait).
  template <basic_lockable L, class Pred>
  void wait(L& lock, Pred pred) {
    while (!pred()) wait(lock);
  }

  /// As wait(lock), giving up after `timeout`: cv_status::timeout then (never earlier).
  /// The lock is held again on return either way.
  template <basic_lockable L, class Rep, class Period>
  std::cv_status wait_for(L& lock, const std::chrono::duration<Rep, Period>& timeout) {
    return wait_deadline(lock, Deadline::after(timeout)) ? std::cv_status::no_timeout : std::cv_status::timeout;
  }
  /// Waits until `pred()` or the timeout; returns pred() (checked with the lock held).
  template <basic_lockable L, class Rep, class Period, class Pred>
  bool wait_for(L& lock, const std::chrono::duration<Rep, Period>& timeout, Pred pred) {
    return wait_pred(lock, Deadline::after(timeout), pred);
  }
  template <basic_lockable L, class Clock, class Duration>
  std::cv_status wait_until(L& lock, const std::chrono::time_point<Clock, Duration>& t) {
    return wait_deadline(lock, Deadline::at(t)) ? std::cv_status::no_timeout : std::cv_status::timeout;
  }
  template <basic_lockable L, class Clock, class Duration, class Pred>
  bool wait_until(L& lock, const std::chrono::time_point<Clock, Duration>& t, Pred pred) {
    return wait_pred(lock, Deadline::at(t), pred);
  }

  /// Lets one waiter return (see the top of the file). No system call when none is parked.
  void notify_one() noexcept { notify(1); }
  /// Lets `n` waiters return; notify(0) does nothing.
  void notify(std::uint32_t n) noexcept {
    if (n == 0) return;
    // seq_cst: the Dekker pair with a parking waiter's re-check (park.hpp).
    seq_.fetch_add(1, std::memory_order_seq_cst);
    lot_.notify(n);
  }
  /// Lets every waiter return. No system call when none is parked.
  void notify_all() noexcept { notify(UINT32_MAX); }

  /// Snapshot: waiters parked (or committed to park), each having released its lock. For
  /// tests and diagnostics.
  std::uint32_t parked() const noexcept { return lot_.sleepers(); }

 private:
  // true: notified (or spurious); false: the deadline passed. The lock is held again either way.
  template <class L>
  bool wait_deadline(L& lock, const Deadline& deadline) {
    detail::ConditionLockGuard<L> guard(lock);
    // Read while the lock is held: any notify after this point changes the word.
    const std::uint32_t seen = seq_.load(std::memory_order_seq_cst);
    guard.release();
    const bool notified = park(seen, deadline);
    guard.reacquire();
    return notified;
  }
  template <class L, class Pred>
  bool wait_pred(L& lock, const Deadline& deadline, Pred& pred) {
    while (!pred()) {
      if (!wait_deadline(lock, deadline)) return pred();
    }
    return true;
  }
  bool park(std::uint32_t seen, const Deadline& deadline) noexcept;

  std::atomic<std::uint32_t> seq_{0};
  ParkingLot lot_;
};

static_assert(sizeof(Condition) == 12, "a Condition is a sequence word and a ParkingLot: 12 bytes");
static_assert(std::is_standard_layout_v<Condition>, "a Condition lives in shared memory: standard layout");

}  // namespace multiproc
