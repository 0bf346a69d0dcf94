// Stateful property tests (rapidcheck rc::state): random command sequences against simple
// models for Semaphore, BoundedSemaphore, RLock depth, Event and Barrier arrival indices.
// Blocking commands use real threads, so wake-ups are checked too, not only counters.
#include <multiproc/barrier.hpp>
#include <multiproc/event.hpp>
#include <multiproc/lock.hpp>
#include <multiproc/semaphore.hpp>

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>
#include "sync_test_util.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

namespace mp = multiproc;
using namespace std::chrono_literals;

namespace {

template <class F>
bool eventually(F cond) {
  const auto end = std::chrono::steady_clock::now() + 30s;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(100us);
  }
  return true;
}

template <class F>
std::error_code code_of(F&& f) {
  try {
    f();
  } catch (const mp::Error& e) {
    return e.code();
  }
  return {};
}

// ---- Semaphore and BoundedSemaphore: the model is the count and the bound --------------------

struct SemModel {
  std::uint32_t count;
  std::uint32_t max;
};
using SemCmd = rc::state::Command<SemModel, mp::Semaphore>;

struct SemTryAcquire : SemCmd {
  bool timed = *rc::gen::arbitrary<bool>();
  void apply(SemModel& m) const override {
    if (m.count > 0) --m.count;
  }
  void run(const SemModel& m, mp::Semaphore& s) const override {
    const bool got = timed ? s.try_acquire_for(0ms) : s.try_acquire();
    RC_ASSERT(got == (m.count > 0));
  }
  void show(std::ostream& os) const override { os << (timed ? "try_acquire_for(0)" : "try_acquire()"); }
};

struct SemRelease : SemCmd {
  std::uint32_t n = *rc::gen::inRange<std::uint32_t>(0, 4);
  void apply(SemModel& m) const override {
    if (n <= m.max - m.count) m.count += n;
  }
  void run(const SemModel& m, mp::Semaphore& s) const override {
    if (n > m.max - m.count) {
      RC_ASSERT(code_of([&] { s.release(n); }) == std::errc::value_too_large);
    } else {
      s.release(n);
    }
    RC_ASSERT(s.value() == nextState(m).count);
  }
  void show(std::ostream& os) const override { os << "release(" << n << ")"; }
};

// With the count at 0: a thread parks in acquire, release(1) must wake it, the count stays 0.
struct SemParkedAcquire : SemCmd {
  void checkPreconditions(const SemModel& m) const override { RC_PRE(m.count == 0u && m.max >= 1u); }
  void run(const SemModel&, mp::Semaphore& s) const override {
    std::atomic<int> got{0};
    std::thread t([&] { got = s.try_acquire_for(30s) ? 1 : 2; });
    RC_ASSERT(eventually([&] { return s.parked() == 1; }));
    s.release(1);
    t.join();
    RC_ASSERT(got.load() == 1);
    RC_ASSERT(s.value() == 0u);
  }
  void show(std::ostream& os) const override { os << "parked acquire + release(1)"; }
};

// ---- RLock: the model is this thread's depth -------------------------------------------------

struct RLockModel {
  std::uint32_t depth = 0;
};
using RLockCmd = rc::state::Command<RLockModel, mp::RLock>;

struct RLockLock : RLockCmd {
  int form = *rc::gen::inRange(0, 3);
  void apply(RLockModel& m) const override { ++m.depth; }
  void run(const RLockModel& m, mp::RLock& r) const override {
    if (form == 0) r.lock();
    if (form == 1) RC_ASSERT(r.try_lock());
    if (form == 2) RC_ASSERT(r.try_lock_for(0ms));
    RC_ASSERT(r.depth() == m.depth + 1);
  }
  void show(std::ostream& os) const override { os << (form == 0 ? "lock()" : form == 1 ? "try_lock()" : "try_lock_for(0)"); }
};

struct RLockUnlock : RLockCmd {
  void apply(RLockModel& m) const override {
    if (m.depth > 0) --m.depth;
  }
  void run(const RLockModel& m, mp::RLock& r) const override {
    if (m.depth == 0) {
      RC_ASSERT(code_of([&] { r.unlock(); }) == mp::errc::permission_denied);
    } else {
      r.unlock();
    }
    RC_ASSERT(r.depth() == nextState(m).depth);
    RC_ASSERT(r.locked() == (nextState(m).depth > 0));
  }
  void show(std::ostream& os) const override { os << "unlock()"; }
};

// Another thread: may take it exactly when this thread's depth is 0; can never unlock it.
struct RLockOtherThread : RLockCmd {
  void run(const RLockModel& m, mp::RLock& r) const override {
    bool got = false;
    std::error_code unlock_error;
    std::thread([&] {
      got = r.try_lock();
      if (got) {
        r.unlock();
      } else {
        unlock_error = code_of([&] { r.unlock(); });
      }
    }).join();
    RC_ASSERT(got == (m.depth == 0));
    if (!got) RC_ASSERT(unlock_error == mp::errc::permission_denied);
    RC_ASSERT(r.depth() == m.depth);
  }
  void show(std::ostream& os) const override { os << "other thread try_lock/unlock"; }
};

// ---- Event: the model is the flag ------------------------------------------------------------

struct EventModel {
  bool set = false;
};
using EventCmd = rc::state::Command<EventModel, mp::Event>;

struct EventSet : EventCmd {
  void apply(EventModel& m) const override { m.set = true; }
  void run(const EventModel&, mp::Event& e) const override {
    e.set();
    RC_ASSERT(e.is_set());
  }
  void show(std::ostream& os) const override { os << "set()"; }
};
struct EventClear : EventCmd {
  void apply(EventModel& m) const override { m.set = false; }
  void run(const EventModel&, mp::Event& e) const override {
    e.clear();
    RC_ASSERT(!e.is_set());
  }
  void show(std::ostream& os) const override { os << "clear()"; }
};
struct EventPoll : EventCmd {
  void run(const EventModel& m, mp::Event& e) const override {
    RC_ASSERT(e.is_set() == m.set);
    RC_ASSERT(e.wait_for(0ms) == m.set);
  }
  void show(std::ostream& os) const override { os << "is_set() / wait_for(0)"; }
};
// A thread blocked in wait() is released by set() (and a following clear() does not undo it).
struct EventWaiterThenSet : EventCmd {
  bool clear_after = *rc::gen::arbitrary<bool>();
  void checkPreconditions(const EventModel& m) const override { RC_PRE(!m.set); }
  void apply(EventModel& m) const override { m.set = !clear_after; }
  void run(const EventModel&, mp::Event& e) const override {
    std::atomic<int> woke{0};
    std::thread t([&] { woke = e.wait_for(30s) ? 1 : 2; });
    RC_ASSERT(eventually([&] { return e.parked() == 1; }));  // blocked: a set-then-clear pulse must reach it
    e.set();
    if (clear_after) e.clear();
    t.join();
    RC_ASSERT(woke.load() == 1);
  }
  void show(std::ostream& os) const override { os << "waiter + set()" << (clear_after ? " + clear()" : ""); }
};

// ---- Barrier: the model is the cycle's arrivals and the broken flag --------------------------

struct BarrierModel {
  std::uint32_t parties = 1;
  std::uint32_t waiting = 0;
  bool broken = false;
};

struct BarrierSut {
  explicit BarrierSut(std::uint32_t parties) : barrier(parties) {}
  ~BarrierSut() {
    barrier.abort();  // releases any thread still parked (a failed run), then joins them
    for (auto& t : threads) t.join();
  }
  // Joins every parked thread; their outcomes (index, or -1 for broken_barrier).
  std::vector<long> join_all() {
    for (auto& t : threads) t.join();
    threads.clear();
    std::vector<long> out;
    for (auto& r : results) out.push_back(r->load());
    results.clear();
    return out;
  }
  mp::Barrier barrier;
  std::vector<std::thread> threads;
  std::vector<std::shared_ptr<std::atomic<long>>> results;
};
using BarrierCmd = rc::state::Command<BarrierModel, BarrierSut>;

struct BarrierArrive : BarrierCmd {
  void apply(BarrierModel& m) const override {
    if (m.broken) return;
    m.waiting = (m.waiting + 1 == m.parties) ? 0 : m.waiting + 1;
  }
  void run(const BarrierModel& m, BarrierSut& s) const override {
    if (m.broken) {
      RC_ASSERT(code_of([&] { (void)s.barrier.wait(); }) == mp::errc::broken_barrier);
      return;
    }
    if (m.waiting + 1 == m.parties) {  // the last arrival: this thread, released at once
      const std::uint32_t mine = s.barrier.wait();
      std::vector<long> all = s.join_all();
      all.push_back(mine);
      std::sort(all.begin(), all.end());
      for (std::uint32_t i = 0; i < m.parties; ++i) RC_ASSERT(all[i] == static_cast<long>(i));
    } else {
      auto result = std::make_shared<std::atomic<long>>(-2);
      s.results.push_back(result);
      s.threads.emplace_back([&s, result] {
        try {
          const auto idx = s.barrier.wait_for(30s);
          result->store(idx ? static_cast<long>(*idx) : -3);
        } catch (const mp::Error& e) {
          result->store(e.code() == mp::errc::broken_barrier ? -1 : -4);
        }
      });
      RC_ASSERT(eventually([&] { return s.barrier.n_waiting() == m.waiting + 1; }));
    }
    RC_ASSERT(s.barrier.n_waiting() == nextState(m).waiting);
  }
  void show(std::ostream& os) const override { os << "arrive"; }
};

struct BarrierBreak : BarrierCmd {
  bool reset = *rc::gen::arbitrary<bool>();
  void apply(BarrierModel& m) const override {
    m.waiting = 0;
    m.broken = !reset;
  }
  void run(const BarrierModel&, BarrierSut& s) const override {
    if (reset) s.barrier.reset(); else s.barrier.abort();
    for (long r : s.join_all()) RC_ASSERT(r == -1L);  // every waiter of the ended cycle: broken_barrier
    RC_ASSERT(s.barrier.broken() == !reset);
    RC_ASSERT(s.barrier.n_waiting() == 0u);
  }
  void show(std::ostream& os) const override { os << (reset ? "reset()" : "abort()"); }
};

}  // namespace

RC_GTEST_PROP(SemaphoreProperty, MatchesACountingModel, ()) {
  const std::uint32_t initial = *rc::gen::inRange<std::uint32_t>(0, 5);
  mp::Semaphore s(initial);
  rc::state::check(SemModel{initial, UINT32_MAX}, s,
                   rc::state::gen::execOneOfWithArgs<SemTryAcquire, SemRelease, SemParkedAcquire>());
}

RC_GTEST_PROP(BoundedSemaphoreProperty, MatchesABoundedCountingModel, ()) {
  const std::uint32_t initial = *rc::gen::inRange<std::uint32_t>(0, 5);
  mp::BoundedSemaphore s(initial);
  rc::state::check(SemModel{initial, initial}, static_cast<mp::Semaphore&>(s),
                   rc::state::gen::execOneOfWithArgs<SemTryAcquire, SemRelease, SemParkedAcquire>());
}

RC_GTEST_PROP(RLockProperty, DepthMatchesTheModel, ()) {
  struct Sut : mp::RLock {
    ~Sut() {  // a failed run must not leave a held lock (linked in the robust list) to die on the stack
      while (depth() > 0) unlock();
    }
  } r;
  rc::state::check(RLockModel{}, static_cast<mp::RLock&>(r),
                   rc::state::gen::execOneOfWithArgs<RLockLock, RLockUnlock, RLockOtherThread>());
}

RC_GTEST_PROP(EventProperty, FlagMatchesTheModel, ()) {
  mp::Event e;
  rc::state::check(EventModel{}, e,
                   rc::state::gen::execOneOfWithArgs<EventSet, EventClear, EventPoll, EventWaiterThenSet>());
}

RC_GTEST_PROP(BarrierProperty, ArrivalIndicesArePermutationsAndBreaksReachEveryWaiter, ()) {
  const std::uint32_t parties = *rc::gen::inRange<std::uint32_t>(1, 5);
  BarrierSut s(parties);
  rc::state::check(BarrierModel{parties, 0, false}, s,
                   rc::state::gen::execOneOfWithArgs<BarrierArrive, BarrierArrive, BarrierBreak>());
}
