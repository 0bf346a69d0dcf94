// Dict and List from several threads of one process: the same protocols as across processes,
// but visible to ThreadSanitizer (run this under -Db_sanitize=thread), which checks that the
// seqlock copies, the redo log and the stripe locks are free of data races in the C++ model.
#include <multiproc/dict.hpp>

#include <gtest/gtest.h>
#include "dict_test_util.hpp"

#include <atomic>
#include <thread>
#include <vector>

namespace mp = multiproc;
using dicttest::InShared;
using dicttest::Wide;

TEST(DictThreads, MixedOperationsNeverTearAndUpdatesSum) {
  InShared<mp::Dict<std::uint32_t, Wide>> d(128);
  InShared<mp::Dict<int, long>> counter(4);
  ASSERT_TRUE(counter->insert(0, 0));
  for (std::uint32_t k = 0; k < 64; ++k) ASSERT_TRUE(d->insert(k, Wide::of(k)));
  std::atomic<int> stop{0};
  std::atomic<int> torn{0};
  constexpr int kWriters = 3, kIncrements = 3000;
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w)
    threads.emplace_back([&, w] {
      std::uint64_t x = 0x9e3779b97f4a7c15ull * (w + 1);
      for (int i = 0; i < kIncrements; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const std::uint32_t k = static_cast<std::uint32_t>(x % 96);
        switch (x % 4) {
          case 0: d->insert_or_assign(k, Wide::of(x)); break;
          case 1: d->update(k, [](Wide& v) { v = Wide::of(v.w[0] + 1); }); break;
          case 2: d->erase(k); break;
          default: (void)d->insert(k, Wide::of(x)); break;
        }
        counter->update(0, [](long& v) { ++v; });
      }
    });
  threads.emplace_back([&] {
    while (stop.load() == 0) {
      for (std::uint32_t k = 0; k < 96; ++k)
        if (auto v = d->get(k); v && !v->whole()) torn.fetch_add(1);
      d->for_each([&](const std::uint32_t&, const Wide& v) {
        if (!v.whole()) torn.fetch_add(1);
      });
      (void)d->size();
    }
  });
  for (int w = 0; w < kWriters; ++w) threads[w].join();
  stop.store(1);
  threads.back().join();
  EXPECT_EQ(torn.load(), 0);
  EXPECT_EQ(counter->get(0), long{kWriters} * kIncrements);
  std::size_t n = 0;
  d->for_each([&](const std::uint32_t&, const Wide&) { ++n; });
  EXPECT_EQ(d->size(), n);
}

TEST(ListThreads, ConcurrentPushSetRead) {
  InShared<mp::List<long>> l(4096);
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i) {
        l->push_back(t * 100000 + i);
        const std::size_t n = l->size();
        if (n > 0) l->set(static_cast<std::size_t>(i) % n, -1);
        (void)l->snapshot();
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(l->size(), 3000u);
}
