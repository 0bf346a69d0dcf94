// Dict and List with real fork()ed processes: disjoint writers, one hot key, readers racing
// writers (never a torn value), for_each under churn, and the kill loops: a writer SIGKILLed at
// a random moment, over and over, while a survivor keeps working; after every kill the
// structure must be whole and usable, with size() exact.
#include <multiproc/dict.hpp>

#include <gtest/gtest.h>
#include "dict_test_util.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <vector>

namespace mp = multiproc;
using namespace std::chrono_literals;
using dicttest::InShared;
using dicttest::Triple;
using dicttest::Wide;

namespace {

std::uint64_t next_random(std::uint64_t& x) {
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return x;
}

}  // namespace

TEST(DictProcesses, DisjointInsertsFromFourProcessesAreAllPresent) {
  constexpr int kProcs = 4, kEach = 2500;
  InShared<mp::Dict<std::uint32_t, std::uint64_t>> d(kProcs * kEach);
  mptest::run_children(kProcs, [&](int p) {
    for (std::uint32_t j = 0; j < kEach; ++j) {
      const std::uint32_t k = static_cast<std::uint32_t>(p) * 1'000'000u + j;
      if (!d->insert(k, std::uint64_t{k} * 3)) return 1;
    }
    return 0;
  });
  EXPECT_EQ(d->size(), std::size_t{kProcs} * kEach);
  for (int p = 0; p < kProcs; ++p)
    for (std::uint32_t j = 0; j < kEach; ++j) {
      const std::uint32_t k = static_cast<std::uint32_t>(p) * 1'000'000u + j;
      ASSERT_EQ(d->get(k), std::uint64_t{k} * 3) << k;
    }
  std::size_t n = 0;
  d->for_each([&](const std::uint32_t& k, const std::uint64_t& v) {
    ++n;
    EXPECT_EQ(v, std::uint64_t{k} * 3);
  });
  EXPECT_EQ(n, std::size_t{kProcs} * kEach);
  EXPECT_THROW(d->insert(999'999'999u, 7), mp::Error) << "exactly full";
}

// 4 processes x `each` increments of one key through update(); a reader alongside checks the
// value never goes down. All start together (a gate), so they contend for the key's stripe.
void update_sum(int each) {
  constexpr int kProcs = 4;
  InShared<mp::Dict<int, long>> d(16);
  ASSERT_TRUE(d->insert(0, 0));
  mptest::Shared<std::atomic<int>> stop(0), go(0);
  const pid_t reader = dicttest::spawn_tied([&] {
    long last = 0;
    while (stop->load() == 0) {
      const auto v = d->get(0);
      if (!v || *v < last) return 1;
      last = *v;
    }
    return 0;
  });
  std::vector<pid_t> pids;
  for (int p = 0; p < kProcs; ++p)
    pids.push_back(dicttest::spawn_tied([&] {
      while (go->load() == 0) std::this_thread::yield();
      for (int i = 0; i < each; ++i)
        if (!d->update(0, [](long& x) { ++x; })) return 1;
      return 0;
    }));
  go->store(1);
  for (pid_t pid : pids) EXPECT_EQ(mptest::wait_exit(pid), 0);
  stop->store(1);
  EXPECT_EQ(mptest::wait_exit(reader), 0);
  EXPECT_EQ(d->get(0), long{kProcs} * each);
}

TEST(DictProcesses, UpdateOfOneKeyFromFourProcessesSumsExactly) { update_sum(5000); }
TEST(DictProcesses, UpdateOfOneKeyFromFourProcessesSumsExactlyLonger) { update_sum(100000); }

TEST(DictProcesses, ReadersNeverSeeATornValue) {
  InShared<mp::Dict<std::uint32_t, Wide>> d(64);
  for (std::uint32_t k = 0; k < 32; ++k) ASSERT_TRUE(d->insert(k, Wide::of(k)));
  mptest::Shared<std::atomic<int>> stop(0);
  mptest::Shared<std::atomic<std::uint64_t>> writes(0);
  std::vector<pid_t> writers;
  for (int w = 0; w < 2; ++w)
    writers.push_back(dicttest::spawn_tied([&, w] {
      std::uint64_t x = 0x9e3779b97f4a7c15ull + w;
      while (stop->load() == 0) {
        writes->fetch_add(1, std::memory_order_relaxed);
        const std::uint32_t k = static_cast<std::uint32_t>(next_random(x) % 48);
        switch (next_random(x) % 4) {
          case 0: d->insert_or_assign(k, Wide::of(x)); break;
          case 1: d->update(k, [&](Wide& t) { t = Wide::of(t.w[0] + 1); }); break;
          case 2: d->erase(k); break;
          default: (void)d->insert(k, Wide::of(x)); break;
        }
      }
      return 0;
    }));
  const pid_t reader = dicttest::spawn_tied([&] {
    while (writes->load() < 1000) std::this_thread::yield();  // the writers are running
    for (int round = 0; round < 3000 || writes->load() < 200'000; ++round) {
      for (std::uint32_t k = 0; k < 48; ++k) {
        const auto v = d->get(k);
        if (v && !v->whole()) return 1;
      }
      bool torn = false;
      d->for_each([&](const std::uint32_t&, const Wide& t) { torn |= !t.whole(); });
      if (torn) return 2;
    }
    return 0;
  });
  EXPECT_EQ(mptest::wait_exit(reader), 0);
  stop->store(1);
  for (pid_t w : writers) EXPECT_EQ(mptest::wait_exit(w), 0);
}

TEST(DictProcesses, ForEachPassesEveryStableEntryExactlyOnceUnderChurn) {
  static constexpr std::uint32_t kStable = 600;
  InShared<mp::Dict<std::uint32_t, std::uint32_t>> d(2000);
  for (std::uint32_t k = 0; k < kStable; ++k) ASSERT_TRUE(d->insert(k, k));
  mptest::Shared<std::atomic<int>> stop(0);
  mptest::Shared<std::atomic<std::uint64_t>> churn(0);
  std::vector<pid_t> churners;
  for (int w = 0; w < 2; ++w)
    churners.push_back(dicttest::spawn_tied([&, w] {
      std::uint64_t x = 12345 + w;
      while (stop->load() == 0) {
        churn->fetch_add(1, std::memory_order_relaxed);
        const std::uint32_t k = kStable + static_cast<std::uint32_t>(next_random(x) % 1200);
        if (next_random(x) & 1) {
          (void)d->insert(k, k);
        } else {
          d->erase(k);
        }
        // Stable keys are rewritten, never erased: they must be seen once, with some value.
        d->update(static_cast<std::uint32_t>(next_random(x) % kStable), [](std::uint32_t& v) { v += kStable; });
      }
      return 0;
    }));
  while (churn->load() < 1000) std::this_thread::yield();  // the churners are running
  for (int pass = 0; pass < 200 || churn->load() < 200'000; ++pass) {
    std::vector<int> seen(kStable, 0);
    d->for_each([&](const std::uint32_t& k, const std::uint32_t& v) {
      if (k < kStable) {
        ++seen[k];
        EXPECT_EQ(v % kStable, k);
      }
    });
    for (std::uint32_t k = 0; k < kStable; ++k) ASSERT_EQ(seen[k], 1) << "pass " << pass << " key " << k;
  }
  stop->store(1);
  for (pid_t w : churners) EXPECT_EQ(mptest::wait_exit(w), 0);
}

// ---- the kill loops -------------------------------------------------------------------------

namespace {

constexpr std::uint32_t kKeys = 300;   // more keys than capacity: inserts also meet out_of_memory
constexpr std::size_t kCapacity = 256;
// Wide values: the rewrite of a value is long enough for kills to land inside it.
using KillDict = mp::Dict<std::uint32_t, Wide>;

struct Control {
  std::atomic<std::uint64_t> victim_ops{0};
  std::atomic<int> pause{0};      // parent asks the survivor to stop between operations
  std::atomic<int> paused{0};     // survivor acknowledges
  std::atomic<int> stop{0};
};

// One random operation; returns false if it observed something impossible.
bool random_op(KillDict& d, std::uint64_t& x) {
  const std::uint32_t k = static_cast<std::uint32_t>(next_random(x) % kKeys);
  try {
    // Mostly writes (the kill should land inside them); a for_each now and then.
    const std::uint64_t op = next_random(x) % 64;
    switch (op == 63 ? 5 : op % 5) {
      case 0: (void)d.insert(k, Wide::of(x)); break;
      case 1: d.insert_or_assign(k, Wide::of(x)); break;
      case 2: d.update(k, [](Wide& t) { t = Wide::of(t.w[0] + 1); }); break;
      case 3: d.erase(k); break;
      case 4: {
        const auto v = d.get(k);
        if (v && !v->whole()) return false;
        break;
      }
      default: {
        bool ok = true;
        d.for_each([&](const std::uint32_t& key, const Wide& t) { ok &= key < kKeys && t.whole(); });
        if (!ok) return false;
      }
    }
  } catch (const mp::Error& e) {
    if (e.code() != mp::errc::out_of_memory) throw;
  }
  return true;
}

// Quiescent checks: whole values, get agrees with for_each, size() exact; every 20th round
// also that exactly capacity() entries fit.
void check_dict(KillDict& d, int round) {
  std::map<std::uint32_t, Wide> seen;
  d.for_each([&](const std::uint32_t& k, const Wide& t) {
    EXPECT_LT(k, kKeys);
    EXPECT_TRUE(t.whole()) << "round " << round << " key " << k;
    EXPECT_TRUE(seen.emplace(k, t).second) << "round " << round << ": key " << k << " twice";
  });
  ASSERT_EQ(d.size(), seen.size()) << "round " << round;
  for (std::uint32_t k = 0; k < kKeys; ++k) {
    const auto v = d.get(k);
    const auto it = seen.find(k);
    ASSERT_EQ(v.has_value(), it != seen.end()) << "round " << round << " key " << k;
    if (v) {
      ASSERT_EQ(*v, it->second);
    }
  }
  if (round % 20 != 0) return;
  {
    std::vector<std::uint32_t> added;
    for (std::uint32_t k = 1'000'000; seen.size() + added.size() < kCapacity; ++k) {
      ASSERT_TRUE(d.insert(k, Wide::of(k))) << "round " << round << ": room was promised";
      added.push_back(k);
    }
    EXPECT_THROW(d.insert(999'999, Wide::of(1)), mp::Error) << "round " << round;
    for (std::uint32_t k : added) ASSERT_TRUE(d.erase(k));
    ASSERT_EQ(d.size(), seen.size());
  }
}

}  // namespace

TEST(DictProcesses, KillLoopLeavesTheDictWholeAndUsable) {
  InShared<KillDict> d(kCapacity);
  mptest::Shared<Control> ctl;
  // The survivor works through every round, pausing only while the parent checks.
  const pid_t survivor = dicttest::spawn_tied([&] {
    std::uint64_t x = 0xabcdef;
    while (ctl->stop.load() == 0) {
      if (ctl->pause.load() != 0) {
        ctl->paused.store(1);
        while (ctl->pause.load() != 0 && ctl->stop.load() == 0) std::this_thread::yield();
        ctl->paused.store(0);
        continue;
      }
      if (!random_op(*d, x)) return 1;
    }
    return 0;
  });
  std::mt19937_64 rng(2024);
  const int rounds = mptest::kill_rounds(200);
  for (int round = 0; round < rounds; ++round) {
    const std::uint64_t start = ctl->victim_ops.load();
    const std::uint64_t seed = rng();
    const pid_t victim = dicttest::spawn_tied([&, seed] {
      std::uint64_t x = seed | 1;
      for (;;) {
        if (!random_op(*d, x)) return 1;
        ctl->victim_ops.fetch_add(1, std::memory_order_relaxed);
      }
    });
    // Kill it after a random number of operations, mid-operation more often than not.
    const std::uint64_t target = start + 1 + rng() % 400;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (ctl->victim_ops.load() < target && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    ::kill(victim, SIGKILL);
    ASSERT_EQ(mptest::wait_exit(victim), -SIGKILL) << "round " << round;
    ctl->pause.store(1);
    const auto pause_deadline = std::chrono::steady_clock::now() + 30s;
    int status = 0;
    while (ctl->paused.load() == 0 && std::chrono::steady_clock::now() < pause_deadline) {
      ASSERT_EQ(::waitpid(survivor, &status, WNOHANG), 0)
          << "round " << round << ": the survivor ended (exit " << WEXITSTATUS(status) << ": 1 = a torn value)";
      std::this_thread::yield();
    }
    ASSERT_EQ(ctl->paused.load(), 1) << "round " << round << ": the survivor is stuck";
    check_dict(*d, round);
    if (HasFatalFailure()) break;
    ctl->pause.store(0);
    while (ctl->paused.load() != 0) std::this_thread::yield();
  }
  ctl->stop.store(1);
  ctl->pause.store(0);
  EXPECT_EQ(mptest::wait_exit(survivor), 0);
  EXPECT_GT(d->repairs(), 0u) << "no kill landed while a stripe was held: the loop tested nothing";
  std::printf("kill loop: %d rounds, %llu stripe repairs\n", rounds, static_cast<unsigned long long>(d->repairs()));
}

TEST(ListProcesses, KillLoopLeavesTheListWhole) {
  constexpr std::size_t kCap = 64;
  InShared<mp::List<Triple>> l(kCap);
  mptest::Shared<std::atomic<std::uint64_t>> ops(0);
  std::mt19937_64 rng(7);
  const int rounds = mptest::kill_rounds(200);
  for (int round = 0; round < rounds; ++round) {
    const std::uint64_t start = ops->load();
    const std::uint64_t seed = rng() | 1;
    const pid_t victim = dicttest::spawn_tied([&, seed] {
      std::uint64_t x = seed;
      for (;;) {
        const std::size_t n = l->size();
        try {
          switch (next_random(x) % 4) {
            case 0: l->push_back(Triple::of(x)); break;
            case 1: (void)l->pop_back(); break;
            case 2:
              if (n > 0) l->set(next_random(x) % n, Triple::of(x));
              break;
            default:
              if (n > 0 && !(*l)[next_random(x) % n].whole()) return 1;
          }
        } catch (const mp::Error& e) {  // racing nobody: only the victim writes
          if (e.code() != mp::errc::out_of_memory) return 2;
        }
        ops->fetch_add(1, std::memory_order_relaxed);
      }
    });
    const std::uint64_t target = start + 1 + rng() % 300;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (ops->load() < target && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    ::kill(victim, SIGKILL);
    ASSERT_EQ(mptest::wait_exit(victim), -SIGKILL) << "round " << round;
    const std::vector<Triple> all = l->snapshot();  // takes the lock: repairs if needed
    ASSERT_LE(all.size(), kCap);
    ASSERT_EQ(all.size(), l->size());
    for (std::size_t i = 0; i < all.size(); ++i) ASSERT_TRUE(all[i].whole()) << "round " << round << " index " << i;
    if (!all.empty()) {  // and usable
      l->set(0, Triple::of(round));
      ASSERT_EQ((*l)[0], Triple::of(round));
    }
  }
}
