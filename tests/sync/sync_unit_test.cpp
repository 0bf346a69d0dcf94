// Semaphore, Event, Condition, Barrier and Value within one process (threads). Thread-level
// only, so it also runs under TSan.
#include <multiproc/barrier.hpp>
#include <multiproc/condition.hpp>
#include <multiproc/event.hpp>
#include <multiproc/lock.hpp>
#include <multiproc/semaphore.hpp>
#include <multiproc/value.hpp>

#include <gtest/gtest.h>
#include "sync_test_util.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <numeric>
#include <thread>
#include <vector>

namespace mp = multiproc;
using namespace std::chrono_literals;
using synctest::error_of;

namespace {
// Polls `cond` every millisecond for up to 30 s (the test fails, rather than hangs, if never).
template <class F>
bool eventually(F cond) {
  const auto end = std::chrono::steady_clock::now() + 30s;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}
}  // namespace

// ---- Semaphore ------------------------------------------------------------------------------

TEST(SemaphoreUnit, CountsUnits) {
  mp::Semaphore s(2);
  EXPECT_EQ(s.value(), 2u);
  EXPECT_TRUE(s.try_acquire());
  s.acquire();
  EXPECT_FALSE(s.try_acquire());
  EXPECT_EQ(s.value(), 0u);
  s.release(3);
  EXPECT_EQ(s.value(), 3u);
  s.release(0);
  EXPECT_EQ(s.value(), 3u);
  EXPECT_EQ(s.max(), UINT32_MAX);
}

TEST(SemaphoreUnit, TimedAcquireGivesUpNoEarlierThanItsDeadline) {
  mp::Semaphore s(0);
  synctest::expect_gives_up_no_earlier([&] { return s.try_acquire_for(100ms); });
  synctest::expect_gives_up_no_earlier([&] { return s.try_acquire_until(std::chrono::steady_clock::now() + 100ms); });
  EXPECT_FALSE(s.try_acquire_for(-1ms));
  EXPECT_EQ(s.value(), 0u);
}

TEST(SemaphoreUnit, ReleaseNWakesAtMostNWaiters) {
  mp::Semaphore s(0);
  std::atomic<int> done{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i)
    ts.emplace_back([&] {
      if (s.try_acquire_for(30s)) done.fetch_add(1);
    });
  ASSERT_TRUE(eventually([&] { return s.parked() == 4; }));
  s.release(2);
  ASSERT_TRUE(eventually([&] { return done.load() == 2; }));
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(done.load(), 2) << "two units admit exactly two waiters";
  EXPECT_EQ(s.value(), 0u);
  s.release(2);
  for (auto& t : ts) t.join();
  EXPECT_EQ(done.load(), 4);
}

TEST(SemaphoreUnit, OverflowIsAnErrorThatChangesNothing) {
  mp::Semaphore s(UINT32_MAX - 1);
  s.release();
  EXPECT_EQ(error_of([&] { s.release(); }), std::errc::value_too_large);
  EXPECT_EQ(s.value(), UINT32_MAX);
}

TEST(BoundedSemaphoreUnit, ReleaseAboveTheInitialValueThrows) {
  mp::BoundedSemaphore b(2);
  EXPECT_EQ(b.max(), 2u);
  EXPECT_EQ(error_of([&] { b.release(); }), std::errc::value_too_large);
  b.acquire();
  EXPECT_EQ(error_of([&] { b.release(2); }), std::errc::value_too_large);
  EXPECT_EQ(b.value(), 1u) << "a refused release changes nothing";
  mp::Semaphore& base = b;
  EXPECT_EQ(error_of([&] { base.release(2); }), std::errc::value_too_large) << "the bound holds through the base";
  base.release();
  EXPECT_EQ(b.value(), 2u);
}

// ---- Event ----------------------------------------------------------------------------------

TEST(EventUnit, SetClearWait) {
  mp::Event e;
  EXPECT_FALSE(e.is_set());
  synctest::expect_gives_up_no_earlier([&] { return e.wait_for(100ms); });
  synctest::expect_gives_up_no_earlier([&] { return e.wait_until(std::chrono::steady_clock::now() + 100ms); });
  e.set();
  EXPECT_TRUE(e.is_set());
  e.wait();
  EXPECT_TRUE(e.wait_for(0ms));
  e.set();  // idempotent
  e.clear();
  EXPECT_FALSE(e.is_set());
  EXPECT_FALSE(e.wait_for(1ms));
}

TEST(EventUnit, SetWakesEveryWaiter) {
  mp::Event e;
  std::atomic<int> woken{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i)
    ts.emplace_back([&] {
      if (e.wait_for(30s)) woken.fetch_add(1);
    });
  ASSERT_TRUE(eventually([&] { return e.parked() == 4; }));
  e.set();
  for (auto& t : ts) t.join();
  EXPECT_EQ(woken.load(), 4);
}

TEST(EventUnit, APulseOfSetThenClearIsNotMissed) {
  mp::Event e;
  std::atomic<bool> ok{false};
  std::thread t([&] { ok = e.wait_for(30s); });
  ASSERT_TRUE(eventually([&] { return e.parked() == 1; }));  // blocked: the pulse must reach it
  e.set();
  e.clear();
  t.join();
  EXPECT_TRUE(ok.load());
  EXPECT_FALSE(e.is_set());
}

// ---- Condition ------------------------------------------------------------------------------

TEST(ConditionUnit, NotifyAfterTheWaiterReadTheSequenceIsNotLost) {
  mp::Lock l;
  mp::Condition c;
  int ready = 0;  // guarded by l
  std::thread waiter([&] {
    std::unique_lock<mp::Lock> g(l);
    EXPECT_TRUE(c.wait_for(g, 30s, [&] { return ready == 1; }));
    EXPECT_TRUE(g.owns_lock());
  });
  std::this_thread::sleep_for(10ms);
  {
    std::scoped_lock g(l);
    ready = 1;
  }
  c.notify_one();
  waiter.join();
}

TEST(ConditionUnit, WaitForTimesOutNoEarlierThanItsDeadlineHoldingTheLock) {
  mp::Lock l;
  mp::Condition c;
  std::unique_lock<mp::Lock> g(l);
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(c.wait_for(g, 100ms), std::cv_status::timeout);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms);
  EXPECT_TRUE(l.held_by_this_thread());
  synctest::expect_gives_up_no_earlier([&] { return c.wait_for(g, 100ms, [] { return false; }); });
  synctest::expect_gives_up_no_earlier(
      [&] { return c.wait_until(g, std::chrono::steady_clock::now() + 100ms, [] { return false; }); });
  EXPECT_TRUE(l.held_by_this_thread());
  // On a plain Lock too (not through unique_lock).
  g.release();
  start = std::chrono::steady_clock::now();
  EXPECT_EQ(c.wait_until(l, std::chrono::steady_clock::now() + 100ms), std::cv_status::timeout);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms);
  l.unlock();
}

TEST(ConditionUnit, NotifyAllWakesEveryWaiterAndNotifyNAtLeastN) {
  mp::Lock l;
  mp::Condition c;
  int generation = 0;  // guarded by l
  std::atomic<int> woken{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i)
    ts.emplace_back([&] {
      std::unique_lock<mp::Lock> g(l);
      const int seen = generation;
      if (c.wait_for(g, 30s, [&] { return generation != seen; })) woken.fetch_add(1);
    });
  ASSERT_TRUE(eventually([&] { return c.parked() == 4; }));
  {
    std::scoped_lock g(l);
    ++generation;
  }
  c.notify(2);
  ASSERT_TRUE(eventually([&] { return woken.load() >= 2; }));
  c.notify_all();
  for (auto& t : ts) t.join();
  EXPECT_EQ(woken.load(), 4);
}

TEST(ConditionUnit, AnRLockHeldAtDepthThreeIsReleasedFullyAndRestored) {
  mp::RLock r;
  mp::Condition c;
  bool flag = false;  // guarded by r
  r.lock();
  r.lock();
  std::unique_lock<mp::RLock> g(r);  // depth 3
  std::thread other([&] {
    std::scoped_lock h(r);  // possible only if the waiter released every level
    flag = true;
    c.notify_all();
  });
  c.wait(g, [&] { return flag; });
  EXPECT_EQ(r.depth(), 3u);
  EXPECT_TRUE(g.owns_lock());
  g.unlock();
  r.unlock();
  r.unlock();
  EXPECT_FALSE(r.locked());
  other.join();
}

TEST(ConditionUnit, WaitingWithoutHoldingTheLockIsAnError) {
  mp::Lock l;
  mp::Condition c;
  std::unique_lock<mp::Lock> g(l, std::defer_lock);
  EXPECT_EQ(error_of([&] { c.wait(g); }), mp::errc::permission_denied);
  EXPECT_EQ(error_of([&] { c.wait(l); }), mp::errc::permission_denied);
}

TEST(ConditionUnit, ReacquiringALockWhoseHolderDiedThrowsOwnerDeadHoldingIt) {
  mp::Lock l;
  mp::Condition c;
  std::unique_lock<mp::Lock> g(l);
  std::thread holder([&] {
    l.lock();
    c.notify_all();
  });  // ends holding l while the waiter needs it back
  try {
    c.wait(g);  // a spurious return before the notify would re-lock normally: loop until dead
    while (true) c.wait(g);
  } catch (const mp::OwnerDead&) {
    EXPECT_TRUE(l.held_by_this_thread());
    EXPECT_TRUE(g.owns_lock()) << "the unique_lock still owns the lock it holds";
  }
  holder.join();
  l.make_consistent();
}

// ---- Barrier --------------------------------------------------------------------------------

TEST(BarrierUnit, RoundsGiveEachArrivalADistinctIndex) {
  constexpr int kParties = 4, kRounds = 200;
  mp::Barrier b(kParties);
  EXPECT_EQ(b.parties(), 4u);
  std::vector<std::vector<std::uint32_t>> idx(kRounds, std::vector<std::uint32_t>(kParties));
  std::vector<std::thread> ts;
  for (int p = 0; p < kParties; ++p)
    ts.emplace_back([&, p] {
      for (int r = 0; r < kRounds; ++r) idx[r][p] = b.wait();
    });
  for (auto& t : ts) t.join();
  for (int r = 0; r < kRounds; ++r) {
    auto v = idx[r];
    std::sort(v.begin(), v.end());
    for (int i = 0; i < kParties; ++i) ASSERT_EQ(v[i], static_cast<std::uint32_t>(i)) << "round " << r;
  }
  EXPECT_EQ(b.n_waiting(), 0u);
}

TEST(BarrierUnit, OnePartyNeverWaits) {
  mp::Barrier b(1);
  EXPECT_EQ(b.wait(), 0u);
  EXPECT_EQ(b.wait_for(0ms), std::optional<std::uint32_t>(0));
}

TEST(BarrierUnit, BadPartyCountsAreErrors) {
  EXPECT_EQ(error_of([] { mp::Barrier b(0); }), std::errc::invalid_argument);
  EXPECT_EQ(error_of([] { mp::Barrier b(mp::Barrier::kMaxParties + 1); }), std::errc::invalid_argument);
}

TEST(BarrierUnit, ATimeoutBreaksItForEveryoneUntilReset) {
  mp::Barrier b(3);
  std::atomic<int> broken_seen{0};
  std::thread other([&] {
    if (error_of([&] { (void)b.wait(); }) == mp::errc::broken_barrier) broken_seen = 1;
  });
  ASSERT_TRUE(eventually([&] { return b.n_waiting() == 1; }));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(b.wait_for(100ms), std::nullopt);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms);
  other.join();
  EXPECT_EQ(broken_seen.load(), 1);
  EXPECT_TRUE(b.broken());
  EXPECT_EQ(b.n_waiting(), 0u);
  EXPECT_EQ(error_of([&] { (void)b.wait(); }), mp::errc::broken_barrier);
  EXPECT_EQ(error_of([&] { (void)b.wait_for(1s); }), mp::errc::broken_barrier);
  b.reset();
  EXPECT_FALSE(b.broken());
  std::thread t2([&] { EXPECT_TRUE(b.wait_for(30s).has_value()); });
  std::thread t3([&] { EXPECT_TRUE(b.wait_for(30s).has_value()); });
  EXPECT_TRUE(b.wait_for(30s).has_value());
  t2.join();
  t3.join();
}

TEST(BarrierUnit, AbortAndResetBreakTheCurrentWaiters) {
  for (const bool use_reset : {false, true}) {
    mp::Barrier b(3);
    std::atomic<int> broken_seen{0};
    std::vector<std::thread> ts;
    for (int i = 0; i < 2; ++i)
      ts.emplace_back([&] {
        if (error_of([&] { (void)b.wait(); }) == mp::errc::broken_barrier) broken_seen.fetch_add(1);
      });
    ASSERT_TRUE(eventually([&] { return b.n_waiting() == 2; }));
    if (use_reset) b.reset(); else b.abort();
    for (auto& t : ts) t.join();
    EXPECT_EQ(broken_seen.load(), 2) << (use_reset ? "reset" : "abort");
    EXPECT_EQ(b.broken(), !use_reset);
  }
}

// ---- Value ----------------------------------------------------------------------------------

TEST(ValueUnit, LockFreeOperations) {
  static_assert(mp::Value<int>::is_lock_free && mp::Value<double>::is_lock_free);
  mp::Value<long> v(10);
  EXPECT_EQ(v.load(), 10);
  v.store(20);
  EXPECT_EQ(v.fetch_add(5), 20);
  EXPECT_EQ(v.fetch_sub(3), 25);
  EXPECT_EQ(v.exchange(7), 22);
  EXPECT_EQ(v.load(std::memory_order_acquire), 7);
  mp::Value<double> d(1.5);
  EXPECT_EQ(d.fetch_add(1.0), 1.5);
  EXPECT_EQ(d.load(), 2.5);
}

TEST(ValueUnit, ConcurrentFetchAddIsExact) {
  mp::Value<std::uint64_t> v;
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) v.fetch_add(1);
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(v.load(), 80000u);
}

TEST(ValueUnit, CompoundUpdatesUnderGetLock) {
  mp::Value<int> v(0);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 5000; ++i) {
        std::scoped_lock g(v.get_lock());
        v.store(v.load() + 1);  // load/store do not take get_lock(): no self-deadlock
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(v.load(), 20000);
}

namespace {
struct Pair {
  std::int64_t a, b, c;  // 24 bytes: not lock-free, so the locked double buffer
};
}  // namespace

TEST(ValueUnit, AStructIsNeverSeenTorn) {
  static_assert(!mp::Value<Pair>::is_lock_free);
  mp::Value<Pair> v(Pair{0, 0, 0});
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> written{0};
  std::thread writer([&] {
    for (std::int64_t i = 1; !stop.load(); ++i) {
      v.store(Pair{i, -i, 2 * i});
      written.store(i);
    }
  });
  int torn = 0;
  for (int r = 0; r < 20000 || written.load() < 100; ++r) {  // reads overlap at least 100 stores
    const Pair p = v.load();
    if (p.b != -p.a || p.c != 2 * p.a) ++torn;
  }
  stop = true;
  writer.join();
  EXPECT_EQ(torn, 0);
  const std::int64_t last = written.load();
  EXPECT_EQ(v.load().a, last);
  const Pair old = v.exchange(Pair{1, 2, 3});
  EXPECT_EQ(old.a, last);
}

TEST(ValueUnit, LongDoubleTakesTheLockedPath) {
  static_assert(!mp::Value<long double>::is_lock_free);
  mp::Value<long double> v(1.0L);
  EXPECT_EQ(v.fetch_add(2.0L), 1.0L);
  EXPECT_EQ(v.fetch_sub(0.5L), 3.0L);
  EXPECT_EQ(v.load(), 2.5L);
}
