// multiproc/event.hpp — Event: a process-shared flag that waiters block on until it is set
// (Python's multiprocessing.Event).
//
// Guarantees
//   * set() wakes every waiter; wait() returns at once while the flag is set.
//   * A waiter blocked when set() is called returns true even if clear() follows immediately
//     (a set-then-clear pulse is never missed): the word carries a set count next to the flag,
//     and a waiter returns once either changed from what it first saw.
//   * wait_for / wait_until return false on timeout, never before the deadline.
//
// Waiting strategy: the state is one 32-bit word (bit 0: set; bits 1-31: how many times it was
// set, mod 2^31). is_set() and wait() on a set event are one load; set() on a set event is one
// load; set() on a clear one is a CAS plus, only when a waiter is parked, one FUTEX_WAKE of all
// of them. wait() on a clear event spins ~0.4 µs, then parks on a ParkingLot (core/park.hpp).
//
// Memory ordering: set() is seq_cst (a release operation, and the Dekker pair with a parking
// waiter's seq_cst re-check, see park.hpp); is_set() and the first check of wait() are acquire
// loads, so what the setter wrote before set() is visible to whoever sees the flag set.
//
// Layout: 12 bytes (state word, ParkingLot), standard layout, no pointers.
#pragma once

#include <multiproc/deadline.hpp>
#include <multiproc/park.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <type_traits>

namespace multiproc {

class Event {
 public:
  Event() noexcept = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  /// Sets the flag and wakes every waiter. No system call when it is already set or when
  /// nobody is parked.
  void set() noexcept {
    std::uint32_t w = state_.load(std::memory_order_relaxed);
    do {
      if (w & kSet) return;  // already set: every parked waiter was woken by the set that set it
      // seq_cst: publishes the setter's writes and orders against the sleeper count (park.hpp).
    } while (!state_.compare_exchange_weak(w, (w + kOneSet) | kSet, std::memory_order_seq_cst,
                                          std::memory_order_relaxed));
    lot_.notify_all();
  }

  /// Clears the flag. Waiters blocked now stay blocked until the next set().
  void clear() noexcept {
    // relaxed: clearing publishes nothing; a waiter that sees the flag clear just waits.
    state_.fetch_and(~kSet, std::memory_order_relaxed);
  }

  /// Snapshot of the flag (an acquire load: the setter's writes are visible when true).
  bool is_set() const noexcept { return (state_.load(std::memory_order_acquire) & kSet) != 0; }

  /// Snapshot: waiters parked (or committed to park) in wait*(); each of them returns on the
  /// next set(). For tests and diagnostics.
  std::uint32_t parked() const noexcept { return lot_.sleepers(); }

  /// Blocks until the flag is set (or a set() happened since the call began).
  void wait() { (void)wait_deadline(Deadline::never()); }
  /// As wait(), giving up after `timeout`: false then (never earlier).
  template <class Rep, class Period>
  bool wait_for(const std::chrono::duration<Rep, Period>& timeout) {
    return wait_deadline(Deadline::after(timeout));
  }
  /// As wait(), giving up at the time point `t`: false then.
  template <class Clock, class Duration>
  bool wait_until(const std::chrono::time_point<Clock, Duration>& t) {
    return wait_deadline(Deadline::at(t));
  }

 private:
  static constexpr std::uint32_t kSet = 1;
  static constexpr std::uint32_t kOneSet = 2;

  bool wait_deadline(const Deadline& deadline) {
    // acquire: a set flag must show what the setter wrote before set().
    const std::uint32_t seen = state_.load(std::memory_order_acquire);
    return (seen & kSet) != 0 || wait_slow(seen, deadline);
  }
  bool wait_slow(std::uint32_t seen, const Deadline& deadline);

  std::atomic<std::uint32_t> state_{0};
  ParkingLot lot_;
};

static_assert(sizeof(Event) == 12, "an Event is a state word and a ParkingLot: 12 bytes");
static_assert(std::is_standard_layout_v<Event>, "an Event lives in shared memory: standard layout");

}  // namespace multiproc
