// Arena with real fork()ed processes: racing names, dead constructors, allocator stress with
// overlap checks, and SIGKILL in the middle of allocator and directory calls.
// Runs twice: natively and with MULTIPROC_LOCK_FALLBACK=1 (robust pthread mutexes).
#include <multiproc/arena.hpp>
#include <multiproc/error.hpp>

#include <gtest/gtest.h>
#include "arena_layout.hpp"
#include "mptest.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

namespace mp = multiproc;
namespace L = multiproc::detail::layout;
using namespace std::chrono_literals;

namespace {

/// Counters shared by the test and its children (outside the arena under test).
struct Board {
  std::atomic<int> constructions{0};
  std::atomic<int> go{0};
  std::atomic<int> ready{0};  // set by constructors once they have started
  std::atomic<int> line{0};   // start_line's arrivals
  std::atomic<std::uint64_t> offsets[8]{};
  std::atomic<std::uint64_t> progress{0};
};

/// Built slowly, so racing finders overlap with its construction.
struct Slow {
  std::uint64_t magic = 0;
  Slow(Board* board, std::chrono::milliseconds pause) {
    board->constructions.fetch_add(1);
    board->ready.store(1);
    std::this_thread::sleep_for(pause);
    magic = 0x600d;  // the last thing the constructor does: a finder must see it set
  }
};

void start_line(Board& b, int n) {
  b.line.fetch_add(1);
  while (b.line.load() < n) std::this_thread::yield();
}

}  // namespace

TEST(ArenaMultiprocess, RacingFindOrMakeConstructsOnceAndNobodySeesItHalfBuilt) {
  auto arena = mp::Arena::create(1 << 20);
  for (int round = 0; round < 10; ++round) {
    mptest::Shared<Board> board;
    const std::string name = "slow" + std::to_string(round);
    mptest::run_children(4, [&](int i) {
      start_line(*board, 4);
      Slow& s = arena.find_or_make<Slow>(name, board.get(), 20ms);
      if (s.magic != 0x600d) return 2;
      board->offsets[i].store(arena.offset_of(&s));
      return 0;
    });
    EXPECT_EQ(board->constructions.load(), 1) << "round " << round;
    for (int i = 1; i < 4; ++i) EXPECT_EQ(board->offsets[i].load(), board->offsets[0].load());
    ASSERT_NE(arena.find<Slow>(name), nullptr);
    EXPECT_EQ(arena.offset_of(arena.find<Slow>(name)), board->offsets[0].load());
  }
  EXPECT_NO_THROW(arena.check());
}

TEST(ArenaMultiprocess, FindBlocksUntilAnotherProcessFinishesConstructing) {
  auto arena = mp::Arena::create(1 << 20);
  mptest::Shared<Board> board;
  const pid_t maker = mptest::spawn([&] {
    arena.make<Slow>("slow", board.get(), 300ms);
    return 0;
  });
  while (board->ready.load() == 0) std::this_thread::sleep_for(1ms);  // construction under way
  const auto start = std::chrono::steady_clock::now();
  Slow* s = arena.find<Slow>("slow");
  ASSERT_NE(s, nullptr) << "find waits for a name being built; it does not say absent";
  EXPECT_EQ(s->magic, 0x600du);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms) << "it really waited";
  EXPECT_EQ(mptest::wait_exit(maker), 0);
  EXPECT_EQ(board->constructions.load(), 1);
}

namespace {
struct DiesWhileBuilt {
  explicit DiesWhileBuilt(Board* board) {
    board->constructions.fetch_add(1);
    board->ready.store(1);
    for (;;) std::this_thread::sleep_for(1s);  // until SIGKILLed
  }
};
struct Survivor {
  int v;
  explicit Survivor(int x) : v(x) {}
};
}  // namespace

TEST(ArenaMultiprocess, AConstructorKilledMidwayDoesNotWedgeTheName) {
  auto arena = mp::Arena::create(1 << 20);
  arena.make<int>("warm", 0);
  const std::size_t used = arena.used();
  mptest::Shared<Board> board;
  const pid_t builder = mptest::spawn([&] {
    arena.make<DiesWhileBuilt>("x", board.get());
    return 0;
  });
  while (board->ready.load() == 0) std::this_thread::sleep_for(1ms);
  // A waiter blocks on the name before the builder dies...
  const pid_t waiter = mptest::spawn([&] {
    board->go.store(1);
    return arena.find<DiesWhileBuilt>("x") == nullptr ? 0 : 1;
  });
  while (board->go.load() == 0) std::this_thread::sleep_for(1ms);
  std::this_thread::sleep_for(20ms);
  ::kill(builder, SIGKILL);
  EXPECT_EQ(mptest::wait_exit(builder), -SIGKILL);
  // ...and wakes when it does, reclaims the name and reports it absent.
  EXPECT_EQ(mptest::wait_exit(waiter, 30s), 0);
  EXPECT_EQ(arena.stats().reclaimed_names, 1u);
  EXPECT_EQ(arena.used(), used) << "the half-built object's block was freed";
  EXPECT_NO_THROW(arena.check());
  // The name is usable again, with another type even.
  EXPECT_EQ(arena.make<Survivor>("x", 5).v, 5);
}

TEST(ArenaMultiprocess, MakeReclaimsANameWhoseBuilderDiedUnobserved) {
  auto arena = mp::Arena::create(1 << 20);
  mptest::Shared<Board> board;
  const pid_t builder = mptest::spawn([&] {
    arena.make<DiesWhileBuilt>("x", board.get());
    return 0;
  });
  while (board->ready.load() == 0) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(arena.find_or_make<Survivor>("y", 1).v, 1);
  try {
    arena.make<Survivor>("x", 1);
    ADD_FAILURE() << "the builder is alive: the name is taken";
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.code(), mp::errc::name_exists) << e.what();
  }
  ::kill(builder, SIGKILL);
  EXPECT_EQ(mptest::wait_exit(builder), -SIGKILL);
  EXPECT_EQ(arena.make<Survivor>("x", 7).v, 7) << "dead builder: make repairs and takes the name";
  EXPECT_NO_THROW(arena.check());
}

namespace {
struct DiesWhileDestroyed {
  int v = 1;
  ~DiesWhileDestroyed() { ::_exit(9); }
};
}  // namespace

TEST(ArenaMultiprocess, ADestroyerThatDiesMidwayFreesTheNameAnyway) {
  auto arena = mp::Arena::create(1 << 20);
  arena.make<int>("warm", 0);
  const std::size_t used = arena.used();
  arena.make<DiesWhileDestroyed>("d");
  const pid_t child = mptest::spawn([&] {
    arena.destroy(*arena.find<DiesWhileDestroyed>("d"));
    return 0;
  });
  EXPECT_EQ(mptest::wait_exit(child), 9);
  EXPECT_EQ(arena.find<DiesWhileDestroyed>("d"), nullptr);
  EXPECT_EQ(arena.used(), used);
  EXPECT_NO_THROW(arena.check());
}

// ---- allocator stress: 4 processes, no two live blocks overlap -------------------------------

namespace {
constexpr int kSlots = 256;
struct BlockTable {  // per child: its live blocks
  std::uint64_t offset[kSlots];
  std::uint64_t bytes[kSlots];
};

std::uint64_t tag(int child, int slot, std::uint64_t serial) {
  return (std::uint64_t(child) << 56) ^ (std::uint64_t(slot) << 40) ^ serial ^ 0x5a5a5a5a5aULL;
}
void fill(void* p, std::size_t n, std::uint64_t t) {
  auto* w = static_cast<unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i) w[i] = static_cast<unsigned char>(t >> (8 * (i % 8)));
}
bool intact(const void* p, std::size_t n, std::uint64_t t) {
  const auto* w = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i)
    if (w[i] != static_cast<unsigned char>(t >> (8 * (i % 8)))) return false;
  return true;
}
}  // namespace

TEST(ArenaMultiprocess, FourProcessesAllocatingNeverGetOverlappingBlocks) {
  auto arena = mp::Arena::create(4 << 20);
  mptest::SharedMemory tables(sizeof(BlockTable) * 4);
  auto* t = static_cast<BlockTable*>(tables.get());
  mptest::Shared<Board> board;
  mptest::run_children(4, [&](int c) {
    std::mt19937_64 rng(1234 + c);
    std::uint64_t serial[kSlots] = {};
    BlockTable& mine = t[c];
    start_line(*board, 4);
    for (int op = 0; op < 50000; ++op) {
      const int slot = static_cast<int>(rng() % kSlots);
      if (mine.offset[slot] != 0) {
        void* p = arena.at<void>(mine.offset[slot]);
        if (!intact(p, mine.bytes[slot], tag(c, slot, serial[slot]))) return 3;  // someone wrote into it
        arena.deallocate(p);
        mine.offset[slot] = 0;
        continue;
      }
      const std::size_t n = 1 + rng() % (rng() % 8 == 0 ? 4096 : 256);
      const std::size_t align = std::size_t{1} << (rng() % 13);
      void* p = nullptr;
      try {
        p = arena.allocate(n, align);
      } catch (const mp::Error& e) {
        if (e.code() != mp::errc::out_of_memory) return 4;
        continue;
      }
      if (reinterpret_cast<std::uintptr_t>(p) % std::max<std::size_t>(align, 16) != 0) return 5;
      serial[slot] = static_cast<std::uint64_t>(op);
      fill(p, n, tag(c, slot, serial[slot]));
      mine.offset[slot] = arena.offset_of(p);
      mine.bytes[slot] = n;
    }
    for (int slot = 0; slot < kSlots; ++slot)
      if (mine.offset[slot] != 0 && !intact(arena.at<void>(mine.offset[slot]), mine.bytes[slot], tag(c, slot, serial[slot])))
        return 6;
    return 0;
  }, 120s);
  // Every live block of every child, sorted: pairwise disjoint, all inside the heap.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> live;
  for (int c = 0; c < 4; ++c)
    for (int s = 0; s < kSlots; ++s)
      if (t[c].offset[s] != 0) live.emplace_back(t[c].offset[s], t[c].offset[s] + t[c].bytes[s]);
  std::sort(live.begin(), live.end());
  for (std::size_t i = 1; i < live.size(); ++i) EXPECT_LE(live[i - 1].second, live[i].first) << "blocks overlap";
  EXPECT_NO_THROW(arena.check());
  for (auto& [b, e] : live) arena.deallocate(arena.at<void>(b));
  EXPECT_EQ(arena.used(), 0u);
  EXPECT_EQ(arena.stats().free_blocks, 1u);
}

// ---- SIGKILL in the middle of allocator calls ------------------------------------------------

TEST(ArenaMultiprocess, KilledMidAllocationLeavesTheAllocatorConsistent) {
  auto arena = mp::Arena::create(1 << 20);
  mptest::SharedMemory tables(sizeof(BlockTable));
  auto* t = static_cast<BlockTable*>(tables.get());
  mptest::Shared<Board> board;
  const int rounds = mptest::kill_rounds(200);
  std::mt19937 rng(99);
  for (int round = 0; round < rounds; ++round) {
    board->progress.store(0);
    const pid_t child = mptest::spawn([&] {
      std::mt19937_64 r(static_cast<std::uint64_t>(round) * 7919);
      for (std::uint64_t i = 0;; ++i) {
        const int slot = static_cast<int>(r() % kSlots);
        // The table is the test's record of what this child holds. A kill between allocate
        // and the store below leaks one block, which the final count allows for.
        if (t->offset[slot] != 0) {
          const std::uint64_t off = t->offset[slot];
          t->offset[slot] = 0;
          arena.deallocate(arena.at<void>(off));
        } else {
          try {
            t->offset[slot] = arena.offset_of(arena.allocate(1 + r() % 512, std::size_t{1} << (r() % 8)));
          } catch (const mp::Error&) {
          }
        }
        board->progress.store(i + 1, std::memory_order_relaxed);
      }
      return 0;
    });
    while (board->progress.load() < 100) std::this_thread::yield();  // well inside its loop
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
    ::kill(child, SIGKILL);
    ASSERT_EQ(mptest::wait_exit(child), -SIGKILL);
    ASSERT_NO_THROW(arena.check()) << "round " << round;  // recovers first if the child held the lock
  }
  const auto s = arena.stats();
  std::printf("kill rounds: %d, allocator recoveries: %zu\n", rounds, s.lock_recoveries);
  EXPECT_GT(s.lock_recoveries, 0u) << "some kills landed inside a call (the point of the test)";
  // Free what the table records; what remains are blocks leaked between allocate and the
  // table store: at most one per round.
  for (int s2 = 0; s2 < kSlots; ++s2)
    if (t->offset[s2] != 0) arena.deallocate(arena.at<void>(t->offset[s2]));
  const auto after = arena.stats();
  EXPECT_EQ(after.invalid_deallocations, 0u);
  EXPECT_LE(after.allocated_blocks, static_cast<std::size_t>(rounds));
  // Everything freed is allocatable again: the free space is exactly what the walk says.
  EXPECT_EQ(after.free_bytes + after.used_bytes, arena.size());
  EXPECT_NO_THROW(arena.deallocate(arena.allocate(after.largest_free_block - 16)));
  std::vector<void*> fill_up;
  try {
    for (;;) fill_up.push_back(arena.allocate(16));
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.code(), mp::errc::out_of_memory);
  }
  EXPECT_EQ(arena.used(), arena.size()) << "every free byte was handed out in 32-byte blocks";
  for (void* p : fill_up) arena.deallocate(p);
  EXPECT_NO_THROW(arena.check());
}

// ---- SIGKILL in the middle of directory calls ------------------------------------------------

namespace {
struct Named {
  std::uint64_t a, b;
  explicit Named(std::uint64_t v) : a(v), b(~v) {}
};
}  // namespace

TEST(ArenaMultiprocess, KilledMidMakeOrDestroyLeavesNamesUsable) {
  auto arena = mp::Arena::create(1 << 20);
  mptest::Shared<Board> board;
  const int rounds = std::max(50, mptest::kill_rounds(200) / 2);
  std::mt19937 rng(5);
  for (int round = 0; round < rounds; ++round) {
    board->progress.store(0);
    const pid_t child = mptest::spawn([&] {
      std::mt19937_64 r(static_cast<std::uint64_t>(round));
      for (std::uint64_t i = 0;; ++i) {
        const std::string name = "k" + std::to_string(r() % 40);  // 40 names: the directory grows too
        Named& n = arena.find_or_make<Named>(name, i);
        if (n.a != ~n.b) return 3;  // half-built object seen
        if (r() % 2) arena.destroy(n);
        board->progress.store(i + 1, std::memory_order_relaxed);
      }
      return 0;
    });
    while (board->progress.load() < 50) {
      if (board->progress.load() == 0 && ::waitpid(child, nullptr, WNOHANG) == child) FAIL() << "child ended early";
      std::this_thread::yield();
    }
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
    ::kill(child, SIGKILL);
    ASSERT_EQ(mptest::wait_exit(child), -SIGKILL);
    // Every name works again (waiting out / repairing whatever the child left).
    for (int k = 0; k < 40; ++k) {
      Named& n = arena.find_or_make<Named>("k" + std::to_string(k), 1);
      ASSERT_EQ(n.a, ~n.b);
    }
    ASSERT_NO_THROW(arena.check()) << "round " << round;
  }
  for (int k = 0; k < 40; ++k) arena.destroy(*arena.find<Named>("k" + std::to_string(k)));
  const auto s = arena.stats();
  std::printf("directory kill rounds: %d, names reclaimed: %zu, allocator recoveries: %zu\n", rounds,
              s.reclaimed_names, s.lock_recoveries);
  EXPECT_EQ(s.named_objects, 0u);
  // No leak: all that is left are the directory's three pages (8 + 16 + 32 entries hold 40 names).
  EXPECT_EQ(s.allocated_blocks, 3u);
  EXPECT_EQ(arena.used(), 3 * L::kBlockHeader + L::chunk_bytes(8) + L::chunk_bytes(16) + L::chunk_bytes(32));
  EXPECT_NO_THROW(arena.check());
}

// ---- another process maps the fd ---------------------------------------------------------------

TEST(ArenaMultiprocess, AChildMappingTheFdItselfSharesObjectsAndMemory) {
  auto arena = mp::Arena::create(1 << 20);
  auto& counter = arena.make<std::atomic<int>>("counter", 0);
  mptest::run_children(4, [&](int) {
    mp::Arena mine = mp::Arena::from_fd(arena.fd());
    auto* c = mine.find<std::atomic<int>>("counter");
    if (c == nullptr) return 2;
    for (int i = 0; i < 1000; ++i) c->fetch_add(1);
    void* p = mine.allocate(100);
    mine.deallocate(p);
    return 0;
  });
  EXPECT_EQ(counter.load(), 4000);
  EXPECT_NO_THROW(arena.check());
}
