// offset_ptr: self-relative pointers that stay valid wherever the memory is mapped.
#include <multiproc/arena.hpp>
#include <multiproc/offset_ptr.hpp>

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace mp = multiproc;

TEST(OffsetPtr, NullPointsAndCompares) {
  mp::offset_ptr<int> p;
  EXPECT_FALSE(p);
  EXPECT_EQ(p.get(), nullptr);
  EXPECT_TRUE(p == nullptr);
  int x = 5, arr[4] = {1, 2, 3, 4};
  p = &x;
  EXPECT_TRUE(p);
  EXPECT_EQ(*p, 5);
  EXPECT_EQ(p.get(), &x);
  p = arr;
  ++p;
  EXPECT_EQ(*p, 2);
  p += 2;
  EXPECT_EQ(p[0], 4);
  EXPECT_EQ(p[-3], 1);
  p = nullptr;
  EXPECT_FALSE(p);
}

TEST(OffsetPtr, CopyingRebasesAndMemcpyDoesNot) {
  int x = 1;
  mp::offset_ptr<int> a(&x);
  std::vector<mp::offset_ptr<int>> many(10, a);  // copies at ten other addresses
  for (auto& p : many) EXPECT_EQ(p.get(), &x);
  alignas(8) unsigned char raw[sizeof(a)];
  std::memcpy(raw, &a, sizeof a);  // what copying bytes does: the distance, not the target
  std::int64_t delta;
  std::memcpy(&delta, raw, sizeof delta);
  EXPECT_EQ(delta, a.raw());
  EXPECT_NE(reinterpret_cast<std::uintptr_t>(raw) + static_cast<std::uintptr_t>(delta), reinterpret_cast<std::uintptr_t>(&x));
}

namespace {
struct Node {
  int value;
  mp::offset_ptr<Node> next;
};
}  // namespace

TEST(OffsetPtr, AListBuiltInOneMappingReadsTheSameInAnother) {
  auto a = mp::Arena::create(1 << 16);
  mp::offset_ptr<Node>& head = a.make<mp::offset_ptr<Node>>("head");
  for (int i = 0; i < 100; ++i) {
    Node& n = a.make_anonymous<Node>(Node{i, head});
    head = &n;
  }
  auto b = mp::Arena::from_fd(a.fd());
  ASSERT_NE(a.base(), b.base());
  int expect = 99, count = 0;
  for (Node* n = b.find<mp::offset_ptr<Node>>("head")->get(); n != nullptr; n = n->next.get()) {
    EXPECT_TRUE(b.contains(n)) << "every link resolves into b's own mapping";
    EXPECT_EQ(n->value, expect--);
    ++count;
  }
  EXPECT_EQ(count, 100);
}
