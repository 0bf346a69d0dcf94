// RobustMutex with real processes. Runs twice: natively and with MULTIPROC_LOCK_FALLBACK=1.
#include <multiproc/robust_mutex.hpp>

#include <gtest/gtest.h>
#include "mptest.hpp"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <random>
#include <thread>

namespace mp = multiproc;
using namespace std::chrono_literals;
using mp::LockResult;

TEST(RobustMutex, ModeMatchesTheEnvironment) {
  const char* fb = std::getenv("MULTIPROC_LOCK_FALLBACK");
  EXPECT_EQ(mp::RobustMutex::native(), !(fb && fb[0] == '1'));
}

TEST(RobustMutex, UncontendedLockUnlock) {
  mptest::Shared<mp::RobustMutex> m;
  EXPECT_FALSE(m->locked());
  EXPECT_EQ(m->lock(), LockResult::acquired);
  EXPECT_TRUE(m->locked());
  EXPECT_TRUE(m->held_by_this_thread());
  EXPECT_EQ(m->try_lock(), LockResult::timed_out) << "a robust mutex is not recursive";
  EXPECT_TRUE(m->unlock());
  EXPECT_FALSE(m->locked());
  EXPECT_FALSE(m->unlock()) << "unlocking a mutex nobody holds is refused";
}

TEST(RobustMutex, TimedLockGivesUpNoEarlierThanTheDeadline) {
  mptest::Shared<mp::RobustMutex> m;
  ASSERT_EQ(m->lock(), LockResult::acquired);
  std::thread t([&] {
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(m->lock(mp::Deadline::after(100ms)), LockResult::timed_out);
    EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms);
    EXPECT_FALSE(m->unlock()) << "another thread's mutex";
  });
  t.join();
  EXPECT_TRUE(m->unlock());
}

TEST(RobustMutex, OwnerDeathIsReportedOnceAndRepaired) {
  mptest::Shared<mp::RobustMutex> m;
  const pid_t child = mptest::spawn([&] { return m->lock() == LockResult::acquired ? 0 : 1; });  // exits holding it
  ASSERT_EQ(mptest::wait_exit(child), 0);
  EXPECT_EQ(m->lock(), LockResult::owner_dead);
  m->make_consistent();
  EXPECT_TRUE(m->unlock());
  EXPECT_EQ(m->lock(), LockResult::acquired);
  EXPECT_TRUE(m->unlock());
}

TEST(RobustMutex, UnlockWithoutMakeConsistentIsNotRecoverableForEveryone) {
  mptest::Shared<mp::RobustMutex> m;
  ASSERT_EQ(mptest::wait_exit(mptest::spawn([&] { return m->lock() == LockResult::acquired ? 0 : 1; })), 0);
  EXPECT_EQ(m->try_lock(), LockResult::owner_dead);
  EXPECT_TRUE(m->unlock());
  EXPECT_FALSE(m->recoverable());
  EXPECT_EQ(m->lock(), LockResult::not_recoverable);
  EXPECT_EQ(m->try_lock(), LockResult::not_recoverable);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(m->lock(mp::Deadline::after(10s)), LockResult::not_recoverable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s) << "not_recoverable must not wait out the deadline";
  const pid_t other = mptest::spawn([&] { return m->lock() == LockResult::not_recoverable ? 0 : 1; });
  EXPECT_EQ(mptest::wait_exit(other), 0);
}

TEST(RobustMutex, OwnerDeadPassesOnIfItsReceiverDiesToo) {
  mptest::Shared<mp::RobustMutex> m;
  ASSERT_EQ(mptest::wait_exit(mptest::spawn([&] { return m->lock() == LockResult::acquired ? 0 : 1; })), 0);
  ASSERT_EQ(mptest::wait_exit(mptest::spawn([&] { return m->lock() == LockResult::owner_dead ? 0 : 1; })), 0);
  EXPECT_EQ(m->lock(), LockResult::owner_dead);
  m->make_consistent();
  EXPECT_TRUE(m->unlock());
}

TEST(RobustMutex, AParkedWaiterWakesWhenTheOwnerIsKilled) {
  mptest::Shared<mp::RobustMutex> m;
  mptest::Shared<std::atomic<int>> held(0);
  const pid_t owner = mptest::spawn([&] {
    if (m->lock() != LockResult::acquired) return 1;
    held->store(1);
    for (;;) pause();
  });
  while (held->load() == 0) std::this_thread::sleep_for(1ms);
  std::thread killer([&] {
    std::this_thread::sleep_for(50ms);  // let the waiter park
    ::kill(owner, SIGKILL);
  });
  EXPECT_EQ(m->lock(mp::Deadline::after(30s)), LockResult::owner_dead);
  killer.join();
  EXPECT_EQ(mptest::wait_exit(owner), -SIGKILL);
  m->make_consistent();
  EXPECT_TRUE(m->unlock());
}

TEST(RobustMutex, AThreadThatExitsHoldingTheMutexIsAnOwnerDeath) {
  mptest::Shared<mp::RobustMutex> m;
  std::thread([&] { ASSERT_EQ(m->lock(), LockResult::acquired); }).join();
  EXPECT_EQ(m->lock(mp::Deadline::after(30s)), LockResult::owner_dead);
  m->make_consistent();
  EXPECT_TRUE(m->unlock());
}

TEST(RobustMutex, AKilledWaiterDoesNotStrandTheOthers) {
  mptest::Shared<mp::RobustMutex> m;
  ASSERT_EQ(m->lock(), LockResult::acquired);
  const pid_t doomed = mptest::spawn([&] { return m->lock() == LockResult::acquired ? 0 : 1; });
  const pid_t survivor = mptest::spawn([&] {
    if (m->lock(mp::Deadline::after(30s)) != LockResult::acquired) return 1;
    return m->unlock() ? 0 : 2;
  });
  std::this_thread::sleep_for(50ms);
  ::kill(doomed, SIGKILL);
  EXPECT_EQ(mptest::wait_exit(doomed), -SIGKILL);
  EXPECT_TRUE(m->unlock());
  EXPECT_EQ(mptest::wait_exit(survivor), 0);
}

// unlock() reads the owner from the lock word only when the mutex is not the front of this
// thread's robust list (the lock taken last). Out-of-order unlocks take that path; the list
// must stay whole, so a later death still reports every mutex the child held — and only those.
TEST(RobustMutex, UnlockInAnyOrderKeepsTheRobustListWhole) {
  struct Four { mp::RobustMutex a, b, c, d; };
  mptest::Shared<Four> m;
  const pid_t child = mptest::spawn([&] {
    if (m->a.lock() != LockResult::acquired || m->b.lock() != LockResult::acquired ||
        m->c.lock() != LockResult::acquired)
      return 1;
    if (!m->b.unlock()) return 2;   // the middle of the list
    if (m->d.lock() != LockResult::acquired) return 3;
    if (!m->a.unlock()) return 4;   // the back of the list
    if (m->a.unlock() || m->b.unlock()) return 5;  // no longer held: refused
    return 0;                        // exits holding c and d
  });
  ASSERT_EQ(mptest::wait_exit(child), 0);
  EXPECT_EQ(m->a.try_lock(), LockResult::acquired);
  EXPECT_EQ(m->b.try_lock(), LockResult::acquired);
  EXPECT_EQ(m->c.try_lock(), LockResult::owner_dead);
  EXPECT_EQ(m->d.try_lock(), LockResult::owner_dead);
  m->c.make_consistent();
  m->d.make_consistent();
  // Release in lock order (a is at the back of this thread's list, d at the front).
  for (mp::RobustMutex* x : {&m->a, &m->b, &m->c, &m->d}) EXPECT_TRUE(x->unlock());
  for (mp::RobustMutex* x : {&m->a, &m->b, &m->c, &m->d}) EXPECT_FALSE(x->locked());
}

TEST(RobustMutex, ForkedChildIsNotTheOwnerOfItsParentsMutex) {
  mptest::Shared<mp::RobustMutex> m;
  ASSERT_EQ(m->lock(), LockResult::acquired);
  const pid_t child = mptest::spawn([&] {
    if (m->held_by_this_thread()) return 1;
    if (m->unlock()) return 2;
    return m->try_lock() == LockResult::timed_out ? 0 : 3;
  });
  EXPECT_EQ(mptest::wait_exit(child), 0);
  EXPECT_TRUE(m->unlock());
}

// The kill loop: a child locks, bumps two counters that must stay equal, unlocks, forever;
// SIGKILL lands at a random moment. After each kill the parent gets the lock normally or
// with owner_dead (then repairs the counters), never hangs and never sees a second owner.
TEST(RobustMutex, KillLoop) {
  struct State {
    mp::RobustMutex m;
    std::uint64_t a = 0, b = 0;
    std::atomic<int> inside{0};
    std::atomic<std::uint64_t> iterations{0};
  };
  mptest::Shared<State> s;
  std::mt19937 rng(12345);
  const int rounds = mptest::kill_rounds(200);
  int owner_dead = 0;
  for (int round = 0; round < rounds; ++round) {
    const std::uint64_t start_iters = s->iterations.load();
    const pid_t child = mptest::spawn([&] {
      for (;;) {
        const LockResult r = s->m.lock();
        if (r == LockResult::owner_dead) {
          s->b = s->a;
          s->m.make_consistent();
        } else if (r != LockResult::acquired) {
          return 1;
        }
        if (s->inside.fetch_add(1) != 0) return 2;  // a second owner
        ++s->a;
        ++s->b;
        s->inside.fetch_sub(1);
        s->m.unlock();
        s->iterations.fetch_add(1, std::memory_order_relaxed);
      }
    });
    // Let it run a random while (at least a few iterations), then kill it.
    while (s->iterations.load() < start_iters + 1) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
    ::kill(child, SIGKILL);
    ASSERT_EQ(mptest::wait_exit(child), -SIGKILL) << "round " << round;
    const LockResult r = s->m.lock(mp::Deadline::after(30s));
    ASSERT_TRUE(r == LockResult::acquired || r == LockResult::owner_dead) << "round " << round;
    if (r == LockResult::owner_dead) {
      ++owner_dead;
      s->inside.store(0);
      s->b = s->a;
      s->m.make_consistent();
    }
    ASSERT_EQ(s->inside.load(), 0);
    ASSERT_EQ(s->a, s->b) << "round " << round;
    ASSERT_TRUE(s->m.unlock());
  }
  RecordProperty("owner_dead_rounds", owner_dead);
  std::printf("kill loop: %d rounds, %d ended with the child holding the lock\n", rounds, owner_dead);
}
