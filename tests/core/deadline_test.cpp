#include <multiproc/deadline.hpp>
#include <multiproc/futex.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <pthread.h>
#include <thread>

namespace mp = multiproc;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(Deadline, NeverIsInfiniteAndHasNoTimespec) {
  const auto d = mp::Deadline::never();
  EXPECT_TRUE(d.infinite());
  EXPECT_FALSE(d.expired());
  EXPECT_EQ(d.abs_timespec(), nullptr);
  EXPECT_EQ(d.remaining(), Clock::duration::max());
}

TEST(Deadline, AfterIsAbsoluteOnTheMonotonicClock) {
  const auto before = Clock::now();
  const auto d = mp::Deadline::after(50ms);
  const timespec* ts = d.abs_timespec();
  ASSERT_NE(ts, nullptr);
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  const auto abs_ns = ts->tv_sec * 1'000'000'000LL + ts->tv_nsec;
  const auto now_ns = now.tv_sec * 1'000'000'000LL + now.tv_nsec;
  EXPECT_GT(abs_ns, now_ns);
  EXPECT_GE(d.time_point(), before + 50ms);
}

TEST(Deadline, NegativeAndZeroDurationsAreAlreadyExpired) {
  EXPECT_TRUE(mp::Deadline::after(0ms).expired());
  EXPECT_TRUE(mp::Deadline::after(-5s).expired());
}

TEST(Deadline, HugeDurationsSaturateToNever) {
  EXPECT_TRUE(mp::Deadline::after(std::chrono::hours::max()).infinite());
  EXPECT_TRUE(mp::Deadline::after(std::chrono::nanoseconds::max()).infinite());
  EXPECT_TRUE(mp::Deadline::at(Clock::time_point::max()).infinite());
}

TEST(Deadline, SystemClockPointsAreConvertedOnce) {
  const auto d = mp::Deadline::at(std::chrono::system_clock::now() + 1h);
  EXPECT_FALSE(d.infinite());
  EXPECT_GT(d.remaining(), 59min);
  EXPECT_TRUE(mp::Deadline::at(std::chrono::system_clock::now() - 1s).expired());
}

TEST(Futex, TimedWaitReturnsNoEarlierThanTheDeadline) {
  std::atomic<std::uint32_t> word{7};
  const auto start = Clock::now();
  const auto d = mp::Deadline::after(100ms);
  mp::FutexResult r;
  do r = mp::futex_wait(word, 7, d);
  while (r != mp::FutexResult::timed_out);
  EXPECT_GE(Clock::now() - start, 100ms);  // no upper bound: timing asserts flake
}

TEST(Futex, WaitOnAChangedValueReturnsAtOnce) {
  std::atomic<std::uint32_t> word{1};
  EXPECT_EQ(mp::futex_wait(word, 2, mp::Deadline::after(10s)), mp::FutexResult::value_changed);
}

TEST(Futex, WakeWithNobodyWaitingWakesNobody) {
  std::atomic<std::uint32_t> word{0};
  EXPECT_EQ(mp::futex_wake(word, 1), 0);
}

extern "C" void noop_handler(int) {}

TEST(Futex, SignalsDoNotStretchATimedWait) {
  // A thread pelted with signals keeps re-waiting against the same absolute deadline.
  struct sigaction sa {};
  sa.sa_handler = noop_handler;
  sigaction(SIGUSR1, &sa, nullptr);
  std::atomic<std::uint32_t> word{0};
  std::atomic<bool> done{false};
  Clock::time_point finished;
  const auto start = Clock::now();
  std::thread waiter([&] {
    const auto d = mp::Deadline::after(200ms);
    while (mp::futex_wait(word, 0, d) != mp::FutexResult::timed_out) {
    }
    finished = Clock::now();
    done = true;
  });
  const pthread_t h = waiter.native_handle();
  while (!done) {
    pthread_kill(h, SIGUSR1);
    std::this_thread::sleep_for(5ms);
  }
  waiter.join();
  EXPECT_GE(finished - start, 200ms);
}
