// multiproc/barrier.hpp — Barrier: `parties` processes or threads wait until all have
// arrived, then all go on (Python's multiprocessing.Barrier, without the action callable).
//
// Guarantees
//   * wait() returns each arrival's index in the cycle, 0 for the first to arrive up to
//     parties - 1 for the last (which releases the others): a permutation of 0..parties-1
//     per cycle. The barrier is then empty and reusable at once.
//   * Broken state, as in Python: abort() breaks it; a wait_for/wait_until that times out
//     breaks it (and returns an empty optional to its caller). Every waiter of a broken cycle,
//     and every later caller until reset(), throws Error(broken_barrier).
//   * reset() returns it to empty and unbroken; the waiters of the cycle it ends throw
//     Error(broken_barrier) (as Python's BrokenBarrierError). It never waits for them to leave,
//     so a waiter killed while parked can never wedge it.
//   * A participant killed while parked still counts as arrived (as in Python, the barrier
//     cannot know it died); waits with a timeout turn that into a broken barrier.
//
// Waiting strategy: arrival is one CAS on a 64-bit state word; the last arrival's CAS starts
// the next cycle and wakes the parked waiters with one FUTEX_WAKE (none if nobody parked).
// Others spin ~0.4 µs, then park on a ParkingLot (core/park.hpp).
//
// State word, one 64-bit atomic so every transition is a single CAS:
//   bits  0-19  arrivals in the current cycle (so parties <= 2^20 - 1)
//   bit  20     broken
//   bits 21-31  cycle number, mod 2^11
//   bits 32-63  outcome history: bit (cycle mod 32) is 1 when that cycle ended by reset(),
//               0 when it completed. A waiter woken after its cycle ended reads its own
//               outcome there, even if more cycles have run meanwhile; only a waiter
//               descheduled for more than 32 (or exactly 2048) whole cycles cannot tell, and
//               then conservatively throws broken_barrier (after 32) — a bound no real
//               program approaches, since each cycle needs every party to arrive.
//
// Memory ordering: every transition is a seq_cst CAS (the Dekker pair with the parking lot's
// sleeper count, park.hpp), so everything a party wrote before wait() is visible to every
// party after its wait() returns, as with std::barrier.
//
// Layout: 24 bytes (state, parties, ParkingLot), standard layout, no pointers.
#pragma once

#include <multiproc/deadline.hpp>
#include <multiproc/park.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <type_traits>

namespace multiproc {

class Barrier {
 public:
  static constexpr std::uint32_t kMaxParties = (1u << 20) - 1;

  /// A barrier for `parties` (1..kMaxParties, else Error(std::errc::invalid_argument)).
  explicit Barrier(std::uint32_t parties);
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;

  /// Blocks until `parties` callers have arrived; returns this caller's arrival index.
  /// Throws Error(broken_barrier) if the barrier is or becomes broken, or is reset, first.
  std::uint32_t wait();
  /// As wait(), but gives up after `timeout` (never earlier): then breaks the barrier (the
  /// other waiters throw broken_barrier) and returns an empty optional.
  template <class Rep, class Period>
  std::optional<std::uint32_t> wait_for(const std::chrono::duration<Rep, Period>& timeout) {
    return wait_deadline(Deadline::after(timeout));
  }
  /// As wait_for, until the time point `t`.
  template <class Clock, class Duration>
  std::optional<std::uint32_t> wait_until(const std::chrono::time_point<Clock, Duration>& t) {
    return wait_deadline(Deadline::at(t));
  }

  /// Breaks the barrier: current waiters and every later caller throw Error(broken_barrier)
  /// until reset(). Wakes parked waiters (no system call if none).
  void abort() noexcept;
  /// Back to empty and unbroken; the current cycle's waiters throw Error(broken_barrier).
  void reset() noexcept;

  /// Snapshot: broken (by abort() or a timeout) and not reset since.
  bool broken() const noexcept;
  /// Snapshot: parties waiting in the current cycle (0 while broken).
  std::uint32_t n_waiting() const noexcept;
  std::uint32_t parties() const noexcept { return parties_; }

 private:
  std::optional<std::uint32_t> wait_deadline(const Deadline& deadline);
  // After the cycle `cycle` ended (state `now`): its waiters' index, or a broken_barrier throw.
  std::uint32_t outcome(std::uint64_t now, std::uint32_t cycle, std::uint32_t index) const;
  void wake_all() noexcept { lot_.notify_all(); }

  std::atomic<std::uint64_t> state_{0};
  std::uint32_t parties_;  // immutable after construction
  std::uint32_t reserved_ = 0;
  ParkingLot lot_;
};

static_assert(sizeof(Barrier) == 24, "a Barrier is a 64-bit state, its party count and a ParkingLot: 24 bytes");
static_assert(std::is_standard_layout_v<Barrier>, "a Barrier lives in shared memory: standard layout");
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "the barrier's state word is one lock-free 64-bit atomic");

}  // namespace multiproc
