// Single-process behaviour of Queue, JoinableQueue and ByteQueue: capacity, FIFO, the four
// blocking forms, close, JoinableQueue accounting, ByteQueue sizes and corruption handling,
// and one arena mapped at two addresses.
#include <multiproc/arena.hpp>
#include <multiproc/queue.hpp>

#include <gtest/gtest.h>
#include "mptest.hpp"

#include <array>
#include <chrono>
#include <cstring>
#include <numeric>
#include <thread>
#include <vector>

namespace mp = multiproc;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

struct Job {
  int id;
  double weight;
};

std::vector<std::byte> bytes(std::size_t n, unsigned seed = 1) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 131 + seed) & 0xFF);
  return v;
}

mp::Arena make_arena() { return mp::Arena::create(8 << 20); }

}  // namespace

TEST(Queue, CapacityIsExactlyWhatWasAsked) {
  auto arena = make_arena();
  for (std::size_t cap : {1u, 2u, 3u, 5u, 7u, 64u, 100u, 1000u}) {
    auto& q = arena.make_anonymous<mp::Queue<int>>(cap);
    EXPECT_EQ(q.capacity(), cap);
    for (std::size_t i = 0; i < cap; ++i) ASSERT_TRUE(q.try_put(static_cast<int>(i))) << cap << " " << i;
    EXPECT_FALSE(q.try_put(-1)) << cap;
    EXPECT_TRUE(q.full());
    EXPECT_EQ(q.size(), cap);
    for (std::size_t i = 0; i < cap; ++i) ASSERT_EQ(q.try_get(), static_cast<int>(i));
    EXPECT_FALSE(q.try_get().has_value());
    EXPECT_TRUE(q.empty());
    arena.destroy(q);
  }
}

TEST(Queue, FifoAcrossManyLaps) {
  auto arena = make_arena();
  auto& q = arena.make<mp::Queue<Job>>("jobs", 3);
  int next_in = 0, next_out = 0;
  for (int round = 0; round < 1000; ++round) {
    const int n = 1 + round % 3;
    for (int i = 0; i < n; ++i) q.put(Job{next_in++, 0.5});
    EXPECT_EQ(q.size(), static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) ASSERT_EQ(q.get().id, next_out++);
  }
  EXPECT_TRUE(q.empty());
}

TEST(Queue, ItemsNeedNotBeDefaultConstructible) {
  struct Point {
    explicit Point(int v) : x(v), y(-v) {}
    int x, y;
  };
  static_assert(!std::is_default_constructible_v<Point> && std::is_trivially_copyable_v<Point>);
  auto arena = make_arena();
  auto& q = arena.make<mp::Queue<Point>>("points", 2);
  q.put(Point(3));
  EXPECT_EQ(q.get().y, -3);
  q.put(Point(4));
  EXPECT_EQ(q.try_get()->x, 4);
}

TEST(Queue, RejectsCapacityZeroAndHuge) {
  auto arena = make_arena();
  EXPECT_THROW(arena.make_anonymous<mp::Queue<int>>(0), mp::Error);
  EXPECT_THROW(arena.make_anonymous<mp::Queue<int>>(std::size_t{1} << 33), mp::Error);
  try {
    arena.make_anonymous<mp::Queue<int>>(1'000'000'000);  // 64 GB of slots: more than the arena
    ADD_FAILURE() << "expected out_of_memory";
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.code(), mp::errc::out_of_memory) << e.what();
  }
}

TEST(Queue, DestroyGivesTheSlotsBack) {
  auto arena = make_arena();
  (void)arena.make<int>("first", 0);  // the directory's first page stays: count from here
  const std::size_t before = arena.used();
  auto& q = arena.make<mp::Queue<long>>("q", 1000);
  EXPECT_GE(arena.used(), before + 1000 * mp::Queue<long>::slot_stride);
  arena.destroy(q);
  EXPECT_EQ(arena.used(), before);
}

TEST(Queue, SlotsArePackedOrWholeCacheLines) {
  // Items of up to 8 bytes share 16-byte packed slots where there is a 16-byte CAS.
  static_assert(mp::Queue<char>::slot_stride == (mp::detail::kHasPackedSlots ? 16 : 64));
  static_assert(mp::Queue<long>::slot_stride == (mp::detail::kHasPackedSlots ? 16 : 64));
  static_assert(mp::Queue<long>::packed == mp::detail::kHasPackedSlots);
  static_assert(!mp::Queue<std::array<char, 9>>::packed && mp::Queue<std::array<char, 9>>::slot_stride == 64);
  static_assert(mp::Queue<std::array<char, 56>>::slot_stride == 64);
  static_assert(mp::Queue<std::array<char, 57>>::slot_stride == 128);
  static_assert(sizeof(mp::Queue<long>) == 256);
  SUCCEED();
}

TEST(Queue, TimedFormsWaitNoLessThanTheirDeadline) {
  auto arena = make_arena();
  auto& q = arena.make<mp::Queue<int>>("q", 1);
  auto start = Clock::now();
  EXPECT_FALSE(q.try_get_for(30ms).has_value());
  EXPECT_GE(Clock::now() - start, 30ms);
  start = Clock::now();
  EXPECT_FALSE(q.try_get_until(start + 20ms).has_value());
  EXPECT_GE(Clock::now() - start, 20ms);
  EXPECT_FALSE(q.try_get_for(-5ms).has_value());  // already expired: no wait, no error

  q.put(1);
  start = Clock::now();
  EXPECT_FALSE(q.try_put_for(2, 30ms));
  EXPECT_GE(Clock::now() - start, 30ms);
  start = Clock::now();
  EXPECT_FALSE(q.try_put_until(2, start + 20ms));
  EXPECT_GE(Clock::now() - start, 20ms);
  EXPECT_FALSE(q.try_put_until(2, std::chrono::system_clock::now() + 5ms));  // another clock
  EXPECT_EQ(q.get(), 1);
  EXPECT_TRUE(q.try_put_for(3, 0ms));  // room: succeeds even with a zero timeout
  EXPECT_EQ(q.try_get_for(0ms), 3);
}

TEST(Queue, TimedGetReturnsWhenAnItemArrives) {
  auto arena = make_arena();
  auto& q = arena.make<mp::Queue<int>>("q", 4);
  std::thread t([&] {
    std::this_thread::sleep_for(20ms);
    q.put(42);
  });
  EXPECT_EQ(q.try_get_for(30s), 42);
  t.join();
}

TEST(Queue, CloseSemantics) {
  auto arena = make_arena();
  auto& q = arena.make<mp::Queue<int>>("q", 4);
  q.put(1);
  q.put(2);
  EXPECT_FALSE(q.closed());
  q.close();
  q.close();  // idempotent
  EXPECT_TRUE(q.closed());
  EXPECT_THROW(q.put(3), mp::Closed);
  EXPECT_THROW(q.try_put(3), mp::Closed);
  EXPECT_THROW(q.try_put_for(3, 1ms), mp::Closed);
  EXPECT_EQ(q.get(), 1);          // drains...
  EXPECT_EQ(q.try_get(), 2);
  EXPECT_THROW(q.get(), mp::Closed);  // ...then Closed
  EXPECT_FALSE(q.try_get().has_value());
  const auto start = Clock::now();
  EXPECT_FALSE(q.try_get_for(10s).has_value());  // closed and drained: returns at once
  EXPECT_LT(Clock::now() - start, 10s);
  try {
    q.get();
  } catch (const mp::Closed& e) {
    EXPECT_EQ(e.code(), mp::errc::closed);
    EXPECT_NE(std::string(e.what()).find("Queue::get"), std::string::npos) << e.what();
  }
}

TEST(Queue, APutThatMissedTheCloseCannotLandAfterDrained) {
  // Packed slots: the get that finds the closed queue drained seals the slot, so a put that had
  // loaded `closed` before close() (simulated by clearing the flag) fails on the seal.
  auto arena = make_arena();
  auto& q = arena.make<mp::Queue<long>>("q", 4);
  if (!mp::Queue<long>::packed) GTEST_SKIP() << "no packed slots on this target";
  q.put(1);
  q.close();
  EXPECT_EQ(q.get(), 1);
  EXPECT_THROW(q.get(), mp::Closed);  // drained: this get sealed the next slot
  q.ring().test_unsee_close();
  EXPECT_THROW(q.put(2), mp::Closed);  // the seal stops it
  EXPECT_THROW(q.try_put(2), mp::Closed);
  EXPECT_FALSE(q.try_get().has_value());
  EXPECT_EQ(q.size(), 0u);
  EXPECT_THROW(q.get(), mp::Closed);
}

TEST(Queue, CloseWakesBlockedThreads) {
  auto arena = make_arena();
  auto& empty = arena.make<mp::Queue<int>>("empty", 2);
  auto& full = arena.make<mp::Queue<int>>("full", 1);
  full.put(0);
  std::atomic<int> woke{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 3; ++i) {
    ts.emplace_back([&] {
      try {
        (void)empty.get();
      } catch (const mp::Closed&) {
        ++woke;
      }
    });
    ts.emplace_back([&] {
      try {
        full.put(1);
      } catch (const mp::Closed&) {
        ++woke;
      }
    });
  }
  std::this_thread::sleep_for(50ms);
  empty.close();
  full.close();
  for (auto& t : ts) t.join();
  EXPECT_EQ(woke.load(), 6);
  EXPECT_EQ(full.get(), 0);  // what was in stays gettable
}

TEST(Queue, OneArenaMappedAtTwoAddresses) {
  auto a = make_arena();
  auto& q1 = a.make<mp::Queue<long>>("q", 5);
  auto b = mp::Arena::from_fd(a.fd());
  auto* q2 = b.find<mp::Queue<long>>("q");
  ASSERT_NE(q2, nullptr);
  ASSERT_NE(static_cast<void*>(q2), static_cast<void*>(&q1));
  for (long i = 0; i < 100; ++i) {
    q1.put(i);
    ASSERT_EQ(q2->get(), i);
    q2->put(-i);
    ASSERT_EQ(q1.get(), -i);
  }
  q2->close();
  EXPECT_TRUE(q1.closed());
}

TEST(Queue, WorksOverCallerStorage) {
  mptest::SharedMemory mem(sizeof(mp::Queue<int>) + mp::Queue<int>::storage_bytes(10));
  auto* base = static_cast<std::byte*>(mem.get());
  auto* q = new (base) mp::Queue<int>(std::span<std::byte>(base + sizeof(mp::Queue<int>), mp::Queue<int>::storage_bytes(10)), 10);
  for (int i = 0; i < 10; ++i) q->put(i);
  EXPECT_FALSE(q->try_put(10));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(q->get(), i);
  EXPECT_THROW(mp::Queue<int>(std::span<std::byte>(base + sizeof(mp::Queue<int>), 100), 10), mp::Error);      // too small
  EXPECT_THROW(mp::Queue<int>(std::span<std::byte>(base + sizeof(mp::Queue<int>) + 8, 4096), 2), mp::Error);  // misaligned
}

TEST(JoinableQueue, JoinWaitsForEveryTaskDone) {
  auto arena = make_arena();
  auto& q = arena.make<mp::JoinableQueue<int>>("jq", 8);
  EXPECT_TRUE(q.join_for(0ms));  // nothing put: done
  EXPECT_THROW(q.task_done(), mp::Error);
  q.put(1);
  q.put(2);
  EXPECT_EQ(q.unfinished_tasks(), 2u);
  EXPECT_THROW(q.task_done(), mp::Error);  // put but not got yet: nothing to be done with
  const auto start = Clock::now();
  EXPECT_FALSE(q.join_for(20ms));
  EXPECT_GE(Clock::now() - start, 20ms);
  EXPECT_EQ(q.get(), 1);
  q.task_done();
  EXPECT_FALSE(q.join_for(0ms));
  EXPECT_EQ(q.get(), 2);
  std::thread worker([&] {
    std::this_thread::sleep_for(20ms);
    q.task_done();
  });
  q.join();
  worker.join();
  EXPECT_EQ(q.unfinished_tasks(), 0u);
  try {
    q.task_done();
    ADD_FAILURE() << "task_done past the items got must throw";
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.code(), std::errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("JoinableQueue::task_done"), std::string::npos) << e.what();
  }
  mp::Queue<int>& base = q;  // a put through the base counts too
  base.put(3);
  EXPECT_EQ(q.unfinished_tasks(), 1u);
}

TEST(JoinableQueue, FailedPutsAreNotCounted) {
  auto arena = make_arena();
  auto& q = arena.make<mp::JoinableQueue<int>>("jq", 1);
  q.put(1);
  EXPECT_FALSE(q.try_put(2));
  EXPECT_FALSE(q.try_put_for(2, 1ms));
  EXPECT_EQ(q.unfinished_tasks(), 1u);
  q.close();
  EXPECT_THROW(q.put(2), mp::Closed);
  EXPECT_EQ(q.unfinished_tasks(), 1u);
  EXPECT_EQ(q.get(), 1);
  q.task_done();
  EXPECT_TRUE(q.join_for(0ms));
}

TEST(ByteQueue, MessageSizesAroundTheLimit) {
  auto arena = make_arena();
  constexpr std::size_t max = 300;
  auto& q = arena.make<mp::ByteQueue>("bq", 4, max);
  EXPECT_EQ(q.max_message(), max);
  EXPECT_EQ(q.capacity(), 4u);
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, max - 1, max}) {
    const auto msg = bytes(n, static_cast<unsigned>(n));
    q.put(msg);
    EXPECT_EQ(q.get(), msg) << n;
  }
  try {
    q.put(bytes(max + 1));
    ADD_FAILURE() << "max + 1 bytes must be refused";
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.code(), mp::errc::message_too_large);
    EXPECT_NE(std::string(e.what()).find("301"), std::string::npos) << e.what();
  }
  EXPECT_THROW(q.try_put(bytes(max + 1)), mp::Error);
  EXPECT_TRUE(q.empty());  // the refused put left nothing behind
}

TEST(ByteQueue, BlockingTimeoutAndClose) {
  auto arena = make_arena();
  auto& q = arena.make<mp::ByteQueue>("bq", 2, 16);
  EXPECT_FALSE(q.try_get().has_value());
  EXPECT_FALSE(q.try_get_for(10ms).has_value());
  q.put(bytes(3));
  EXPECT_TRUE(q.try_put(bytes(16)));
  EXPECT_FALSE(q.try_put(bytes(1)));
  const auto start = Clock::now();
  EXPECT_FALSE(q.try_put_for(bytes(1), 20ms));
  EXPECT_GE(Clock::now() - start, 20ms);
  EXPECT_TRUE(q.full());
  q.close();
  EXPECT_THROW(q.put(bytes(1)), mp::Closed);
  EXPECT_EQ(q.get(), bytes(3));
  EXPECT_EQ(q.try_get_until(Clock::now() + 1s), bytes(16));
  EXPECT_THROW(q.get(), mp::Closed);
  EXPECT_FALSE(q.try_get().has_value());
}

TEST(ByteQueue, ZeroMaxMessage) {
  auto arena = make_arena();
  auto& q = arena.make<mp::ByteQueue>("bq", 3, 0);
  q.put({});
  EXPECT_TRUE(q.get().empty());
  EXPECT_THROW(q.put(bytes(1)), mp::Error);
}

TEST(ByteQueue, CorruptLengthIsBadMessageAndTheQueueGoesOn) {
  auto arena = make_arena();
  auto& q = arena.make<mp::ByteQueue>("bq", 4, 32);
  q.put(bytes(5));
  q.put(bytes(6));
  // Scribble on the first message's length field (after the slot's 8-byte state word).
  std::byte* slot0 = q.ring().test_slots().data();
  const std::uint32_t huge = 1'000'000;
  std::memcpy(slot0 + 8, &huge, 4);
  try {
    (void)q.get();
    ADD_FAILURE() << "a corrupt length must be refused";
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.code(), mp::errc::bad_message) << e.what();
  }
  EXPECT_EQ(q.get(), bytes(6));  // the bad slot was recycled, the rest is intact
  // A length within bounds but failing its check field.
  q.put(bytes(7));
  const std::uint32_t small = 3;
  std::memcpy(q.ring().test_slots().data() + 2 * q.ring().stride() + 8, &small, 4);
  EXPECT_THROW((void)q.try_get(), mp::Error);
  for (int i = 0; i < 10; ++i) {  // full laps still work
    q.put(bytes(static_cast<std::size_t>(i)));
    EXPECT_EQ(q.get(), bytes(static_cast<std::size_t>(i)));
  }
}

TEST(ByteQueue, CorruptCursorOrHeaderIsBadMessage) {
  auto arena = make_arena();
  auto& q = arena.make<mp::ByteQueue>("bq", 4, 32);
  q.ring().test_set_cursors(0, 0xFFFF, false);  // head index beyond the capacity
  EXPECT_THROW((void)q.try_get(), mp::Error);
  q.ring().test_set_cursors(0xFFFF, 0, false);
  EXPECT_THROW(q.put(bytes(1)), mp::Error);
  q.ring().test_set_cursors(0, 0, false);
  q.put(bytes(2));
  EXPECT_EQ(q.get(), bytes(2));
  // Scribble on the read-mostly header (the stride): caught by the geometry check.
  auto* words = reinterpret_cast<std::uint64_t*>(&q.ring());
  const std::uint64_t saved = words[1];
  words[1] = 1u << 20;
  EXPECT_THROW((void)q.try_get(), mp::Error);
  EXPECT_THROW(q.put(bytes(1)), mp::Error);
  words[1] = saved;
  q.put(bytes(3));
  EXPECT_EQ(q.get(), bytes(3));
}

TEST(ByteQueue, GarbageStatesNeverHangATryGet) {
  auto arena = make_arena();
  auto& q = arena.make<mp::ByteQueue>("bq", 5, 16);
  auto slots = q.ring().test_slots();
  for (int seed = 0; seed < 200; ++seed) {
    for (std::size_t i = 0; i < slots.size(); ++i) slots[i] = static_cast<std::byte>((i * 7919u + seed * 104729u) >> 3);
    q.ring().test_set_cursors(static_cast<std::uint64_t>(seed) * 0x1'0000'0001ull % 5, (seed * 3) % 5, seed & 1);
    try {
      (void)q.try_get();
    } catch (const mp::Error& e) {
      EXPECT_EQ(e.code(), mp::errc::bad_message);
    }
  }
}
