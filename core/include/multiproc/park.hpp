// multiproc/park.hpp — spin-then-park: the one waiting strategy every primitive shares.
//
// A `ParkingLot` is 8 bytes of shared memory (an epoch futex word and a sleeper count) that
// waiters park on until some condition of *their* state becomes true. It owns no state of its
// own beyond that: the condition is the caller's predicate.
//
// Contract
//   waiter:   lot.wait_until(ready, deadline)  -> true once ready() is true, false at deadline
//   notifier: make ready() true with a seq_cst atomic operation, then lot.notify_*()
//   A notify after which ready() is true is never lost, and notify makes no system call
//   when nobody is parked (it reads the sleeper count: one load).
//
// Waiting strategy and its cost reasons (numbers measured on a 2-vCPU VM):
//   1. spin: up to `kSpinIterations` checks of ready() with `pause` between them, ~2-5 µs.
//      A sleeping futex hand-off costs ~10 µs and the waker pays ~1.2 µs for FUTEX_WAKE,
//      so a few µs of spinning wins whenever the other side is mid-operation on another
//      CPU, and costs little when it is not. The budget is deliberately short: on 2 vCPUs
//      the side we wait for may be descheduled behind us, and spinning then only delays it.
//   2. park: register as a sleeper (seq_cst RMW), re-check ready(), FUTEX_WAIT on the epoch.
//      A parked waiter uses no CPU until notified.
//
// Memory ordering: the Dekker pair is (notifier: seq_cst change of state, then seq_cst load
// of `sleepers_`) against (waiter: seq_cst RMW of `sleepers_`, then seq_cst load inside
// ready()). Sequential consistency forbids both sides missing each other: either the notifier
// sees the sleeper and wakes it, or the waiter sees the new state and does not sleep. The
// epoch is read before registering, so a notify that lands between the re-check and the
// FUTEX_WAIT changes the epoch and the kernel refuses to sleep (EAGAIN).
#pragma once

#include <multiproc/deadline.hpp>
#include <multiproc/futex.hpp>

#include <atomic>
#include <cstdint>

namespace multiproc {

/// One `pause` (x86) / `yield` (arm) hint for spin loops.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#else
  std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
}

/// Spin budget before parking: ~2-5 µs of `pause` on current x86 (a pause is 10-140 cycles
/// depending on the core), i.e. well under the ~10 µs a sleeping hand-off costs.
inline constexpr int kSpinIterations = 128;

/// Spins up to `iterations` times until `ready()`; returns whether it became true.
template <class Pred>
bool spin_until(Pred&& ready, int iterations = kSpinIterations) {
  for (int i = 0; i < iterations; ++i) {
    if (ready()) return true;
    cpu_relax();
  }
  return ready();
}

class ParkingLot {
 public:
  constexpr ParkingLot() noexcept = default;
  ParkingLot(const ParkingLot&) = delete;
  ParkingLot& operator=(const ParkingLot&) = delete;

  /// Blocks until `ready()` returns true (returns true) or `deadline` passes with it still
  /// false (returns false). `ready` may be called many times, from this thread only; it must
  /// read the state it checks with seq_cst loads (or be preceded by a seq_cst fence).
  /// Does not throw unless `ready` throws.
  template <class Pred>
  bool wait_until(Pred&& ready, const Deadline& deadline = Deadline::never(), bool spin = true) {
    if (spin ? spin_until(ready) : ready()) return true;
    for (;;) {
      if (deadline.expired()) return ready();
      const std::uint32_t epoch = epoch_.load(std::memory_order_seq_cst);
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      if (ready()) {
        sleepers_.fetch_sub(1, std::memory_order_relaxed);  // nothing published by this decrement
        return true;
      }
      const FutexResult r = futex_wait(epoch_, epoch, deadline);
      sleepers_.fetch_sub(1, std::memory_order_relaxed);
      if (ready()) return true;
      if (r == FutexResult::timed_out) return false;
    }
  }

  /// Wakes up to `n` parked waiters. Call after a seq_cst operation that made their
  /// condition true. No system call when nobody is parked.
  void notify(std::uint32_t n) noexcept {
    if (sleepers_.load(std::memory_order_seq_cst) == 0) return;
    epoch_.fetch_add(1, std::memory_order_seq_cst);
    futex_wake(epoch_, n > 0x7fffffffu ? 0x7fffffff : static_cast<int>(n));
  }
  void notify_one() noexcept { notify(1); }
  void notify_all() noexcept { notify(0x7fffffffu); }

  /// Snapshot of how many waiters are registered as parked (or about to park).
  std::uint32_t sleepers() const noexcept { return sleepers_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint32_t> epoch_{0};
  std::atomic<std::uint32_t> sleepers_{0};
};

static_assert(sizeof(ParkingLot) == 8, "a ParkingLot is two 32-bit words, nothing else");
static_assert(std::is_standard_layout_v<ParkingLot>, "a ParkingLot lives in shared memory: standard layout");

}  // namespace multiproc
