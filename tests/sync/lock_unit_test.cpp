// Lock and RLock within one process (threads): the std lockable surface, errors, timeouts, and
// robustness against a holder *thread* that exits without unlocking. Thread-level only, so it
// also runs under TSan. Registered twice: native robust futexes and MULTIPROC_LOCK_FALLBACK=1.
#include <multiproc/lock.hpp>

#include <gtest/gtest.h>
#include "sync_test_util.hpp"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <vector>

namespace mp = multiproc;
using namespace std::chrono_literals;

using synctest::error_of;

namespace {

// A thread that takes `l` and ends without unlocking it: an owner death within the process.
template <class L>
void lock_in_a_thread_that_exits(L& l) {
  std::thread([&] { l.lock(); }).join();
}

}  // namespace

TEST(LockUnit, BackendMatchesTheEnvironment) {
  const char* fb = std::getenv("MULTIPROC_LOCK_FALLBACK");
  EXPECT_EQ(mp::Lock::robust_backend(),
            fb && fb[0] == '1' ? mp::LockBackend::pthread_robust : mp::LockBackend::robust_futex);
}

TEST(LockUnit, MeetsTheStandardLockableRequirements) {
  static_assert(mp::timed_lockable<mp::Lock> && mp::timed_lockable<mp::RLock>);
  static_assert(mp::timed_lockable<std::timed_mutex>, "the concept accepts the standard's own timed mutex");
  static_assert(!mp::lockable<std::unique_ptr<int>>);
  mp::Lock a, b;
  { std::scoped_lock g(a, b); EXPECT_TRUE(a.locked() && b.locked()); }
  EXPECT_FALSE(a.locked() || b.locked());
  {
    std::unique_lock<mp::Lock> u(a, std::defer_lock);
    EXPECT_TRUE(u.try_lock_for(10ms));
    EXPECT_TRUE(a.held_by_this_thread());
    u.unlock();
    EXPECT_TRUE(u.try_lock_until(std::chrono::steady_clock::now() + 10ms));
  }
  EXPECT_FALSE(a.locked());
  std::lock(a, b);  // the deadlock-avoiding algorithm uses try_lock
  a.unlock();
  b.unlock();
}

TEST(LockUnit, ExcludesOtherThreads) {
  mp::Lock l;
  std::uint64_t counter = 0;  // plain: the lock is what makes this race-free (TSan checks it)
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        std::scoped_lock g(l);
        ++counter;
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(counter, 80000u);
}

TEST(LockUnit, TryLockFailsWhileAnotherThreadHoldsIt) {
  mp::Lock l;
  l.lock();
  std::thread([&] {
    EXPECT_FALSE(l.try_lock());
    EXPECT_TRUE(l.locked());
    EXPECT_FALSE(l.held_by_this_thread());
  }).join();
  l.unlock();
  std::thread([&] {
    EXPECT_TRUE(l.try_lock());
    l.unlock();
  }).join();
}

TEST(LockUnit, TimedLockGivesUpNoEarlierThanItsDeadline) {
  mp::Lock l;
  l.lock();
  std::thread([&] {
    synctest::expect_gives_up_no_earlier([&] { return l.try_lock_for(100ms); });
    synctest::expect_gives_up_no_earlier([&] { return l.try_lock_until(std::chrono::steady_clock::now() + 100ms); });
    synctest::expect_gives_up_no_earlier([&] { return l.try_lock_until(std::chrono::system_clock::now() + 100ms); });
    EXPECT_FALSE(l.try_lock_for(-5ms)) << "a past deadline tries once";
  }).join();
  l.unlock();
}

TEST(LockUnit, UnlockByANonOwnerIsPermissionDeniedAndChangesNothing) {
  mp::Lock l;
  EXPECT_EQ(error_of([&] { l.unlock(); }), mp::errc::permission_denied) << "not held";
  l.lock();
  std::thread([&] { EXPECT_EQ(error_of([&] { l.unlock(); }), mp::errc::permission_denied) << "held by another thread"; })
      .join();
  EXPECT_TRUE(l.held_by_this_thread());
  l.unlock();
  EXPECT_FALSE(l.locked());
}

TEST(LockUnit, AHolderThreadThatExitsIsAnOwnerDeath) {
  mp::Lock l;
  lock_in_a_thread_that_exits(l);
  try {
    l.lock();
    FAIL() << "expected OwnerDead";
  } catch (const mp::OwnerDead& e) {
    EXPECT_EQ(e.code(), mp::errc::owner_dead);
    EXPECT_NE(std::string(e.what()).find("now holds it"), std::string::npos) << e.what();
    EXPECT_TRUE(l.held_by_this_thread()) << "OwnerDead is thrown holding the lock";
  }
  l.make_consistent();
  l.unlock();
  EXPECT_FALSE(l.locked());
  l.lock();  // normal again
  l.unlock();
}

TEST(LockUnit, EveryAcquisitionFormReportsOwnerDead) {
  mp::Lock l;
  const std::vector<std::function<bool()>> forms = {
      [&] { l.lock(); return true; },
      [&] { return l.try_lock(); },
      [&] { return l.try_lock_for(1s); },
      [&] { return l.try_lock_until(std::chrono::steady_clock::now() + 1s); },
  };
  for (std::size_t i = 0; i < forms.size(); ++i) {
    lock_in_a_thread_that_exits(l);
    EXPECT_EQ(error_of(forms[i]), mp::errc::owner_dead) << "form " << i;
    EXPECT_TRUE(l.held_by_this_thread()) << "form " << i;
    l.make_consistent();
    l.unlock();
  }
}

TEST(LockUnit, UnlockWithoutMakeConsistentIsNotRecoverableAtOnceForEveryForm) {
  mp::Lock l;
  lock_in_a_thread_that_exits(l);
  EXPECT_EQ(error_of([&] { l.lock(); }), mp::errc::owner_dead);
  l.unlock();  // no make_consistent: poisons
  EXPECT_FALSE(l.recoverable());
  EXPECT_EQ(error_of([&] { l.lock(); }), mp::errc::not_recoverable);
  EXPECT_EQ(error_of([&] { (void)l.try_lock(); }), mp::errc::not_recoverable);
  // An hour's deadline: waiting it out would hang the test (the runner's timeout fails it).
  EXPECT_EQ(error_of([&] { (void)l.try_lock_for(1h); }), mp::errc::not_recoverable);
  EXPECT_EQ(error_of([&] { (void)l.try_lock_until(std::chrono::steady_clock::now() + 1h); }), mp::errc::not_recoverable);
  EXPECT_EQ(error_of([&] { l.unlock(); }), mp::errc::not_recoverable);
  std::thread([&] { EXPECT_EQ(error_of([&] { l.lock(); }), mp::errc::not_recoverable); }).join();
}

TEST(LockUnit, OwnerDeadPassesOnWhenItsReceiverExitsToo) {
  mp::Lock l;
  lock_in_a_thread_that_exits(l);
  std::thread([&] { EXPECT_EQ(error_of([&] { l.lock(); }), mp::errc::owner_dead); }).join();  // exits holding it
  EXPECT_EQ(error_of([&] { l.lock(); }), mp::errc::owner_dead);
  l.make_consistent();
  l.unlock();
}

TEST(LockUnit, MakeConsistentByANonHolderChangesNothing) {
  mp::Lock l;
  l.make_consistent();  // not held: no effect
  lock_in_a_thread_that_exits(l);
  std::atomic<bool> got{false};
  std::thread t([&] {
    EXPECT_EQ(error_of([&] { l.lock(); }), mp::errc::owner_dead);
    got = true;
    while (got.load()) std::this_thread::yield();
    l.unlock();  // without make_consistent: must still poison
  });
  while (!got.load()) std::this_thread::yield();
  l.make_consistent();  // this thread does not hold it: ignored
  got = false;
  t.join();
  EXPECT_FALSE(l.recoverable());
}

TEST(LockUnit, AWaiterParkedOnAThreadThatExitsGetsOwnerDead) {
  mp::Lock l;
  std::atomic<int> stage{0};
  std::thread holder([&] {
    l.lock();
    stage = 1;
    while (stage.load() != 2) std::this_thread::yield();
    std::this_thread::sleep_for(50ms);  // let the waiter park
  });                                   // exits holding it
  while (stage.load() != 1) std::this_thread::yield();
  stage = 2;
  EXPECT_EQ(error_of([&] { (void)l.try_lock_for(30s); }), mp::errc::owner_dead);
  holder.join();
  l.make_consistent();
  l.unlock();
}

// ---- RLock ----------------------------------------------------------------------------------

TEST(RLockUnit, ReentersAndCountsDepth) {
  mp::RLock r;
  EXPECT_EQ(r.depth(), 0u);
  r.lock();
  EXPECT_TRUE(r.try_lock());
  EXPECT_TRUE(r.try_lock_for(1ms));
  { std::scoped_lock g(r); EXPECT_EQ(r.depth(), 4u); }
  EXPECT_EQ(r.depth(), 3u);
  std::thread([&] {
    EXPECT_EQ(r.depth(), 0u);
    EXPECT_FALSE(r.try_lock());
    synctest::expect_gives_up_no_earlier([&] { return r.try_lock_for(100ms); });
    EXPECT_EQ(error_of([&] { r.unlock(); }), mp::errc::permission_denied);
  }).join();
  r.unlock();
  r.unlock();
  EXPECT_TRUE(r.locked());
  r.unlock();
  EXPECT_FALSE(r.locked());
  EXPECT_EQ(error_of([&] { r.unlock(); }), mp::errc::permission_denied);
}

TEST(RLockUnit, ExcludesOtherThreadsWhileNested) {
  mp::RLock r;
  std::uint64_t counter = 0;
  std::vector<std::thread> ts;
  for (int t = 0; t < 3; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        std::scoped_lock g(r);
        std::scoped_lock g2(r);
        ++counter;
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(counter, 30000u);
}

TEST(RLockUnit, RecoveredFromADeadOwnerItIsHeldAtDepthOne) {
  mp::RLock r;
  std::thread([&] {
    r.lock();
    r.lock();
    r.lock();
  }).join();  // exits at depth 3
  EXPECT_EQ(error_of([&] { r.lock(); }), mp::errc::owner_dead);
  EXPECT_EQ(r.depth(), 1u);
  r.make_consistent();
  r.unlock();
  EXPECT_FALSE(r.locked());
}

TEST(RLockUnit, UnlockWithoutMakeConsistentIsNotRecoverable) {
  mp::RLock r;
  std::thread([&] { r.lock(); }).join();
  EXPECT_EQ(error_of([&] { (void)r.try_lock(); }), mp::errc::owner_dead);
  r.lock();  // re-entering the inconsistent lock is allowed: still one owner
  r.unlock();
  r.unlock();
  EXPECT_FALSE(r.recoverable());
  EXPECT_EQ(error_of([&] { (void)r.try_lock_for(1h); }), mp::errc::not_recoverable);
}

TEST(RLockUnit, UnlockAllAndRestoreKeepTheDepth) {
  mp::RLock r;
  r.lock();
  r.lock();
  const std::uint32_t d = r.unlock_all();
  EXPECT_EQ(d, 2u);
  EXPECT_FALSE(r.locked());
  r.lock_restore(d);
  EXPECT_EQ(r.depth(), 2u);
  r.unlock();
  r.unlock();
  EXPECT_EQ(error_of([&] { (void)r.unlock_all(); }), mp::errc::permission_denied);
}
