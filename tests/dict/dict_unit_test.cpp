// Dict, List and FixedString in one process: the contract call by call, edge cases, and
// corrupted images (Error(bad_arena), never a crash).
#include <multiproc/dict.hpp>

#include <gtest/gtest.h>
#include "dict_test_util.hpp"

#include <map>
#include <set>
#include <string>
#include <unordered_map>

namespace mp = multiproc;
using dicttest::InShared;

// ---- FixedString ----------------------------------------------------------------------------

TEST(FixedString, HoldsUpToNBytesAndComparesByText) {
  const mp::FixedString<8> empty;
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_TRUE(empty.view().empty());
  const mp::FixedString<8> a("abc"), b(std::string_view("abc")), full("12345678");
  EXPECT_EQ(a.view(), "abc");
  EXPECT_EQ(a.size(), 3u);
  EXPECT_EQ(full.size(), 8u);
  EXPECT_TRUE(a == b);
  EXPECT_FALSE(a == full);
  EXPECT_LT(a, mp::FixedString<8>("abd"));
  std::string_view sv = a;
  EXPECT_EQ(sv, "abc");
  const mp::FixedString<8> with_nul(std::string_view("a\0b", 3));
  EXPECT_EQ(with_nul.size(), 3u) << "bytes are bytes: an embedded NUL is kept";
  EXPECT_EQ(mp::FixedString<8>(static_cast<const char*>(nullptr)).size(), 0u);
}

TEST(FixedString, LongerTextThrowsValueTooLarge) {
  try {
    mp::FixedString<4> s("hello");
    FAIL() << "no exception";
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.code(), std::make_error_code(std::errc::value_too_large));
    EXPECT_NE(std::string(e.what()).find("5 bytes do not fit in 4"), std::string::npos) << e.what();
  }
}

TEST(FixedString, HashDependsOnTextOnly) {
  const std::hash<mp::FixedString<16>> h;
  EXPECT_EQ(h(mp::FixedString<16>("key")), h(mp::FixedString<16>(std::string("key"))));
  EXPECT_NE(h(mp::FixedString<16>("key")), h(mp::FixedString<16>("kez")));
  EXPECT_NE(h(mp::FixedString<16>("")), h(mp::FixedString<16>(std::string_view("\0", 1))));
  EXPECT_EQ(h(mp::FixedString<16>("abc")), mp::detail::hash_bytes("abc", 3));
}

TEST(FixedString, ViewOfACorruptedCopyStaysInsideTheObject) {
  mp::FixedString<8> s("abc");
  unsigned char bytes[sizeof s];
  std::memcpy(bytes, &s, sizeof s);
  bytes[0] = 0xff;  // the length field: 255 > 8
  mp::FixedString<8> bad;
  std::memcpy(&bad, bytes, sizeof bad);
  EXPECT_EQ(bad.size(), 8u);
  EXPECT_EQ(bad.view().size(), 8u);
}

// ---- Dict -----------------------------------------------------------------------------------

TEST(Dict, InsertGetEraseSize) {
  InShared<mp::Dict<int, long>> d(100);
  EXPECT_EQ(d->capacity(), 100u);
  EXPECT_EQ(d->size(), 0u);
  EXPECT_FALSE(d->get(1).has_value());
  EXPECT_TRUE(d->insert(1, 10));
  EXPECT_FALSE(d->insert(1, 99)) << "insert does not overwrite";
  EXPECT_EQ(d->get(1), 10);
  d->insert_or_assign(1, 11);
  d->insert_or_assign(2, 20);
  EXPECT_EQ(d->get(1), 11);
  EXPECT_EQ(d->get(2), 20);
  EXPECT_EQ(d->size(), 2u);
  EXPECT_TRUE(d->erase(1));
  EXPECT_FALSE(d->erase(1));
  EXPECT_FALSE(d->get(1).has_value());
  EXPECT_EQ(d->size(), 1u);
}

TEST(Dict, UpdateRunsFnOnThePresentValueOnly) {
  InShared<mp::Dict<int, long>> d(8);
  int calls = 0;
  EXPECT_FALSE(d->update(5, [&](long&) { ++calls; }));
  EXPECT_EQ(calls, 0);
  ASSERT_TRUE(d->insert(5, 100));
  EXPECT_TRUE(d->update(5, [&](long& x) {
    ++calls;
    x -= 1;
  }));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(d->get(5), 99);
  EXPECT_THROW(d->update(5, [](long& x) {
    x = -1;
    throw std::runtime_error("no");
  }),
               std::runtime_error);
  EXPECT_EQ(d->get(5), 99) << "a throwing fn changes nothing";
  EXPECT_TRUE(d->insert(6, 1)) << "and leaves the stripe unlocked";
}

TEST(Dict, CapacityIsExact) {
  for (std::size_t cap : {0u, 1u, 14u, 15u, 16u, 45u, 100u, 1000u}) {
    InShared<mp::Dict<std::uint64_t, std::uint64_t>> d(cap);
    for (std::uint64_t k = 0; k < cap; ++k) ASSERT_TRUE(d->insert(k * 7919, k)) << "cap " << cap << " k " << k;
    EXPECT_EQ(d->size(), cap);
    try {
      d->insert(~0ull, 1);
      FAIL() << "cap " << cap << ": no exception";
    } catch (const mp::Error& e) {
      EXPECT_EQ(e.code(), mp::errc::out_of_memory);
    }
    EXPECT_THROW(d->insert_or_assign(~0ull, 1), mp::Error);
    if (cap > 0) {
      EXPECT_FALSE(d->insert(0, 5)) << "a present key is still reported, not out_of_memory";
      d->insert_or_assign(0, 5);  // assigning a present key needs no room
      EXPECT_EQ(d->get(0), 5u);
      ASSERT_TRUE(d->erase(0));
      EXPECT_TRUE(d->insert(~0ull, 1)) << "room again after an erase";
    }
    for (std::uint64_t k = 1; k < cap; ++k) ASSERT_EQ(d->get(k * 7919), k);
  }
}

TEST(Dict, ForEachSeesEveryEntryOnce) {
  InShared<mp::Dict<int, int>> d(500);
  for (int i = 0; i < 500; ++i) ASSERT_TRUE(d->insert(i, i * i));
  for (int i = 0; i < 500; i += 3) ASSERT_TRUE(d->erase(i));
  std::map<int, int> seen;
  d->for_each([&](const int& k, const int& v) { EXPECT_TRUE(seen.emplace(k, v).second) << "twice: " << k; });
  std::map<int, int> expect;
  for (int i = 0; i < 500; ++i)
    if (i % 3 != 0) expect[i] = i * i;
  EXPECT_EQ(seen, expect);
  EXPECT_EQ(d->size(), expect.size());
}

TEST(Dict, ForEachMayUseTheDict) {
  InShared<mp::Dict<int, int>> d(64);
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(d->insert(i, i));
  d->for_each([&](const int& k, const int&) { d->erase(k); });
  EXPECT_EQ(d->size(), 0u);
}

TEST(Dict, FixedStringKeysAndValues) {
  using S = mp::FixedString<24>;
  InShared<mp::Dict<S, S>> d(64);
  EXPECT_TRUE(d->insert("alice", "engineer"));
  EXPECT_TRUE(d->insert(S("bob"), S("pilot")));
  EXPECT_EQ(d->get("alice")->view(), "engineer");
  EXPECT_EQ(d->get("bob")->view(), "pilot");
  EXPECT_FALSE(d->get("carol").has_value());
  EXPECT_TRUE(d->update("bob", [](S& s) { s = S(std::string(s.view()) + "!"); }));
  EXPECT_EQ(d->get("bob")->view(), "pilot!");
}

struct Pt {
  int x, y;
  bool operator==(const Pt&) const = default;
};
struct Raw {  // no ==, no std::hash: bytes for both
  std::uint32_t a;
  std::uint16_t b, c;
};

TEST(Dict, KeysWithoutStdHashUseTheirBytes) {
  InShared<mp::Dict<Pt, double>> d(64);
  EXPECT_TRUE(d->insert(Pt{1, 2}, 3.0));
  EXPECT_FALSE(d->insert(Pt{1, 2}, 4.0));
  EXPECT_EQ(d->get(Pt{1, 2}), 3.0);
  EXPECT_FALSE(d->get(Pt{2, 1}).has_value());
  InShared<mp::Dict<Raw, int>> r(16);
  EXPECT_TRUE(r->insert(Raw{1, 2, 3}, 7));
  EXPECT_EQ(r->get(Raw{1, 2, 3}), 7);
  EXPECT_FALSE(r->get(Raw{1, 3, 2}).has_value());
}

struct Constant {  // the worst hash: everything collides; the Dict must still be correct
  std::uint64_t operator()(int) const { return 42; }
};

TEST(Dict, ACustomHashIsUsedAndCollisionsStayCorrect) {
  InShared<mp::Dict<int, int, Constant>> d(200);
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(d->insert(i, -i));
  for (int i = 0; i < 200; ++i) ASSERT_EQ(d->get(i), -i);
  for (int i = 0; i < 200; i += 2) ASSERT_TRUE(d->erase(i));
  for (int i = 0; i < 200; ++i) ASSERT_EQ(d->get(i).has_value(), i % 2 == 1) << i;
  for (int i = 0; i < 200; i += 2) ASSERT_TRUE(d->insert(i, i));
  EXPECT_EQ(d->size(), 200u);
  EXPECT_THROW(d->insert(1000, 0), mp::Error);
}

TEST(Dict, LongChurnKeepsEveryKeyFindable) {
  InShared<mp::Dict<std::uint64_t, std::uint64_t>> d(1000);
  std::unordered_map<std::uint64_t, std::uint64_t> model;
  std::uint64_t x = 1;
  for (int step = 0; step < 200000; ++step) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    const std::uint64_t k = (x >> 33) % 3000;
    if ((x & 1) && model.size() < 1000) {
      EXPECT_EQ(d->insert(k, step), model.emplace(k, step).second);
    } else {
      EXPECT_EQ(d->erase(k), model.erase(k) == 1);
    }
  }
  EXPECT_EQ(d->size(), model.size());
  for (const auto& [k, v] : model) ASSERT_EQ(d->get(k), v);
}

TEST(Dict, CorruptedHeaderIsBadArena) {
  InShared<mp::Dict<int, int>> d(64);
  ASSERT_TRUE(d->insert(1, 1));
  auto expect_bad = [&](const char* what) {
    try {
      (void)d->get(1);
      ADD_FAILURE() << what << ": no exception";
    } catch (const mp::Error& e) {
      EXPECT_EQ(e.code(), mp::errc::bad_arena) << what;
    }
    EXPECT_THROW(d->insert(2, 2), mp::Error) << what;
    EXPECT_EQ(d->size(), 0u) << what << ": size() of a bad image reads as 0";
  };
  for (std::size_t off : {0u, 8u, 12u, 16u, 20u, 24u, 28u, 32u, 40u, 48u, 56u}) {  // each header field
    unsigned char saved[8];
    std::memcpy(saved, d.image() + off, 8);
    d.image()[off] ^= 0x40;
    expect_bad(("byte " + std::to_string(off)).c_str());
    std::memcpy(d.image() + off, saved, 8);
  }
  EXPECT_EQ(d->get(1), 1) << "restored";
}

TEST(Dict, UsedAsAnotherTypeIsBadArena) {
  InShared<mp::Dict<int, int>> d(16);
  auto& other = reinterpret_cast<mp::Dict<int, long>&>(*d);
  try {
    (void)other.get(1);
    FAIL();
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.code(), mp::errc::bad_arena);
    EXPECT_NE(std::string(e.what()).find("4-byte values"), std::string::npos) << e.what();
  }
}

TEST(Dict, StorageMustBeLargeAndAligned) {
  using D = mp::Dict<int, int>;
  alignas(64) static unsigned char buf[4096];
  alignas(64) static unsigned char obj[sizeof(D)];
  EXPECT_THROW(::new (obj) D(buf, 10, 100), mp::Error);
  EXPECT_THROW(::new (obj) D(buf + 8, D::storage_bytes(10), 10), mp::Error);
}

// ---- List -----------------------------------------------------------------------------------

TEST(List, PushPopIndexSet) {
  InShared<mp::List<long>> l(3);
  EXPECT_EQ(l->capacity(), 3u);
  EXPECT_EQ(l->size(), 0u);
  EXPECT_FALSE(l->pop_back().has_value());
  l->push_back(11);
  l->push_back(22);
  l->push_back(33);
  try {
    l->push_back(44);
    FAIL();
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.code(), mp::errc::out_of_memory);
  }
  EXPECT_EQ((*l)[0], 11);
  EXPECT_EQ((*l)[2], 33);
  l->set(0, 99);
  EXPECT_EQ((*l)[0], 99);
  try {
    (void)(*l)[3];
    FAIL();
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.code(), std::make_error_code(std::errc::result_out_of_range));
  }
  EXPECT_THROW(l->set(3, 1), mp::Error);
  EXPECT_EQ(l->snapshot(), (std::vector<long>{99, 22, 33}));
  std::vector<long> seen;
  l->for_each([&](const long& v) { seen.push_back(v); });
  EXPECT_EQ(seen, (std::vector<long>{99, 22, 33}));
  EXPECT_EQ(l->pop_back(), 33);
  EXPECT_EQ(l->size(), 2u);
}

TEST(List, CorruptedImageIsBadArena) {
  InShared<mp::List<int>> l(4);
  l->push_back(1);
  l.image()[8] ^= 1;  // elem size
  try {
    (void)(*l)[0];
    FAIL();
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.code(), mp::errc::bad_arena);
  }
}

// ---- in an Arena ------------------------------------------------------------------------------

TEST(DictInArena, MakeFindAcrossTwoMappingsAndDestroy) {
  using Names = mp::Dict<mp::FixedString<16>, int>;
  auto a = mp::Arena::create(1 << 20);
  a.make<int>("warm", 0);  // the name directory's first page stays allocated
  const std::size_t used0 = a.used();
  Names& d = a.make<Names>("names", 100);
  ASSERT_TRUE(d.insert("alice", 1));
  // The same arena mapped a second time, at another address: the same Dict.
  auto b = mp::Arena::from_fd(a.fd());
  Names* other = b.find<Names>("names");
  ASSERT_NE(other, nullptr);
  ASSERT_NE(static_cast<void*>(other), static_cast<void*>(&d)) << "a second mapping has its own address";
  EXPECT_EQ(other->get("alice"), 1);
  EXPECT_TRUE(other->insert("bob", 2));
  EXPECT_EQ(d.get("bob"), 2);
  EXPECT_EQ(d.size(), 2u);
  // A forked child finds it by name too.
  const pid_t child = mptest::spawn([&] {
    Names* n = a.find<Names>("names");
    return n != nullptr && n->update("alice", [](int& v) { v = 10; }) ? 0 : 1;
  });
  EXPECT_EQ(mptest::wait_exit(child), 0);
  EXPECT_EQ(other->get("alice"), 10);
  a.destroy(d);
  EXPECT_EQ(a.used(), used0) << "destroy gives the table back";
  EXPECT_EQ(b.find<Names>("names"), nullptr);
}

TEST(DictInArena, TooLargeForTheArenaIsOutOfMemory) {
  auto a = mp::Arena::create(1 << 16);
  try {
    a.make<mp::Dict<std::uint64_t, std::uint64_t>>("big", 100000);
    FAIL();
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.code(), mp::errc::out_of_memory);
  }
  EXPECT_EQ((a.find<mp::Dict<std::uint64_t, std::uint64_t>>("big")), nullptr) << "nothing left behind";
}

TEST(ListInArena, MakeFindAndDestroy) {
  auto a = mp::Arena::create(1 << 16);
  a.make<int>("warm", 0);
  const std::size_t used0 = a.used();
  auto& l = a.make<mp::List<int>>("l", 10);
  l.push_back(11);
  const pid_t child = mptest::spawn([&] {
    auto* m = a.find<mp::List<int>>("l");
    if (m == nullptr) return 1;
    m->set(0, 12);
    m->push_back(13);
    return 0;
  });
  EXPECT_EQ(mptest::wait_exit(child), 0);
  EXPECT_EQ(l.snapshot(), (std::vector<int>{12, 13}));
  a.destroy(l);
  EXPECT_EQ(a.used(), used0);
}
