// Lock, RLock and Condition across real fork()ed processes: mutual exclusion, the kill loop,
// killed waiters and holders, OwnerDead out of Condition::wait, and fast paths that provably
// make no system call. Registered twice: native robust futexes and MULTIPROC_LOCK_FALLBACK=1.
#include <multiproc/barrier.hpp>
#include <multiproc/condition.hpp>
#include <multiproc/event.hpp>
#include <multiproc/ids.hpp>
#include <multiproc/lock.hpp>
#include <multiproc/semaphore.hpp>
#include <multiproc/value.hpp>

#include <gtest/gtest.h>
#include "mptest.hpp"
#include "sync_test_util.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <mutex>
#include <random>
#include <thread>

namespace mp = multiproc;
using namespace std::chrono_literals;
using synctest::error_of;

TEST(LockMp, FourProcessesIncrementASharedCounterExactly) {
  struct S {
    mp::Lock lock;
    std::uint64_t counter = 0;
  };
  mptest::Shared<S> s;
  mptest::run_children(4, [&](int) {
    for (int i = 0; i < 20000; ++i) {
      std::scoped_lock g(s->lock);
      ++s->counter;
    }
    return 0;
  });
  EXPECT_EQ(s->counter, 80000u);
  EXPECT_FALSE(s->lock.locked());
}

TEST(LockMp, AForkedChildIsNotTheOwnerOfItsParentsLock) {
  mptest::Shared<mp::Lock> l;
  l->lock();
  const pid_t child = mptest::spawn([&] {
    if (l->held_by_this_thread()) return 1;
    if (error_of([&] { l->unlock(); }) != mp::errc::permission_denied) return 2;
    return l->try_lock() ? 3 : 0;
  });
  EXPECT_EQ(mptest::wait_exit(child), 0);
  EXPECT_TRUE(l->held_by_this_thread());
  l->unlock();
}

// The kill loop, through the public Lock: a child locks, bumps two counters that must stay
// equal, unlocks, forever; SIGKILL lands at a random moment. After each kill the parent gets
// the lock normally or with OwnerDead exactly once (then repairs the counters and calls
// make_consistent), never hangs, never sees a second owner.
TEST(LockMp, KillLoop) {
  struct S {
    mp::Lock lock;
    std::uint64_t a = 0, b = 0;
    std::atomic<int> inside{0};
    std::atomic<std::uint64_t> iterations{0};
  };
  mptest::Shared<S> s;
  std::mt19937 rng(4242);
  const int rounds = mptest::kill_rounds(200);
  int owner_dead = 0;
  for (int round = 0; round < rounds; ++round) {
    const std::uint64_t start = s->iterations.load();
    const pid_t child = mptest::spawn([&]() -> int {
      for (;;) {
        try {
          s->lock.lock();
        } catch (const mp::OwnerDead&) {
          s->b = s->a;
          s->inside.store(0);
          s->lock.make_consistent();
        }
        if (s->inside.fetch_add(1) != 0) return 2;  // a second owner
        ++s->a;
        ++s->b;
        s->inside.fetch_sub(1);
        s->lock.unlock();
        s->iterations.fetch_add(1, std::memory_order_relaxed);
      }
    });
    while (s->iterations.load() < start + 1) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
    ::kill(child, SIGKILL);
    ASSERT_EQ(mptest::wait_exit(child), -SIGKILL) << "round " << round;
    bool dead = false;
    try {
      ASSERT_TRUE(s->lock.try_lock_for(30s)) << "round " << round;
    } catch (const mp::OwnerDead&) {
      dead = true;
    }
    ASSERT_TRUE(s->lock.held_by_this_thread());
    if (dead) {
      ++owner_dead;
      s->inside.store(0);
      s->b = s->a;
      s->lock.make_consistent();
    }
    ASSERT_EQ(s->inside.load(), 0) << "round " << round;
    ASSERT_EQ(s->a, s->b) << "round " << round;
    s->lock.unlock();
    ASSERT_TRUE(s->lock.try_lock()) << "exactly once: the next lock is normal";
    s->lock.unlock();
  }
  std::printf("Lock kill loop: %d rounds, %d ended with the child holding the lock\n", rounds, owner_dead);
}

TEST(LockMp, AParkedWaiterWakesWithOwnerDeadWhenTheHolderIsKilled) {
  struct S {
    mp::Lock lock;
    std::atomic<int> held{0};
  };
  mptest::Shared<S> s;
  const pid_t holder = mptest::spawn([&]() -> int {
    s->lock.lock();
    s->held = 1;
    for (;;) ::pause();
  });
  while (s->held.load() == 0) std::this_thread::sleep_for(1ms);
  const pid_t waiter = mptest::spawn([&] {
    if (error_of([&] { (void)s->lock.try_lock_for(30s); }) != mp::errc::owner_dead) return 1;
    if (!s->lock.held_by_this_thread()) return 2;
    s->lock.make_consistent();
    s->lock.unlock();
    return 0;
  });
  std::this_thread::sleep_for(50ms);  // let it park
  ::kill(holder, SIGKILL);
  EXPECT_EQ(mptest::wait_exit(holder), -SIGKILL);
  EXPECT_EQ(mptest::wait_exit(waiter), 0);
  EXPECT_TRUE(s->lock.try_lock());
  s->lock.unlock();
}

TEST(LockMp, AKilledParkedWaiterDoesNotStrandTheOthers) {
  mptest::Shared<mp::Lock> l;
  l->lock();
  const pid_t doomed = mptest::spawn([&] {
    l->lock();
    return 0;
  });
  std::vector<pid_t> survivors;
  for (int i = 0; i < 3; ++i)
    survivors.push_back(mptest::spawn([&] {
      if (!l->try_lock_for(30s)) return 1;
      l->unlock();
      return 0;
    }));
  std::this_thread::sleep_for(50ms);  // all parked
  ::kill(doomed, SIGKILL);
  EXPECT_EQ(mptest::wait_exit(doomed), -SIGKILL);
  l->unlock();
  for (pid_t p : survivors) EXPECT_EQ(mptest::wait_exit(p), 0);
  EXPECT_FALSE(l->locked());
}

TEST(LockMp, AHolderThreadThatExitsInALiveProcessIsAnOwnerDeath) {
  struct S {
    mp::Lock lock;
    std::atomic<int> stage{0};
  };
  mptest::Shared<S> s;
  const pid_t child = mptest::spawn([&] {
    std::thread([&] { s->lock.lock(); }).join();  // the thread ends holding it; the process lives on
    s->stage = 1;
    while (s->stage.load() != 2) std::this_thread::sleep_for(1ms);
    return 0;
  });
  while (s->stage.load() != 1) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(error_of([&] { s->lock.lock(); }), mp::errc::owner_dead);
  s->lock.make_consistent();
  s->lock.unlock();
  s->stage = 2;
  EXPECT_EQ(mptest::wait_exit(child), 0);
}

TEST(LockMp, NotRecoverableReachesEveryProcessAtOnce) {
  mptest::Shared<mp::Lock> l;
  ASSERT_EQ(mptest::wait_exit(mptest::spawn([&] {
              l->lock();
              return 0;
            })),
            0);
  EXPECT_EQ(error_of([&] { l->lock(); }), mp::errc::owner_dead);
  l->unlock();  // no make_consistent
  const pid_t other = mptest::spawn([&] {
    return error_of([&] { (void)l->try_lock_for(1h); }) == mp::errc::not_recoverable ? 0 : 1;
  });
  EXPECT_EQ(mptest::wait_exit(other), 0);
}

TEST(RLockMp, RecoveredFromAKilledOwnerAtDepthOne) {
  struct S {
    mp::RLock lock;
    std::atomic<int> held{0};
  };
  mptest::Shared<S> s;
  const pid_t holder = mptest::spawn([&]() -> int {
    s->lock.lock();
    s->lock.lock();
    s->lock.lock();
    s->held = 1;
    for (;;) ::pause();
  });
  while (s->held.load() == 0) std::this_thread::sleep_for(1ms);
  ::kill(holder, SIGKILL);
  EXPECT_EQ(mptest::wait_exit(holder), -SIGKILL);
  EXPECT_EQ(error_of([&] { s->lock.lock(); }), mp::errc::owner_dead);
  EXPECT_EQ(s->lock.depth(), 1u);
  s->lock.make_consistent();
  s->lock.unlock();
  EXPECT_FALSE(s->lock.locked());
}

TEST(RLockMp, NestedCountersAcrossProcesses) {
  struct S {
    mp::RLock lock;
    std::uint64_t counter = 0;
  };
  mptest::Shared<S> s;
  mptest::run_children(3, [&](int) {
    for (int i = 0; i < 5000; ++i) {
      std::scoped_lock g(s->lock);
      std::scoped_lock g2(s->lock);
      ++s->counter;
    }
    return 0;
  });
  EXPECT_EQ(s->counter, 15000u);
}

// Condition::wait re-acquires through the lock's lock(): a notifier that dies holding the lock
// makes wait throw OwnerDead with the lock held (an RLock at its depth, a unique_lock owning).
TEST(ConditionMp, WaitPropagatesOwnerDeadWithTheLockHeld) {
  struct S {
    mp::Lock lock;
    mp::RLock rlock;
    mp::Condition cond;
  };
  mptest::Shared<S> s;
  {
    std::unique_lock<mp::Lock> g(s->lock);
    const pid_t child = mptest::spawn([&] {
      s->lock.lock();
      s->cond.notify_all();
      return 0;  // exits holding it
    });
    bool dead = false;
    try {
      for (;;) s->cond.wait(g);  // returns normally only on a spurious wake: then waits again
    } catch (const mp::OwnerDead&) {
      dead = true;
      EXPECT_TRUE(s->lock.held_by_this_thread());
      EXPECT_TRUE(g.owns_lock());
      s->lock.make_consistent();
    }
    EXPECT_TRUE(dead);
    EXPECT_EQ(mptest::wait_exit(child), 0);
  }
  EXPECT_FALSE(s->lock.locked());
  // RLock at depth 2, waited on directly.
  s->rlock.lock();
  s->rlock.lock();
  const pid_t child = mptest::spawn([&] {
    s->rlock.lock();
    s->cond.notify_all();
    return 0;
  });
  bool dead = false;
  try {
    for (;;) s->cond.wait(s->rlock);
  } catch (const mp::OwnerDead&) {
    dead = true;
    EXPECT_EQ(s->rlock.depth(), 2u) << "held at the depth the caller had";
    s->rlock.make_consistent();
  }
  EXPECT_TRUE(dead);
  EXPECT_EQ(mptest::wait_exit(child), 0);
  s->rlock.unlock();
  s->rlock.unlock();
  EXPECT_FALSE(s->rlock.locked());
}

// The fast paths the contract promises are free of system calls, checked with seccomp: any
// system call in the child after forbid_syscalls() kills it with SIGSYS.
TEST(SyncMp, FastPathsMakeNoSystemCall) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "sanitizer runtimes make system calls of their own (interceptors, exit handlers)";
#endif
  struct S {
    mp::Lock lock;
    mp::RLock rlock;
    mp::Semaphore sem{1};
    mp::BoundedSemaphore bsem{2};
    mp::Event event;
    mp::Condition cond;
    mp::Barrier one{1};
    mp::Value<long> value{0};
  };
  mptest::Shared<S> s;
  const pid_t child = mptest::spawn([&] {
    (void)mp::this_tid();  // fill the per-thread caches (a fork()ed child re-reads them once)
    s->lock.lock();
    s->lock.unlock();
    if (!synctest::forbid_syscalls()) return 100;
    for (int i = 0; i < 1000; ++i) {
      s->lock.lock();
      s->lock.unlock();
      if (!s->lock.try_lock()) return 1;
      s->lock.unlock();
      if (!s->lock.try_lock_for(1s)) return 2;
      s->lock.unlock();
      s->rlock.lock();
      s->rlock.lock();
      s->rlock.unlock();
      s->rlock.unlock();
      s->sem.acquire();
      s->sem.release();  // nobody waits: no wake
      if (!s->sem.try_acquire()) return 3;
      s->sem.release(1);
      s->bsem.acquire();
      s->bsem.release();
      s->cond.notify_one();
      s->cond.notify(3);
      s->cond.notify_all();
      s->event.set();  // nobody waits
      s->event.set();
      if (!s->event.is_set()) return 4;
      s->event.wait();  // already set
      if (!s->event.wait_for(1s)) return 5;
      s->event.clear();
      (void)s->one.wait();
      s->value.fetch_add(1);
      s->value.store(s->value.load() + 1);
    }
    return 0;
  });
  const int rc = mptest::wait_exit(child);
  if (rc == 100) GTEST_SKIP() << "seccomp is not available here";
  EXPECT_EQ(rc, 0) << "-" << SIGSYS << " means a system call was made";
}
