// multiproc/semaphore.hpp — Semaphore and BoundedSemaphore: process-shared counting
// semaphores sized at run time (Python's multiprocessing.Semaphore / BoundedSemaphore; the
// surface of std::counting_semaphore).
//
// Guarantees
//   * acquire() takes one unit, blocking while the count is 0; release(n) adds n units and
//     wakes at most n parked waiters. No unit is ever lost or duplicated: a woken waiter always
//     re-tries, so a release is never "used up" by a waiter that did not take a unit.
//   * The bound is stored in the semaphore itself (UINT32_MAX for Semaphore, the initial value
//     for BoundedSemaphore), so a BoundedSemaphore used through a `Semaphore&` still refuses to
//     go above it: no virtual functions, nothing process-local inside.
//   * A process killed while parked in acquire() leaves the count right; it only leaves the
//     parking lot's sleeper count one too high, which costs later releases a needless wake-up
//     system call, never a missed one.
//
// Waiting strategy: the count is a 32-bit word changed by CAS. try_acquire and the fast path
// of acquire are one load and one CAS, no system call. A blocked acquire spins ~0.4 µs, then
// parks on a ParkingLot (core/park.hpp); release makes no system call unless a waiter is
// parked, and then one FUTEX_WAKE for at most n waiters.
//
// Memory ordering: a successful acquire is an acquire operation on the count and release a
// release operation, so whatever a releaser wrote before release() is visible to the acquirer
// that takes its unit (as std::counting_semaphore). The release CAS and the parked waiter's
// re-check are seq_cst: the Dekker pair with the parking lot's sleeper count (park.hpp).
//
// Layout: 16 bytes (count, bound, ParkingLot), standard layout, no pointers; BoundedSemaphore
// adds nothing.
#pragma once

#include <multiproc/deadline.hpp>
#include <multiproc/park.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <type_traits>

namespace multiproc {

class Semaphore {
 public:
  /// A semaphore holding `initial` units, unbounded (up to UINT32_MAX).
  explicit Semaphore(std::uint32_t initial) noexcept : count_(initial), max_(UINT32_MAX) {}
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  /// Blocks until it takes a unit.
  void acquire() {
    if (!try_acquire()) acquire_slow(Deadline::never());
  }
  /// Takes a unit if one is available now; never blocks.
  bool try_acquire() noexcept {
    std::uint32_t c = count_.load(std::memory_order_relaxed);
    while (c != 0) {
      // acquire on success: see the releaser's writes. relaxed on failure: we only retry.
      if (count_.compare_exchange_weak(c, c - 1, std::memory_order_acquire, std::memory_order_relaxed)) return true;
    }
    return false;
  }
  /// Blocks until it takes a unit (true) or `timeout` has passed (false; never earlier).
  template <class Rep, class Period>
  bool try_acquire_for(const std::chrono::duration<Rep, Period>& timeout) {
    return try_acquire() || acquire_slow(Deadline::after(timeout));
  }
  /// Blocks until it takes a unit (true) or the time point `t` (false).
  template <class Clock, class Duration>
  bool try_acquire_until(const std::chrono::time_point<Clock, Duration>& t) {
    return try_acquire() || acquire_slow(Deadline::at(t));
  }

  /// Adds `n` units and wakes at most `n` parked waiters (none parked: no system call).
  /// Throws Error(std::errc::value_too_large) — changing nothing — when the count would exceed
  /// the bound: a BoundedSemaphore's initial value, else UINT32_MAX. release(0) does nothing.
  void release(std::uint32_t n = 1) {
    std::uint32_t c = count_.load(std::memory_order_relaxed);
    do {
      if (n > max_ - c) [[unlikely]]
        throw_over_bound(c, n);
      // seq_cst: the Dekker pair with a parking waiter (park.hpp); also the release operation.
    } while (!count_.compare_exchange_weak(c, c + n, std::memory_order_seq_cst, std::memory_order_relaxed));
    if (n != 0) lot_.notify(n);
  }

  /// Snapshot of the units available (Python's get_value()).
  std::uint32_t value() const noexcept { return count_.load(std::memory_order_relaxed); }
  /// Snapshot: acquirers parked (or committed to park). For tests and diagnostics.
  std::uint32_t parked() const noexcept { return lot_.sleepers(); }
  /// The most units it may hold: UINT32_MAX, or a BoundedSemaphore's initial value.
  std::uint32_t max() const noexcept { return max_; }

 protected:
  Semaphore(std::uint32_t initial, std::uint32_t max) noexcept : count_(initial), max_(max) {}

 private:
  bool acquire_slow(const Deadline& deadline);
  [[noreturn]] void throw_over_bound(std::uint32_t count, std::uint32_t n) const;

  std::atomic<std::uint32_t> count_;
  std::uint32_t max_;  // immutable after construction
  ParkingLot lot_;
};

/// A Semaphore whose release() above its initial value throws Error (Python's
/// BoundedSemaphore: "released too many times").
class BoundedSemaphore : public Semaphore {
 public:
  explicit BoundedSemaphore(std::uint32_t initial) noexcept : Semaphore(initial, initial) {}
};

static_assert(sizeof(Semaphore) == 16, "a Semaphore is count, bound and a ParkingLot: 16 bytes");
static_assert(sizeof(BoundedSemaphore) == sizeof(Semaphore), "a BoundedSemaphore adds no state: its bound is in the base");
static_assert(std::is_standard_layout_v<Semaphore> && std::is_standard_layout_v<BoundedSemaphore>,
              "semaphores live in shared memory: standard layout, no vtable");

}  // namespace multiproc
