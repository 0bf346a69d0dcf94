#include <multiproc/park.hpp>

#include <gtest/gtest.h>
#include "mptest.hpp"

#include <atomic>
#include <chrono>
#include <thread>

namespace mp = multiproc;
using namespace std::chrono_literals;

namespace {
struct Flag {
  mp::ParkingLot lot;
  std::atomic<std::uint32_t> value{0};
};
}  // namespace

TEST(ParkingLot, ReturnsAtOnceWhenReady) {
  mp::ParkingLot lot;
  EXPECT_TRUE(lot.wait_until([] { return true; }, mp::Deadline::after(0ms)));
  EXPECT_EQ(lot.sleepers(), 0u);
}

TEST(ParkingLot, TimesOutNoEarlierThanTheDeadline) {
  mp::ParkingLot lot;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(lot.wait_until([] { return false; }, mp::Deadline::after(100ms)));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms);
  EXPECT_EQ(lot.sleepers(), 0u);
}

TEST(ParkingLot, NotifyWakesAParkedWaiterInAnotherProcess) {
  mptest::Shared<Flag> f;
  const pid_t child = mptest::spawn([&] {
    const bool ok = f->lot.wait_until([&] { return f->value.load() == 1; }, mp::Deadline::after(30s));
    return ok ? 0 : 1;
  });
  // Wait until the child is parked, then publish and notify.
  while (f->lot.sleepers() == 0) std::this_thread::sleep_for(1ms);
  f->value.store(1);
  f->lot.notify_all();
  EXPECT_EQ(mptest::wait_exit(child), 0);
}

TEST(ParkingLot, NoNotificationIsLostUnderARace) {
  // Many rounds of a ping-pong between two processes through two lots: a lost wake-up hangs
  // a round, which the bounded waits turn into a failure.
  struct PingPong {
    mp::ParkingLot ping_lot, pong_lot;
    std::atomic<std::uint32_t> ping{0}, pong{0};
  };
  mptest::Shared<PingPong> s;
  constexpr std::uint32_t rounds = 20000;
  const pid_t child = mptest::spawn([&] {
    for (std::uint32_t i = 1; i <= rounds; ++i) {
      if (!s->ping_lot.wait_until([&] { return s->ping.load() >= i; }, mp::Deadline::after(30s))) return 1;
      s->pong.store(i);
      s->pong_lot.notify_all();
    }
    return 0;
  });
  for (std::uint32_t i = 1; i <= rounds; ++i) {
    s->ping.store(i);
    s->ping_lot.notify_all();
    ASSERT_TRUE(s->pong_lot.wait_until([&] { return s->pong.load() >= i; }, mp::Deadline::after(30s))) << i;
  }
  EXPECT_EQ(mptest::wait_exit(child), 0);
}
