// Queues across real fork()ed processes: P x C stress, a kill loop (SIGKILL at a random moment),
// deterministic deaths between claim and publish (with the detection delay measured), close
// waking sleepers in other processes, the CPU cost of a parked consumer, JoinableQueue across
// processes. Every wait is bounded.
#include <multiproc/arena.hpp>
#include <multiproc/queue.hpp>

#include <gtest/gtest.h>
#include "mptest.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <ctime>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <vector>

namespace mp = multiproc;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

/// What producers put: who, which, and a check word so a torn item would be noticed.
struct Stamp {
  std::uint32_t producer;
  std::uint32_t seq;
  std::uint64_t check;
};
std::uint64_t stamp_check(std::uint32_t p, std::uint32_t s) { return (std::uint64_t{p} << 32 | s) * 0x9E3779B97F4A7C15ull ^ 0xABCDu; }
Stamp make_stamp(std::uint32_t p, std::uint32_t s) { return Stamp{p, s, stamp_check(p, s)}; }

/// A big item (16 KiB): copying it makes the claim-to-publish window wide enough for random
/// kills to land in it. Sampled words are checked (a torn copy fails them).
struct Big {
  Stamp stamp;
  std::uint64_t words[2046];
};
Big make_big(std::uint32_t p, std::uint32_t s) {
  Big b;
  b.stamp = make_stamp(p, s);
  for (std::size_t i = 0; i < std::size(b.words); ++i) b.words[i] = b.stamp.check ^ i;
  return b;
}
bool check_big(const Big& b) {
  if (b.stamp.check != stamp_check(b.stamp.producer, b.stamp.seq)) return false;
  for (std::size_t i = 0; i < std::size(b.words); i += 61)
    if (b.words[i] != (b.stamp.check ^ i)) return false;
  return b.words[std::size(b.words) - 1] == (b.stamp.check ^ (std::size(b.words) - 1));
}

/// ByteQueue messages: producer, seq, then 64-bit words of a pattern; the length (8..max)
/// depends on both.
std::vector<std::byte> encode(std::uint32_t p, std::uint32_t s, std::size_t max) {
  const std::uint64_t check = stamp_check(p, s);
  const std::size_t n = 8 + check % (max - 8 + 1);
  std::vector<std::byte> m(n);
  std::memcpy(m.data(), &p, 4);
  std::memcpy(m.data() + 4, &s, 4);
  std::size_t i = 8;
  for (; i + 8 <= n; i += 8) {
    const std::uint64_t w = check ^ i;
    std::memcpy(m.data() + i, &w, 8);
  }
  for (; i < n; ++i) m[i] = static_cast<std::byte>(check);
  return m;
}
bool decode(const std::vector<std::byte>& m, std::size_t max, Stamp& out) {
  if (m.size() < 8) return false;
  std::uint32_t p, s;
  std::memcpy(&p, m.data(), 4);
  std::memcpy(&s, m.data() + 4, 4);
  const std::uint64_t check = stamp_check(p, s);
  if (m.size() != 8 + check % (max - 8 + 1)) return false;
  const std::size_t n = m.size();
  std::size_t i = 8;
  for (; i + 8 <= n; i += 8) {
    if (i % 512 != 8 && i + 16 <= n) continue;  // sample: every 512th byte and the last word
    std::uint64_t w;
    std::memcpy(&w, m.data() + i, 8);
    if (w != (check ^ i)) return false;
  }
  for (; i < n; ++i)
    if (m[i] != static_cast<std::byte>(check)) return false;
  out = make_stamp(p, s);
  return true;
}

/// Per-run shared results: producers' "put returned" counters and consumers' logs.
struct alignas(64) Results {
  static constexpr int kMaxProcs = 8;
  std::atomic<std::uint32_t> put_done[kMaxProcs];
  std::atomic<std::uint32_t> logged[kMaxProcs];
  std::atomic<std::uint32_t> torn;
  std::atomic<std::uint32_t> started;
  std::uint32_t per_log;  // capacity of each log
  Stamp* log(int c) { return reinterpret_cast<Stamp*>(this + 1) + static_cast<std::size_t>(c) * per_log; }
  static std::size_t bytes(std::uint32_t per_log) { return sizeof(Results) + kMaxProcs * per_log * sizeof(Stamp); }
};

/// A 16-byte item (converts to and from long): too big for packed slots, so its queues claim
/// slots — the deterministic deaths below need a claim to die in.
struct Wide {
  long v;
  long pad = 0;
  Wide(long x = 0) : v(x) {}  // NOLINT(google-explicit-constructor): reads as long in the tests
  operator long() const { return v; }
};
static_assert(!mp::Queue<Wide>::packed && sizeof(Wide) == 16);

/// Packed queues (8-byte items) carry (producer << 32 | seq); there is nothing to tear.
std::uint64_t small_stamp(std::uint32_t p, std::uint32_t s) { return std::uint64_t{p} << 32 | s; }

enum class Kind { queue, big_queue, byte_queue, small_queue };

struct RunSpec {
  Kind kind;
  int producers, consumers;
  std::uint32_t items;        // per producer
  std::size_t capacity;
  std::size_t max_message = 96;  // ByteQueue
};

/// Puts through either queue type.
struct Endpoint {
  mp::Queue<Stamp>* q = nullptr;
  mp::Queue<Big>* big = nullptr;
  mp::ByteQueue* bq = nullptr;
  mp::Queue<std::uint64_t>* small = nullptr;
  void put(std::uint32_t p, std::uint32_t s) {
    if (small) small->put(small_stamp(p, s));
    else if (q) q->put(make_stamp(p, s));
    else if (big) big->put(make_big(p, s));
    else bq->put(encode(p, s, bq->max_message()));
  }
  // Throws Closed when closed and drained; false for a torn item.
  bool get(Stamp& out) {
    if (small) {
      const std::uint64_t w = small->get();
      out = make_stamp(static_cast<std::uint32_t>(w >> 32), static_cast<std::uint32_t>(w));
      return true;
    }
    if (q) {
      out = q->get();
      return out.check == stamp_check(out.producer, out.seq);
    }
    if (big) {
      const Big b = big->get();
      out = b.stamp;
      return check_big(b);
    }
    return decode(bq->get(), bq->max_message(), out);
  }
  void close() { small ? small->close() : q ? q->close() : big ? big->close() : bq->close(); }
  std::uint64_t recovered() const {
    return small ? small->recovered_slots() : q ? q->recovered_slots() : big ? big->recovered_slots() : bq->recovered_slots();
  }
  mp::detail::Ring& ring() const { return small ? small->ring() : q ? q->ring() : big ? big->ring() : bq->ring(); }
};

struct Outcome {
  std::uint64_t recovered = 0;
  bool victim_was_consumer = false;
  bool victim_died = false;  // killed before it finished (a producer) / before close (a consumer)
  int claims_left = 0;       // slots still claimed by the dead victim at the end (never needed again)
};

/// Runs producers and consumers as processes. `victim` (index over producers then consumers,
/// -1: none) is SIGKILLed after `kill_after`. Checks every guarantee; returns what happened.
Outcome run_and_check(const RunSpec& r, int victim = -1, std::chrono::microseconds kill_after = {}) {
  auto arena = mp::Arena::create(std::max<std::size_t>(1 << 20, r.capacity * (r.max_message + sizeof(Big) + 128) + (1 << 16)));
  Endpoint ep;
  if (r.kind == Kind::queue) ep.q = &arena.make<mp::Queue<Stamp>>("q", r.capacity);
  else if (r.kind == Kind::big_queue) ep.big = &arena.make<mp::Queue<Big>>("q", r.capacity);
  else if (r.kind == Kind::small_queue) ep.small = &arena.make<mp::Queue<std::uint64_t>>("q", r.capacity);
  else ep.bq = &arena.make<mp::ByteQueue>("q", r.capacity, r.max_message);
  const std::uint32_t per_log = r.items * static_cast<std::uint32_t>(r.producers);
  mptest::SharedMemory mem(Results::bytes(per_log));
  auto* res = mem.make<Results>();
  res->per_log = per_log;

  std::vector<pid_t> pids;
  for (int p = 0; p < r.producers; ++p)
    pids.push_back(mptest::spawn([&, p] {
      res->started.fetch_add(1);
      for (std::uint32_t s = 0; s < r.items; ++s) {
        ep.put(static_cast<std::uint32_t>(p), s);
        res->put_done[p].store(s + 1, std::memory_order_release);
      }
      return 0;
    }));
  for (int c = 0; c < r.consumers; ++c)
    pids.push_back(mptest::spawn([&, c] {
      res->started.fetch_add(1);
      Stamp* log = res->log(c);
      for (;;) {
        Stamp s{};
        bool ok;
        try {
          ok = ep.get(s);
        } catch (const mp::Closed&) {
          return 0;
        }
        if (!ok) res->torn.fetch_add(1);
        const std::uint32_t n = res->logged[c].load(std::memory_order_relaxed);
        if (n >= res->per_log) return 3;  // more items than were ever put: duplicates
        log[n] = s;
        res->logged[c].store(n + 1, std::memory_order_release);
      }
    }));
  Outcome out;
  if (victim >= 0) {
    // Kill at a random moment of the run proper (not during the forks).
    const auto end = Clock::now() + 10s;
    while (res->started.load() < static_cast<std::uint32_t>(r.producers + r.consumers) && Clock::now() < end)
      std::this_thread::sleep_for(50us);
    std::this_thread::sleep_for(kill_after);
    ::kill(pids[static_cast<std::size_t>(victim)], SIGKILL);
    out.victim_was_consumer = victim >= r.producers;
  }
  // Survivors finish: producers first, then close so consumers drain and leave.
  for (int p = 0; p < r.producers; ++p) {
    const int code = mptest::wait_exit(pids[static_cast<std::size_t>(p)], 20s);
    if (p == victim) {
      EXPECT_TRUE(code == 0 || code == -SIGKILL) << code;
      out.victim_died = code == -SIGKILL;
    } else {
      EXPECT_EQ(code, 0) << "producer " << p;
    }
  }
  ep.close();
  for (int c = 0; c < r.consumers; ++c) {
    const int i = r.producers + c;
    const int code = mptest::wait_exit(pids[static_cast<std::size_t>(i)], 20s);
    if (i == victim) {
      EXPECT_TRUE(code == 0 || code == -SIGKILL) << code;
      out.victim_died = code == -SIGKILL;
    } else {
      EXPECT_EQ(code, 0) << "consumer " << c;
    }
  }
  out.recovered = ep.recovered();
  // At the end only the dead victim may still hold a claim (on a slot nobody needed again).
  mp::detail::Ring& ring = ep.ring();
  for (std::size_t i = 0; i < ring.capacity(); ++i) {
    const std::uint64_t st = ring.test_state(ring.stride(), i);
    const auto kind = mp::detail::Ring::kind_of(st);
    if ((kind == mp::detail::Ring::kWriting || kind == mp::detail::Ring::kReading) && !mp::detail::Ring::is_sealed(st)) {
      ++out.claims_left;
      EXPECT_TRUE(victim >= 0 && static_cast<pid_t>(mp::detail::Ring::tid_of(st)) == pids[static_cast<std::size_t>(victim)])
          << "slot " << i << " still claimed by " << mp::detail::Ring::tid_of(st);
    }
  }

  // Never a torn item; never a duplicate; FIFO per producer as each consumer saw it.
  EXPECT_EQ(res->torn.load(), 0u);
  std::map<std::pair<std::uint32_t, std::uint32_t>, int> seen;
  for (int c = 0; c < r.consumers; ++c) {
    std::vector<std::int64_t> last(static_cast<std::size_t>(r.producers), -1);
    const Stamp* log = res->log(c);
    for (std::uint32_t i = 0; i < res->logged[c].load(); ++i) {
      const Stamp& s = log[i];
      if (s.producer >= static_cast<std::uint32_t>(r.producers) || s.seq >= r.items) {
        ADD_FAILURE() << "garbage item " << s.producer << "/" << s.seq;
        continue;
      }
      EXPECT_GT(static_cast<std::int64_t>(s.seq), last[s.producer]) << "FIFO broken for producer " << s.producer;
      last[s.producer] = s.seq;
      const int times = ++seen[std::make_pair(s.producer, s.seq)];
      EXPECT_EQ(times, 1) << "duplicate " << s.producer << "/" << s.seq;
    }
  }
  // Nothing whose put returned is lost, except at most the one item a killed consumer held.
  std::size_t missing = 0;
  for (int p = 0; p < r.producers; ++p) {
    const std::uint32_t done = res->put_done[p].load();
    if (p != victim) {
      EXPECT_EQ(done, r.items);
    }
    for (std::uint32_t s = 0; s < done; ++s)
      if (!seen.count({static_cast<std::uint32_t>(p), s})) ++missing;
  }
  EXPECT_LE(missing, out.victim_was_consumer ? 1u : 0u);
  if (victim < 0) {
    EXPECT_EQ(seen.size(), static_cast<std::size_t>(r.producers) * r.items);
  }
  return out;
}

}  // namespace

// ---- P x C stress ---------------------------------------------------------------------------

class Stress : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(Stress, NoLossNoDuplicateFifoPerProducer) {
  const auto [p, c] = GetParam();
  const std::uint32_t items = 60000 / static_cast<std::uint32_t>(p);
  run_and_check(RunSpec{Kind::queue, p, c, items, 16});
  run_and_check(RunSpec{Kind::queue, p, c, items / 4, 1});  // capacity 1: every operation contends
  run_and_check(RunSpec{Kind::small_queue, p, c, items, 16});  // packed slots
  run_and_check(RunSpec{Kind::small_queue, p, c, items / 4, 1});
  run_and_check(RunSpec{Kind::byte_queue, p, c, items / 4, 8});
}

INSTANTIATE_TEST_SUITE_P(PxC, Stress,
                         ::testing::Values(std::tuple{1, 1}, std::tuple{2, 2}, std::tuple{4, 1}, std::tuple{1, 4},
                                           std::tuple{4, 4}),
                         [](const auto& info) {
                           return std::to_string(std::get<0>(info.param)) + "x" + std::to_string(std::get<1>(info.param));
                         });

// ---- kill loop ------------------------------------------------------------------------------

TEST(KillLoop, SurvivorsFinishAndGuaranteesHold) {
  const int rounds = mptest::kill_rounds(200);
  std::mt19937 rng(12345);
  std::uint64_t recovered = 0;
  int consumer_kills = 0, died_mid_run = 0, mid_op = 0;
  Clock::duration busy{};
  for (int round = 0; round < rounds; ++round) {
    const std::size_t caps[] = {1, 2, 4, 8};
    // In turn: 16 KiB items and ByteQueue messages of up to 64 KiB — copies long enough that
    // some kills land between a claim and its publish — and 8-byte items in packed slots
    // (nothing to claim: a kill lands before or after a put's or get's one CAS).
    const Kind kinds[] = {Kind::big_queue, Kind::byte_queue, Kind::small_queue};
    RunSpec r{kinds[round % 3], 2, 2, round % 3 == 2 ? 3000u : 300u, caps[rng() % 4], 65536};
    const int victim = static_cast<int>(rng() % 4);
    const auto after = std::chrono::microseconds(rng() % 1000);
    const auto t0 = Clock::now();
    const Outcome o = run_and_check(r, victim, after);
    busy += Clock::now() - t0;
    died_mid_run += o.victim_died;
    mid_op += static_cast<int>(o.recovered) + o.claims_left;
    recovered += o.recovered;
    consumer_kills += o.victim_was_consumer;
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "round " << round << " (victim " << victim << ", after " << after.count() << " us)";
      break;
    }
  }
  std::printf("[ info     ] %d rounds (%.1f ms each), %d consumers and %d producers killed (%d before finishing), "
              "%d of them between claim and publish/release; %llu slots recovered from dead claimants\n",
              rounds, std::chrono::duration<double, std::milli>(busy).count() / rounds, consumer_kills,
              rounds - consumer_kills, died_mid_run, mid_op, static_cast<unsigned long long>(recovered));
}

// ---- deterministic deaths between claim and publish ------------------------------------------

TEST(Death, ProducerKilledAfterClaimIsSkippedAndTheDelayIsMeasured) {
  auto arena = mp::Arena::create(1 << 20);
  auto& q = arena.make<mp::Queue<Wide>>("q", 4);
  q.put(1);
  // A child claims the next slot and dies there, exactly as if killed between claim and publish.
  const pid_t child = mptest::spawn([&] {
    if (!q.ring().test_claim_and_abandon(mp::Queue<Wide>::slot_stride, true)) return 1;
    ::raise(SIGKILL);
    return 2;
  });
  ASSERT_EQ(mptest::wait_exit(child, 10s), -SIGKILL);
  q.put(3);  // lands behind the dead claim
  EXPECT_EQ(q.get(), 1);
  const auto start = Clock::now();
  EXPECT_EQ(q.try_get_for(10s), 3);  // waits behind the stuck slot, finds the claimant dead, skips it
  const auto delay = Clock::now() - start;
  EXPECT_GE(delay, mp::detail::kStuckBound);
  EXPECT_EQ(q.recovered_slots(), 1u);
  std::printf("[ info     ] dead producer detected and skipped after %.2f ms (bound %lld ms)\n",
              std::chrono::duration<double, std::milli>(delay).count(),
              static_cast<long long>(mp::detail::kStuckBound.count()));
  for (long i = 0; i < 20; ++i) {  // and the queue goes on, lap after lap
    q.put(i);
    EXPECT_EQ(q.get(), i);
  }
}

TEST(Death, ConsumerKilledAfterClaimLosesOneItemAndProducersRecover) {
  auto arena = mp::Arena::create(1 << 20);
  auto& q = arena.make<mp::JoinableQueue<Wide>>("q", 2);
  q.put(1);
  q.put(2);
  const pid_t child = mptest::spawn([&] {
    if (!q.ring().test_claim_and_abandon(mp::Queue<Wide>::slot_stride, false)) return 1;
    ::raise(SIGKILL);
    return 2;
  });
  ASSERT_EQ(mptest::wait_exit(child, 10s), -SIGKILL);
  // Full: slot 0 is held by the dead reader, slot 1 holds item 2. A put waits, then recovers.
  const auto start = Clock::now();
  EXPECT_TRUE(q.try_put_for(3, 10s));
  const auto delay = Clock::now() - start;
  std::printf("[ info     ] dead consumer detected, its slot recycled after %.2f ms\n",
              std::chrono::duration<double, std::milli>(delay).count());
  EXPECT_EQ(q.recovered_slots(), 1u);
  EXPECT_EQ(q.get(), 2);
  EXPECT_EQ(q.get(), 3);
  EXPECT_FALSE(q.try_get().has_value());  // item 1 died with its consumer
  // The lost item no longer counts as unfinished: join completes after the two real tasks.
  q.task_done();
  q.task_done();
  EXPECT_TRUE(q.join_for(5s));
}

TEST(Death, PollingConsumersRecoverToo) {
  auto arena = mp::Arena::create(1 << 20);
  auto& q = arena.make<mp::ByteQueue>("q", 4, 16);
  const pid_t child = mptest::spawn([&] {
    if (!q.ring().test_claim_and_abandon(q.ring().stride(), true)) return 1;
    ::raise(SIGKILL);
    return 2;
  });
  ASSERT_EQ(mptest::wait_exit(child, 10s), -SIGKILL);
  const std::vector<std::byte> msg(5, std::byte{7});
  q.put(msg);
  const auto end = Clock::now() + 10s;
  std::optional<std::vector<std::byte>> got;
  while (!got && Clock::now() < end) {
    got = q.try_get();  // never blocks; the thread's watch recovers the dead claim after the bound
    if (!got) std::this_thread::sleep_for(100us);
  }
  EXPECT_EQ(got, msg);
  EXPECT_EQ(q.recovered_slots(), 1u);
}

TEST(Death, ParkedConsumerFindsADeadClaimLater) {
  // The consumer parks on an empty queue before the producer claims and dies: nobody notifies
  // it, its periodic re-check (or the next put) finds the dead claim.
  auto arena = mp::Arena::create(1 << 20);
  auto& q = arena.make<mp::Queue<Wide>>("q", 4);
  mptest::SharedMemory mem(4096);
  auto* got = mem.make<std::atomic<long>>(0);
  const pid_t consumer = mptest::spawn([&] {
    auto v = q.try_get_for(20s);
    got->store(v ? long{*v} : -1L);
    return v ? 0 : 1;
  });
  std::this_thread::sleep_for(20ms);
  const pid_t dier = mptest::spawn([&] {
    if (!q.ring().test_claim_and_abandon(mp::Queue<Wide>::slot_stride, true)) return 1;
    ::raise(SIGKILL);
    return 2;
  });
  ASSERT_EQ(mptest::wait_exit(dier, 10s), -SIGKILL);
  const auto start = Clock::now();
  q.put(9);
  EXPECT_EQ(mptest::wait_exit(consumer, 20s), 0);
  EXPECT_EQ(got->load(), 9);
  std::printf("[ info     ] parked consumer got the item behind a dead claim %.2f ms after the put\n",
              std::chrono::duration<double, std::milli>(Clock::now() - start).count());
}

// ---- close, timeouts and parking across processes ---------------------------------------------

TEST(Close, WakesEverySleeperInOtherProcesses) {
  auto arena = mp::Arena::create(1 << 20);
  auto& empty = arena.make<mp::Queue<int>>("empty", 2);
  auto& full = arena.make<mp::ByteQueue>("full", 1, 8);
  full.put(std::vector<std::byte>(3));
  std::vector<pid_t> pids;
  for (int i = 0; i < 3; ++i) {
    pids.push_back(mptest::spawn([&] {
      try {
        (void)empty.get();
      } catch (const mp::Closed&) {
        return 0;
      }
      return 1;
    }));
    pids.push_back(mptest::spawn([&] {
      try {
        full.put(std::vector<std::byte>(1));
      } catch (const mp::Closed&) {
        return 0;
      }
      return 1;
    }));
  }
  std::this_thread::sleep_for(100ms);  // let them park
  empty.close();
  full.close();
  for (pid_t p : pids) EXPECT_EQ(mptest::wait_exit(p, 10s), 0);
  EXPECT_EQ(full.get().size(), 3u);  // still drains
  EXPECT_THROW(full.get(), mp::Closed);
}

/// Producers put until Closed while consumers get until Closed, and the queue is closed in the
/// middle of it all: every put that returned was got exactly once (an item published after a
/// get had thrown Closed would be got by nobody, and counted missing here).
template <class Q>
void close_race(int rounds) {
  for (int round = 0; round < rounds; ++round) {
    auto arena = mp::Arena::create(1 << 20);
    auto& q = arena.make<Q>("q", 1 + static_cast<std::size_t>(round % 4));
    mptest::SharedMemory mem(4096);
    auto* put = mem.make<std::atomic<std::uint64_t>>(0);
    auto* got = mem.make<std::atomic<std::uint64_t>>(0);
    std::vector<pid_t> pids;
    for (int i = 0; i < 2; ++i) {
      pids.push_back(mptest::spawn([&] {
        try {
          for (;;) {
            q.put(typename Q::value_type{});
            put->fetch_add(1);
          }
        } catch (const mp::Closed&) {
          return 0;
        }
      }));
      pids.push_back(mptest::spawn([&] {
        try {
          for (;;) {
            (void)q.get();
            got->fetch_add(1);
          }
        } catch (const mp::Closed&) {
          return q.try_get().has_value() ? 1 : 0;  // closed and drained stays drained
        }
      }));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200 + 300 * (round % 5)));
    q.close();
    for (pid_t p : pids) EXPECT_EQ(mptest::wait_exit(p, 20s), 0);
    EXPECT_EQ(put->load(), got->load()) << "round " << round;
    EXPECT_THROW(q.put(typename Q::value_type{}), mp::Closed);
    EXPECT_EQ(q.size(), 0u);
    if (::testing::Test::HasFailure()) break;
  }
}

TEST(Close, RacingPutsAndGetsLoseNothing) {
  close_race<mp::Queue<std::uint64_t>>(20);  // packed: a get seals the drained slot
  close_race<mp::Queue<Stamp>>(20);          // claimed: a put checks closed after its claim
}

TEST(Park, BlockedGetIsWokenByAPutFromAnotherProcess) {
  auto arena = mp::Arena::create(1 << 20);
  auto& q = arena.make<mp::Queue<int>>("q", 2);
  const pid_t c = mptest::spawn([&] { return q.get() == 77 ? 0 : 1; });
  std::this_thread::sleep_for(50ms);
  q.put(77);
  EXPECT_EQ(mptest::wait_exit(c, 10s), 0);
}

TEST(Park, AConsumerParkedForASecondUsesUnderOnePercentOfACore) {
  auto arena = mp::Arena::create(1 << 20);
  auto& q = arena.make<mp::Queue<int>>("q", 2);
  mptest::SharedMemory mem(4096);
  auto* cpu_ns = mem.make<std::atomic<long long>>(-1);
  const pid_t c = mptest::spawn([&] {
    timespec a{}, b{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    const bool got = q.try_get_for(1s).has_value();
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    cpu_ns->store((b.tv_sec - a.tv_sec) * 1'000'000'000LL + (b.tv_nsec - a.tv_nsec));
    return got ? 1 : 0;
  });
  EXPECT_EQ(mptest::wait_exit(c, 20s), 0);
  std::printf("[ info     ] CPU used by a consumer parked 1 s on an empty queue: %.3f ms\n", cpu_ns->load() / 1e6);
  EXPECT_GE(cpu_ns->load(), 0);
  EXPECT_LT(cpu_ns->load(), 10'000'000LL);  // < 1% of a core: CPU time, not wall time
}

TEST(JoinableQueue, JoinReturnsWhenWorkersInOtherProcessesAreDone) {
  auto arena = mp::Arena::create(1 << 20);
  auto& q = arena.make<mp::JoinableQueue<int>>("jobs", 8);
  mptest::SharedMemory mem(4096);
  auto* sum = mem.make<std::atomic<int>>(0);
  std::vector<pid_t> workers;
  for (int w = 0; w < 3; ++w)
    workers.push_back(mptest::spawn([&] {
      for (;;) {
        int job;
        try {
          job = q.get();
        } catch (const mp::Closed&) {
          return 0;
        }
        std::this_thread::sleep_for(100us);
        sum->fetch_add(job);
        q.task_done();
      }
    }));
  for (int i = 1; i <= 200; ++i) q.put(i);
  EXPECT_TRUE(q.join_for(30s));
  EXPECT_EQ(sum->load(), 200 * 201 / 2);  // join returned only after every task was done
  EXPECT_EQ(q.unfinished_tasks(), 0u);
  q.close();
  for (pid_t p : workers) EXPECT_EQ(mptest::wait_exit(p, 10s), 0);
  EXPECT_THROW(q.task_done(), mp::Error);
}
