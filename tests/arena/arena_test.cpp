// Arena unit tests: one process (children only where a death is the point).
#include <multiproc/arena.hpp>
#include <multiproc/error.hpp>

#include <gtest/gtest.h>
#include "arena_layout.hpp"
#include "mptest.hpp"

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace mp = multiproc;
namespace L = multiproc::detail::layout;

namespace {

struct Point {
  int x, y;
  Point(int a, int b) : x(a), y(b) {}
};
struct Other {
  int x, y;
};
struct SameSizeAsInt {
  int v;
};

using mptest::catch_error;

int seals_of(int fd) { return ::fcntl(fd, F_GET_SEALS); }

}  // namespace

// ---- creation and mapping --------------------------------------------------------------------

TEST(Arena, CreateGivesAtLeastTheRequestedHeapSealedAndEmpty) {
  auto a = mp::Arena::create(100'000, "unit-create");
  EXPECT_GE(a.size(), 100'000u);
  EXPECT_EQ(a.used(), 0u);
  EXPECT_GE(a.fd(), 0);
  EXPECT_EQ(seals_of(a.fd()) & (F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL), F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a.base()) % 4096, 0u) << "the base is page aligned";
  EXPECT_EQ(a.mapped_size(), a.size() + L::kHeaderBytes);
  EXPECT_EQ(::ftruncate(a.fd(), 1 << 12), -1) << "a peer cannot shrink it";
  EXPECT_EQ(errno, EPERM);
  char path[64], target[256] = {};
  std::snprintf(path, sizeof path, "/proc/self/fd/%d", a.fd());
  ASSERT_GT(::readlink(path, target, sizeof target - 1), 0);
  EXPECT_NE(std::strstr(target, "memfd:unit-create"), nullptr) << target;
  EXPECT_NO_THROW(a.check());
}

TEST(Arena, TinyAndHugeSizes) {
  auto tiny = mp::Arena::create(1);
  EXPECT_GE(tiny.size(), 4096u);
  EXPECT_NE(tiny.allocate(100), nullptr);
  const auto e = catch_error([] { mp::Arena::create(std::size_t{1} << 50); });
  EXPECT_EQ(e.code(), mp::errc::out_of_memory);
}

TEST(Arena, MoveOnlyAndTheDestructorClosesOnlyItsOwnFd) {
  auto a = mp::Arena::create(1 << 16);
  a.make<int>("n", 7);
  const int fd = a.fd();
  mp::Arena b = std::move(a);
  EXPECT_EQ(a.fd(), -1);  // NOLINT: moved-from is empty by contract
  EXPECT_EQ(b.fd(), fd);
  mp::Arena c = mp::Arena::from_fd(fd);
  EXPECT_NE(c.fd(), fd) << "from_fd dups";
  b = mp::Arena::create(1 << 16);  // the old mapping and fd go away...
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1);
  ASSERT_NE(c.find<int>("n"), nullptr);  // ...the arena lives on in c
  EXPECT_EQ(*c.find<int>("n"), 7);
}

// ---- named objects ---------------------------------------------------------------------------

TEST(Arena, MakeFindAndNameExists) {
  auto a = mp::Arena::create(1 << 16);
  Point& p = a.make<Point>("p", 1, 2);
  EXPECT_EQ(a.find<Point>("p"), &p);
  EXPECT_EQ(a.find<Point>("q"), nullptr);
  const auto e = catch_error([&] { a.make<Point>("p", 3, 4); });
  EXPECT_EQ(e.code(), mp::errc::name_exists);
  EXPECT_NE(std::string(e.what()).find("\"p\""), std::string::npos) << e.what();
  EXPECT_EQ(p.x, 1) << "a refused make leaves the original alone";
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(&p) % alignof(Point), 0u);
  EXPECT_TRUE(a.contains(&p));
  EXPECT_EQ(a.stats().named_objects, 1u);
}

TEST(Arena, FindOrMakeConstructsOnce) {
  static int constructed = 0;
  struct Counted {
    int v;
    explicit Counted(int x) : v(x) { ++constructed; }
  };
  constructed = 0;
  auto a = mp::Arena::create(1 << 16);
  Counted& c1 = a.find_or_make<Counted>("c", 5);
  Counted& c2 = a.find_or_make<Counted>("c", 6);
  EXPECT_EQ(&c1, &c2);
  EXPECT_EQ(c2.v, 5) << "the second call's arguments are not used";
  EXPECT_EQ(constructed, 1);
}

TEST(Arena, WrongTypeIsAnErrorNotAReinterpretation) {
  auto a = mp::Arena::create(1 << 16);
  a.make<Point>("p", 1, 2);
  a.make<int>("i", 3);
  for (const auto& e : {catch_error([&] { a.find<Other>("p"); }), catch_error([&] { a.find_or_make<Other>("p"); }),
                        catch_error([&] { a.find<SameSizeAsInt>("i"); }), catch_error([&] { a.find<unsigned>("i"); })}) {
    EXPECT_EQ(e.code(), mp::errc::bad_arena);
    EXPECT_NE(std::string(e.what()).find("holds another type"), std::string::npos) << e.what();
  }
  Point& p = *a.find<Point>("p");
  EXPECT_EQ(catch_error([&] { a.destroy(reinterpret_cast<Other&>(p)); }).code(), mp::errc::bad_arena);
  EXPECT_EQ(a.find<Point>("p"), &p) << "a refused destroy leaves the object";
}

TEST(Arena, NamesAreOneTo63ArbitraryBytes) {
  auto a = mp::Arena::create(1 << 16);
  EXPECT_EQ(catch_error([&] { a.make<int>("", 1); }).code(), std::errc::invalid_argument);
  EXPECT_EQ(catch_error([&] { a.find<int>(std::string(64, 'x')); }).code(), std::errc::invalid_argument);
  a.make<int>(std::string(63, 'x'), 63);
  EXPECT_EQ(*a.find<int>(std::string(63, 'x')), 63);
  const std::string n1("a\0b", 3), n2("a\0c", 3);
  a.make<int>(n1, 1);
  a.make<int>(n2, 2);
  EXPECT_EQ(*a.find<int>(n1), 1);
  EXPECT_EQ(*a.find<int>(n2), 2);
  EXPECT_EQ(a.find<int>("a"), nullptr);
}

namespace {
struct Buffer {  // takes Arena& first: gets the arena from make
  std::uint64_t data = 0;
  std::size_t n = 0;
  Buffer(mp::Arena& arena, std::size_t count) : n(count) {
    data = arena.offset_of(arena.allocate(count * sizeof(int), 64));
    for (std::size_t i = 0; i < n; ++i) arena.at<int>(data)[i] = static_cast<int>(i);
  }
  Buffer(std::size_t) { std::abort(); }  // never chosen: the Arena& form wins
  void arena_release(mp::Arena& arena) { arena.deallocate(arena.at<void>(data)); }
};
}  // namespace

TEST(Arena, AConstructorTakingArenaFirstGetsTheArenaAndReleaseRunsOnDestroy) {
  auto a = mp::Arena::create(1 << 16);
  const std::size_t before = a.used();
  Buffer& b = a.make<Buffer>("buf", std::size_t{100});
  EXPECT_EQ(b.n, 100u);
  EXPECT_EQ(a.at<int>(b.data)[99], 99);
  EXPECT_EQ(b.data % 64, 0u);
  Buffer& anon = a.make_anonymous<Buffer>(std::size_t{10});
  a.destroy(anon);
  a.destroy(b);
  EXPECT_NO_THROW(a.check());
  // The directory page stays; everything else was given back.
  EXPECT_EQ(before, 0u);
  EXPECT_EQ(a.stats().allocated_blocks, 1u);
  EXPECT_EQ(a.used(), L::kBlockHeader + L::chunk_bytes(L::kFirstChunkEntries));
}

TEST(Arena, AThrowingConstructorLeavesNothingBehind) {
  struct Throws {
    explicit Throws(int) { throw std::runtime_error("no"); }
  };
  auto a = mp::Arena::create(1 << 16);
  a.make<int>("warm", 0);  // the first directory page exists now
  const std::size_t used = a.used();
  EXPECT_THROW(a.make<Throws>("t", 1), std::runtime_error);
  EXPECT_THROW(a.find_or_make<Throws>("t", 1), std::runtime_error);
  EXPECT_THROW(a.make_anonymous<Throws>(1), std::runtime_error);
  EXPECT_EQ(a.used(), used);
  EXPECT_EQ(a.find<int>("t"), nullptr);
  a.make<int>("t", 1);
  EXPECT_NO_THROW(a.check());
}

TEST(Arena, DestroyFreesTheNameAndTheMemory) {
  auto a = mp::Arena::create(1 << 16);
  a.make<int>("warm", 0);
  const std::size_t used = a.used();
  Point& p = a.make<Point>("p", 1, 2);
  EXPECT_GT(a.used(), used);
  a.destroy(p);
  EXPECT_EQ(a.used(), used);
  EXPECT_EQ(a.find<Point>("p"), nullptr);
  Point& q = a.make<Point>("p", 3, 4);
  EXPECT_EQ(q.x, 3);
  Point& anon = a.make_anonymous<Point>(5, 6);
  a.destroy(anon);
  EXPECT_EQ(catch_error([&] { a.destroy(anon); }).code(), mp::errc::bad_arena) << "destroyed twice";
  Point outside(0, 0);
  EXPECT_EQ(catch_error([&] { a.destroy(outside); }).code(), mp::errc::bad_arena);
  EXPECT_NO_THROW(a.check());
}

TEST(Arena, AConstructorThatLooksItselfUpIsAnErrorNotADeadlock) {
  struct Selfish {
    explicit Selfish(mp::Arena& a) { a.find<Selfish>("me"); }
  };
  auto a = mp::Arena::create(1 << 16);
  EXPECT_EQ(catch_error([&] { a.make<Selfish>("me"); }).code(), std::errc::resource_deadlock_would_occur);
  EXPECT_EQ(a.find<Selfish>("me"), nullptr);
}

TEST(Arena, AConstructorMayMakeOtherNamedObjects) {
  struct Inner {
    int v = 7;
  };
  struct Outer {
    std::uint64_t inner;
    explicit Outer(mp::Arena& a) : inner(a.offset_of(&a.make<Inner>("inner"))) {}
  };
  auto a = mp::Arena::create(1 << 16);
  Outer& o = a.make<Outer>("outer");
  EXPECT_EQ(a.at<Inner>(o.inner), a.find<Inner>("inner"));
  EXPECT_EQ(a.find<Inner>("inner")->v, 7);
  EXPECT_NO_THROW(a.check());
}

TEST(Arena, ManyNamesGrowTheDirectory) {
  auto a = mp::Arena::create(1 << 20);
  for (int i = 0; i < 300; ++i) a.make<int>("n" + std::to_string(i), i);
  for (int i = 0; i < 300; ++i) ASSERT_EQ(*a.find<int>("n" + std::to_string(i)), i);
  for (int i = 0; i < 300; i += 2) a.destroy(*a.find<int>("n" + std::to_string(i)));
  for (int i = 0; i < 300; ++i) EXPECT_EQ(a.find<int>("n" + std::to_string(i)) != nullptr, i % 2 == 1);
  EXPECT_EQ(a.stats().named_objects, 150u);
  for (int i = 0; i < 300; i += 2) a.make<int>("m" + std::to_string(i), i);  // reuses free entries
  EXPECT_EQ(a.stats().named_objects, 300u);
  EXPECT_NO_THROW(a.check());
}

TEST(Arena, NoRoomForANameIsOutOfMemory) {
  using Big = std::array<char, 8000>;
  auto a = mp::Arena::create(4096);
  EXPECT_EQ(catch_error([&] { a.make<Big>("big"); }).code(), mp::errc::out_of_memory);
  EXPECT_EQ(a.find<Big>("big"), nullptr);
  EXPECT_NO_THROW(a.check());
}

// ---- raw allocation --------------------------------------------------------------------------

TEST(Arena, AllocateHonoursEveryAlignmentUpTo4096) {
  auto a = mp::Arena::create(1 << 20);
  for (std::size_t align = 1; align <= 4096; align *= 2) {
    for (std::size_t n : {0, 1, 15, 16, 17, 100, 4096}) {
      void* p = a.allocate(n, align);
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % std::max<std::size_t>(align, 16), 0u) << n << "/" << align;
      std::memset(p, 0xab, n);
    }
  }
  EXPECT_NO_THROW(a.check());
  for (std::size_t bad : {0, 3, 24, 8192}) EXPECT_EQ(catch_error([&] { a.allocate(8, bad); }).code(), std::errc::invalid_argument);
}

TEST(Arena, UsedCountsBlocksWithTheirHeaders) {
  auto a = mp::Arena::create(1 << 16);
  void* p = a.allocate(1);
  EXPECT_EQ(a.used(), 32u) << "16-byte header + 16-byte minimum payload";
  void* q = a.allocate(100);
  EXPECT_EQ(a.used(), 32u + 16 + 112);
  a.deallocate(p);
  a.deallocate(q);
  EXPECT_EQ(a.used(), 0u);
}

TEST(Arena, OutOfMemoryIsExactAndFreedSpaceIsReused) {
  auto a = mp::Arena::create(1 << 16);
  // The largest payload an empty heap holds is size() - 16; one byte more does not fit.
  EXPECT_EQ(catch_error([&] { a.allocate(a.size() - 15); }).code(), mp::errc::out_of_memory);
  void* all = a.allocate(a.size() - 16);
  EXPECT_EQ(a.used(), a.size());
  EXPECT_EQ(catch_error([&] { a.allocate(1); }).code(), mp::errc::out_of_memory);
  a.deallocate(all);
  std::vector<void*> blocks;
  try {
    for (;;) blocks.push_back(a.allocate(100));
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.code(), mp::errc::out_of_memory);
  }
  EXPECT_EQ(blocks.size(), a.size() / 128);
  for (std::size_t i = 0; i < blocks.size(); i += 2) a.deallocate(blocks[i]);
  // Fragmented: a 200-byte request fits no free block (each is 128 bytes)...
  EXPECT_EQ(catch_error([&] { a.allocate(200); }).code(), mp::errc::out_of_memory);
  // ...but a 112-byte one fits any of them.
  EXPECT_NO_THROW(a.deallocate(a.allocate(112)));
  for (std::size_t i = 1; i < blocks.size(); i += 2) a.deallocate(blocks[i]);
  EXPECT_EQ(a.used(), 0u);
  EXPECT_EQ(a.stats().free_blocks, 1u) << "everything coalesced back into one block";
  EXPECT_NO_THROW(a.deallocate(a.allocate(a.size() - 16)));
  EXPECT_NO_THROW(a.check());
}

TEST(Arena, DeallocateRefusesAnythingButALiveAnonymousBlock) {
  auto a = mp::Arena::create(1 << 16);
  int& named = a.make<int>("n", 1);
  char* p = static_cast<char*>(a.allocate(64));
  char* q = static_cast<char*>(a.allocate(64));
  const std::size_t used = a.used();
  int local = 0;
  a.deallocate(nullptr);  // a no-op, not counted
  a.deallocate(&local);
  a.deallocate(p + 16);
  a.deallocate(&named);
  a.deallocate(static_cast<char*>(a.base()) + 8);
  EXPECT_EQ(a.stats().invalid_deallocations, 4u);
  EXPECT_EQ(a.used(), used);
  a.deallocate(p);
  a.deallocate(p);  // double free: p's block is free now, so refused
  EXPECT_EQ(a.stats().invalid_deallocations, 5u);
  a.deallocate(q);
  EXPECT_EQ(*a.find<int>("n"), 1);
  EXPECT_NO_THROW(a.check());
}

TEST(Arena, OffsetsRoundTripAndAreBoundsChecked) {
  auto a = mp::Arena::create(1 << 16);
  int* p = static_cast<int*>(a.allocate(sizeof(int)));
  const std::uint64_t off = a.offset_of(p);
  EXPECT_GE(off, L::kHeaderBytes);
  EXPECT_EQ(a.at<int>(off), p);
  int local = 0;
  EXPECT_FALSE(a.contains(&local));
  EXPECT_EQ(catch_error([&] { (void)a.offset_of(&local); }).code(), std::errc::invalid_argument);
  EXPECT_EQ(catch_error([&] { (void)a.at<std::uint64_t>(a.mapped_size() - 4); }).code(), std::errc::invalid_argument);
  EXPECT_EQ(catch_error([&] { (void)a.at<char>(~std::uint64_t{0}); }).code(), std::errc::invalid_argument);
  EXPECT_NO_THROW((void)a.at<char>(a.mapped_size() - 1));
}

// ---- two mappings of one arena in one process --------------------------------------------

TEST(Arena, TwoMappingsInOneProcessSeeTheSameObjects) {
  auto a = mp::Arena::create(1 << 16);
  auto b = mp::Arena::from_fd(a.fd());
  ASSERT_NE(a.base(), b.base());
  Point& pa = a.make<Point>("p", 1, 2);
  Point* pb = b.find<Point>("p");
  ASSERT_NE(pb, nullptr);
  EXPECT_NE(static_cast<void*>(pb), static_cast<void*>(&pa)) << "another address...";
  EXPECT_EQ(b.offset_of(pb), a.offset_of(&pa)) << "...the same offset";
  pb->x = 42;
  EXPECT_EQ(pa.x, 42) << "...and the same bytes";
  // Allocate in one mapping, free through the other by offset.
  void* raw = b.allocate(1000);
  EXPECT_EQ(a.used(), b.used());
  a.deallocate(a.at<void>(b.offset_of(raw)));
  b.destroy(*pb);
  EXPECT_EQ(a.find<Point>("p"), nullptr);
  EXPECT_EQ(a.used(), b.used());
  EXPECT_NO_THROW(a.check());
  EXPECT_NO_THROW(b.check());
}

// ---- from_fd refuses everything that is not an arena -----------------------------------------

namespace {

/// A memfd holding `bytes`, then sealed with `seals`.
int memfd_with(const void* bytes, std::size_t n, int seals) {
  const int fd = ::memfd_create("not-an-arena", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::ftruncate(fd, static_cast<off_t>(n)), 0);
  if (n > 0) {
    EXPECT_EQ(::pwrite(fd, bytes, n, 0), static_cast<ssize_t>(n));
  }
  if (seals) {
    EXPECT_EQ(::fcntl(fd, F_ADD_SEALS, seals), 0);
  }
  return fd;
}
constexpr int kGoodSeals = F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL;

std::vector<char> image_of(const mp::Arena& a) {
  std::vector<char> v(a.mapped_size());
  std::memcpy(v.data(), a.base(), v.size());
  return v;
}

void expect_refused(int fd, const char* reason) {
  const auto e = catch_error([&] { mp::Arena::from_fd(fd); });
  EXPECT_EQ(e.code(), mp::errc::bad_arena) << e.what();
  const std::string what = e.what();
  EXPECT_NE(what.find("Arena::from_fd: fd " + std::to_string(fd) + " is not a multiproc arena"), std::string::npos) << what;
  EXPECT_NE(what.find(reason), std::string::npos) << "expected \"" << reason << "\" in: " << what;
}

}  // namespace

TEST(ArenaFromFd, RefusesWhatIsNotAnOpenFd) {
  expect_refused(-1, "not an open file descriptor");
  const int fd = ::dup(0);
  ::close(fd);
  expect_refused(fd, "not an open file descriptor");
}

TEST(ArenaFromFd, RefusesFilesPipesSocketsAndDevices) {
  FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  std::vector<char> zeros(L::kHeaderBytes + 4096);
  ASSERT_EQ(std::fwrite(zeros.data(), 1, zeros.size(), f), zeros.size());
  std::fflush(f);
  expect_refused(::fileno(f), "not a memfd");
  std::fclose(f);
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  expect_refused(p[0], "a pipe");
  ::close(p[0]);
  ::close(p[1]);
  int s[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
  expect_refused(s[0], "a socket");
  ::close(s[0]);
  ::close(s[1]);
  const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  expect_refused(null, "a character device");
  ::close(null);
}

TEST(ArenaFromFd, RefusesUnsealedPartlySealedAndWriteSealedMemfds) {
  auto a = mp::Arena::create(1 << 16);
  const auto img = image_of(a);
  int fd = memfd_with(img.data(), img.size(), 0);
  expect_refused(fd, "not sealed");
  ::close(fd);
  fd = memfd_with(img.data(), img.size(), F_SEAL_SHRINK | F_SEAL_SEAL);
  expect_refused(fd, "not sealed");
  ::close(fd);
  fd = memfd_with(img.data(), img.size(), kGoodSeals | F_SEAL_WRITE);
  expect_refused(fd, "sealed against writing");
  ::close(fd);
  fd = ::memfd_create("no-sealing", MFD_CLOEXEC);  // without MFD_ALLOW_SEALING: F_SEAL_SEAL only
  ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(img.size())), 0);
  expect_refused(fd, "not sealed");
  ::close(fd);
  // The same image, sealed properly, is accepted (a copy of an arena is an arena).
  fd = memfd_with(img.data(), img.size(), kGoodSeals);
  EXPECT_NO_THROW(mp::Arena::from_fd(fd));
  ::close(fd);
}

TEST(ArenaFromFd, RefusesTruncatedForeignAndGarbageMemfds) {
  auto a = mp::Arena::create(1 << 16);
  auto img = image_of(a);
  int fd = memfd_with(img.data(), 4096, kGoodSeals);  // the first page of an arena
  expect_refused(fd, "truncated");
  ::close(fd);
  fd = memfd_with(nullptr, 0, kGoodSeals);
  expect_refused(fd, "truncated");
  ::close(fd);
  std::vector<char> zeros(img.size());
  fd = memfd_with(zeros.data(), zeros.size(), kGoodSeals);  // a foreign memfd
  expect_refused(fd, "bad magic");
  ::close(fd);
  std::mt19937_64 rng(7);
  std::vector<char> garbage(img.size());
  for (auto& c : garbage) c = static_cast<char>(rng());
  fd = memfd_with(garbage.data(), garbage.size(), kGoodSeals);
  expect_refused(fd, "bad magic");
  ::close(fd);
  std::vector<char> odd(img.begin(), img.end());
  odd.resize(img.size() + 100);
  fd = memfd_with(odd.data(), odd.size(), kGoodSeals);
  expect_refused(fd, "whole number of pages");
  ::close(fd);
  std::vector<char> bigger(img.begin(), img.end());
  bigger.resize(img.size() + 4096);
  fd = memfd_with(bigger.data(), bigger.size(), kGoodSeals);
  expect_refused(fd, "the header says");
  ::close(fd);
}

TEST(ArenaFromFd, RefusesDamagedHeaders) {
  auto a = mp::Arena::create(1 << 16);
  const auto img = image_of(a);
  auto with = [&](auto mutate, const char* reason) {
    auto copy = img;
    auto& h = *reinterpret_cast<L::Header*>(copy.data());
    mutate(h);
    const int fd = memfd_with(copy.data(), copy.size(), kGoodSeals);
    expect_refused(fd, reason);
    ::close(fd);
  };
  with([](L::Header& h) { h.heap_end -= 4096; }, "checksum");
  with([](L::Header& h) { h.version = 99; }, "layout version 99");
  with([](L::Header& h) { h.heap_begin = 4096; h.checksum = L::header_checksum(h); }, "heap bounds");
  with([](L::Header& h) { h.lock_mode ^= 1; h.checksum = L::header_checksum(h); }, "lock mode");
  with([](L::Header& h) {
    reinterpret_cast<L::Layout&>(h).alloc.log_count = 1000;
  }, "undo log");
  with([](L::Header& h) {
    reinterpret_cast<L::Layout&>(h).dir.first_chunk = 3;
  }, "directory page");
}

// ---- corrupt bookkeeping is reported, never followed ------------------------------------------

TEST(ArenaCorruption, AScribbledFreeListIsReportedAndNothingChanges) {
  auto a = mp::Arena::create(1 << 16);
  std::vector<void*> keep;
  for (int i = 0; i < 8; ++i) keep.push_back(a.allocate(40));  // 64-byte blocks
  for (int i = 0; i < 8; i += 2) a.deallocate(keep[i]);        // four free 64-byte blocks
  for (int i = 0; i < 4; ++i) a.allocate(40);                  // taken again: only the big block is free
  auto& layout = *static_cast<L::Layout*>(a.base());
  std::uint64_t* head = nullptr;
  for (auto& row : layout.alloc.heads)
    for (auto& h : row)
      if (h != 0) head = &h;
  ASSERT_NE(head, nullptr);
  *head = a.mapped_size() + 4096;  // the big block's list now points outside the mapping
  const auto before = image_of(a);
  const auto e = catch_error([&] { a.allocate(40); });
  EXPECT_EQ(e.code(), mp::errc::bad_arena) << e.what();
  EXPECT_NE(std::string(e.what()).find("corrupt"), std::string::npos) << e.what();
  EXPECT_EQ(std::memcmp(before.data(), a.base(), before.size()), 0) << "the refused call changed nothing";
  EXPECT_EQ(catch_error([&] { a.check(); }).code(), mp::errc::bad_arena);
  EXPECT_EQ(catch_error([&] { a.stats(); }).code(), mp::errc::bad_arena);
  // A scribbled header of a live block: deallocate refuses (and counts) it.
  auto* hdr = reinterpret_cast<L::Block*>(static_cast<char*>(keep[3]) - 16);
  hdr->size_flags = 17 * 16;
  const auto still = image_of(a);
  a.deallocate(keep[3]);
  EXPECT_EQ(layout.alloc.invalid_frees, 1u);
  EXPECT_EQ(std::memcmp(still.data() + L::kHeaderBytes, static_cast<char*>(a.base()) + L::kHeaderBytes,
                        a.size()),
            0);
}

TEST(ArenaCorruption, ADeadHoldersHalfDoneCallIsUndone) {
  auto a = mp::Arena::create(1 << 16);
  void* x = a.allocate(100);
  a.deallocate(a.allocate(300));
  const auto before = image_of(a);
  auto& al = static_cast<L::Layout*>(a.base())->alloc;
  // A child takes the allocator lock, logs and scribbles two words as a call would, and dies.
  const pid_t child = mptest::spawn([&] {
    if (al.lock.lock() != mp::LockResult::acquired) return 1;
    const auto off = [&](const void* p) { return static_cast<std::uint64_t>(static_cast<const char*>(p) - static_cast<const char*>(a.base())); };
    al.log[0] = {off(&al.fl_bitmap), al.fl_bitmap};
    al.log[1] = {off(&al.used), al.used};
    al.log_count = 2;
    al.fl_bitmap = 0xdeadbeef;
    al.used = 12345;
    ::_exit(0);  // holding the lock
  });
  ASSERT_EQ(mptest::wait_exit(child), 0);
  EXPECT_EQ(a.used(), 12345u) << "the half-done call is visible until someone locks";
  void* y = a.allocate(50);  // recovers first
  a.deallocate(y);
  EXPECT_EQ(a.stats().lock_recoveries, 1u);
  EXPECT_EQ(al.log_count, 0u);
  EXPECT_NO_THROW(a.check());
  const auto after = image_of(a);
  // The allocator state is exactly as before, except the lock word and the recovery count.
  const std::size_t from = offsetof(L::Layout, alloc) + offsetof(L::AllocState, log_count);
  const std::size_t to = offsetof(L::Layout, dir);
  EXPECT_EQ(std::memcmp(before.data() + from + 8 + sizeof al.log, after.data() + from + 8 + sizeof al.log,
                        to - from - 8 - sizeof al.log),
            0)
      << "bitmaps and list heads restored";
  a.deallocate(x);
}

TEST(ArenaCorruption, AnUnreadableUndoLogMakesTheAllocatorNotRecoverable) {
  auto a = mp::Arena::create(1 << 16);
  auto& al = static_cast<L::Layout*>(a.base())->alloc;
  const pid_t child = mptest::spawn([&] {
    if (al.lock.lock() != mp::LockResult::acquired) return 1;
    al.log[0] = {3, 0};  // not a word the allocator writes
    al.log_count = 1;
    ::_exit(0);
  });
  ASSERT_EQ(mptest::wait_exit(child), 0);
  EXPECT_EQ(catch_error([&] { a.allocate(10); }).code(), mp::errc::not_recoverable);
  EXPECT_EQ(catch_error([&] { a.allocate(10); }).code(), mp::errc::not_recoverable) << "for every later call too";
  void* p = reinterpret_cast<char*>(a.base()) + L::kHeaderBytes + 16;
  a.deallocate(p);  // noexcept: refused and counted
  EXPECT_EQ(al.invalid_frees, 1u);
}

// ---- threads of one process share the arena like processes do ---------------------------------

TEST(ArenaThreads, ThreadsAllocateAndRaceForNamesSafely) {
  struct Once {
    std::atomic<int>* built;
    int value;
    explicit Once(std::atomic<int>* b) : built(b), value(0) {
      built->fetch_add(1);
      value = 42;
    }
  };
  auto a = mp::Arena::create(1 << 20);
  std::atomic<int> built{0}, bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t));
      std::vector<std::pair<unsigned char*, std::size_t>> mine;
      for (int i = 0; i < 5000; ++i) {
        if (i % 500 == 0 && a.find_or_make<Once>("once" + std::to_string(i / 500), &built).value != 42) ++bad;
        if (!mine.empty() && rng() % 2) {
          auto [p, n] = mine.back();
          mine.pop_back();
          for (std::size_t k = 0; k < n; ++k)
            if (p[k] != static_cast<unsigned char>(t)) ++bad;
          a.deallocate(p);
        } else {
          const std::size_t n = 1 + rng() % 300;
          auto* p = static_cast<unsigned char*>(a.allocate(n, std::size_t{1} << (rng() % 8)));
          std::memset(p, t, n);
          mine.emplace_back(p, n);
        }
      }
      for (auto [p, n] : mine) a.deallocate(p);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(built.load(), 10) << "each name constructed once across the threads";
  EXPECT_NO_THROW(a.check());
}
