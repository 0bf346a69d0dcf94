// The seed programs of the tutorials as multi-process tests: Semaphore admission, Event as a
// start signal, Condition producer/consumer, Barrier rounds, Value and Array in an Arena.
#include <multiproc/arena.hpp>
#include <multiproc/barrier.hpp>
#include <multiproc/condition.hpp>
#include <multiproc/event.hpp>
#include <multiproc/lock.hpp>
#include <multiproc/semaphore.hpp>
#include <multiproc/value.hpp>

#include <gtest/gtest.h>
#include "mptest.hpp"
#include "sync_test_util.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <mutex>
#include <thread>

namespace mp = multiproc;
using namespace std::chrono_literals;
using synctest::error_of;

TEST(SemaphoreMp, ASemaphoreOfThreeNeverAdmitsAFourth) {
  struct S {
    mp::Semaphore sem{3};
    std::atomic<int> inside{0};
    std::atomic<int> max_inside{0};
  };
  mptest::Shared<S> s;
  mptest::run_children(6, [&](int) {
    for (int i = 0; i < 300; ++i) {
      if (!s->sem.try_acquire_for(30s)) return 1;
      const int now = s->inside.fetch_add(1) + 1;
      int seen = s->max_inside.load();
      while (now > seen && !s->max_inside.compare_exchange_weak(seen, now)) {
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
      s->inside.fetch_sub(1);
      s->sem.release();
    }
    return 0;
  });
  EXPECT_EQ(s->max_inside.load(), 3) << "three units admit three at once, never four";
  EXPECT_EQ(s->sem.value(), 3u);
}

TEST(SemaphoreMp, ReleaseWakesAWaiterParkedInAnotherProcess) {
  mptest::Shared<mp::BoundedSemaphore> sem(1u);
  sem->acquire();
  const pid_t child = mptest::spawn([&] { return sem->try_acquire_for(30s) ? 0 : 1; });
  std::this_thread::sleep_for(30ms);
  sem->release();
  EXPECT_EQ(mptest::wait_exit(child), 0);
  EXPECT_EQ(sem->value(), 0u);
  sem->release();
  EXPECT_EQ(error_of([&] { sem->release(); }), std::errc::value_too_large);
}

TEST(EventMp, AStartSignalReleasesEveryWorkerOnlyAfterItIsSet) {
  struct S {
    mp::Event go;
    std::atomic<int> released{0};  // written before set(): every worker must see it
    std::atomic<int> started{0};
  };
  mptest::Shared<S> s;
  std::vector<pid_t> pids;
  for (int i = 0; i < 4; ++i)
    pids.push_back(mptest::spawn([&] {
      if (!s->go.wait_for(30s)) return 1;
      if (s->released.load(std::memory_order_relaxed) != 1) return 2;  // ran before the signal
      s->started.fetch_add(1);
      return 0;
    }));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(s->started.load(), 0) << "nobody starts before the signal";
  s->released.store(1, std::memory_order_relaxed);
  s->go.set();
  for (pid_t p : pids) EXPECT_EQ(mptest::wait_exit(p), 0);
  EXPECT_EQ(s->started.load(), 4);
}

TEST(EventMp, WaitForTimesOutInAnotherProcess) {
  mptest::Shared<mp::Event> e;
  const pid_t child = mptest::spawn([&] {
    const auto start = std::chrono::steady_clock::now();
    if (e->wait_for(100ms)) return 1;
    return std::chrono::steady_clock::now() - start >= 100ms ? 0 : 2;
  });
  EXPECT_EQ(mptest::wait_exit(child), 0);
}

// A bounded buffer with one Lock and two Conditions: 2 producers, 2 consumers, every item
// consumed exactly once.
TEST(ConditionMp, ProducersAndConsumersThroughABoundedBuffer) {
  constexpr int kCap = 8, kPerProducer = 5000, kProducers = 2, kConsumers = 2;
  struct S {
    mp::Lock lock;
    mp::Condition not_empty, not_full;
    int buf[kCap];
    int head = 0, count = 0, producers_done = 0;
    std::uint64_t consumed_sum = 0, consumed = 0;
  };
  mptest::Shared<S> s;
  std::vector<pid_t> pids;
  for (int p = 0; p < kProducers; ++p)
    pids.push_back(mptest::spawn([&, p] {
      for (int i = 1; i <= kPerProducer; ++i) {
        std::unique_lock<mp::Lock> g(s->lock);
        if (!s->not_full.wait_for(g, 30s, [&] { return s->count < kCap; })) return 1;
        s->buf[(s->head + s->count) % kCap] = p * kPerProducer + i;
        ++s->count;
        s->not_empty.notify_one();
      }
      std::scoped_lock g(s->lock);
      ++s->producers_done;
      s->not_empty.notify_all();
      return 0;
    }));
  for (int c = 0; c < kConsumers; ++c)
    pids.push_back(mptest::spawn([&] {
      for (;;) {
        std::unique_lock<mp::Lock> g(s->lock);
        if (!s->not_empty.wait_for(g, 30s, [&] { return s->count > 0 || s->producers_done == kProducers; })) return 1;
        if (s->count == 0) return 0;  // drained and no producer left
        const int item = s->buf[s->head];
        s->head = (s->head + 1) % kCap;
        --s->count;
        s->consumed_sum += static_cast<std::uint64_t>(item);
        ++s->consumed;
        s->not_full.notify_one();
      }
    }));
  for (pid_t p : pids) EXPECT_EQ(mptest::wait_exit(p), 0);
  constexpr std::uint64_t n = kProducers * kPerProducer;
  EXPECT_EQ(s->consumed, n);
  EXPECT_EQ(s->consumed_sum, n * (n + 1) / 2);
}

TEST(BarrierMp, RoundsGiveAPermutationOfIndicesAndNobodyRunsAhead) {
  constexpr int kParties = 4, kRounds = 100;
  struct S {
    mp::Barrier barrier{kParties};
    std::atomic<std::uint32_t> index_seen[kRounds][kParties];
    std::atomic<int> arrived[kRounds];
  };
  mptest::Shared<S> s;  // zeroed memory: the atomics start at 0
  mptest::run_children(kParties, [&](int) {
    for (int r = 0; r < kRounds; ++r) {
      s->arrived[r].fetch_add(1);
      const std::uint32_t idx = s->barrier.wait();
      if (idx >= kParties) return 1;
      if (s->arrived[r].load() != kParties) return 2;  // released before everyone arrived
      s->index_seen[r][idx].fetch_add(1);
    }
    return 0;
  });
  for (int r = 0; r < kRounds; ++r)
    for (int i = 0; i < kParties; ++i) ASSERT_EQ(s->index_seen[r][i].load(), 1u) << "round " << r << " index " << i;
}

TEST(BarrierMp, AbortInOneProcessBreaksTheWaitersInOthers) {
  mptest::Shared<mp::Barrier> b(3u);
  std::vector<pid_t> pids;
  for (int i = 0; i < 2; ++i)
    pids.push_back(mptest::spawn([&] { return error_of([&] { (void)b->wait(); }) == mp::errc::broken_barrier ? 0 : 1; }));
  while (b->n_waiting() != 2) std::this_thread::sleep_for(1ms);
  b->abort();
  for (pid_t p : pids) EXPECT_EQ(mptest::wait_exit(p), 0);
  EXPECT_TRUE(b->broken());
}

TEST(ValueMp, FetchAddAndLockedUpdatesFromFourProcesses) {
  struct S {
    mp::Value<long> atomic_sum{0};
    mp::Value<long> locked_sum{0};
  };
  mptest::Shared<S> s;
  mptest::run_children(4, [&](int) {
    for (int i = 0; i < 10000; ++i) {
      s->atomic_sum.fetch_add(1);
      std::scoped_lock g(s->locked_sum.get_lock());
      s->locked_sum.store(s->locked_sum.load() + 2);
    }
    return 0;
  });
  EXPECT_EQ(s->atomic_sum.load(), 40000);
  EXPECT_EQ(s->locked_sum.load(), 80000);
}

TEST(ArrayMp, ElementsLiveInTheArenaAndWorkAtAnotherAddress) {
  auto arena = mp::Arena::create(1 << 20);
  auto& arr = arena.make<mp::Array<int>>("arr", 100, 7);
  ASSERT_EQ(arr.size(), 100u);
  EXPECT_TRUE(arena.contains(arr.data()));
  EXPECT_TRUE(std::all_of(arr.span().begin(), arr.span().end(), [](int x) { return x == 7; }));
  mptest::run_children(4, [&](int c) {
    for (int i = 0; i < 1000; ++i) {
      std::scoped_lock g(arr.get_lock());
      arr[static_cast<std::size_t>((c * 1000 + i) % 100)] += 1;
    }
    return 0;
  });
  long sum = 0;
  for (int x : arr.span()) sum += x;
  EXPECT_EQ(sum, 100 * 7 + 4000);
  // The same arena mapped a second time, at another address: the Array finds its elements.
  auto again = mp::Arena::from_fd(arena.fd());
  auto* arr2 = again.find<mp::Array<int>>("arr");
  ASSERT_NE(arr2, nullptr);
  ASSERT_NE(static_cast<void*>(arr2), static_cast<void*>(&arr));
  EXPECT_TRUE(again.contains(arr2->data()));
  (*arr2)[5] = 12345;
  EXPECT_EQ(arr[5], 12345);
  arr2->get_lock().lock();
  EXPECT_TRUE(arr.get_lock().locked()) << "one lock, two mappings";
  arr2->get_lock().unlock();
  // destroy frees the elements too.
  const std::size_t used = arena.used();
  arena.destroy(arr);
  EXPECT_LT(arena.used(), used);
}

TEST(ArrayMp, AnArrayOutsideItsArenaIsRefused) {
  auto arena = mp::Arena::create(1 << 16);
  alignas(mp::Array<int>) unsigned char outside[sizeof(mp::Array<int>)];
  EXPECT_EQ(error_of([&] { ::new (outside) mp::Array<int>(arena, 4); }), mp::errc::bad_arena);
  auto& empty = arena.make<mp::Array<double>>("empty", 0);
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_TRUE(empty.span().empty());
  EXPECT_EQ(error_of([&] { (void)arena.make<mp::Array<double>>("huge", std::size_t{1} << 40); }), mp::errc::out_of_memory);
}
