// The wire format and the frame decoder, without any I/O.
#include "frame.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

using namespace multiproc::detail;

namespace {

std::vector<std::byte> frame(std::uint32_t length, FrameKind kind = FrameKind::data, std::byte fill = std::byte{0x5A}) {
  const HeaderBytes h = encode_header(length, kind);
  std::vector<std::byte> out(h.begin(), h.end());
  out.resize(kHeaderSize + length, fill);
  return out;
}

void feed(FrameDecoder& d, const std::vector<std::byte>& bytes) {
  std::size_t at = 0;
  while (at < bytes.size()) {
    auto space = d.prepare(1);
    const std::size_t n = std::min(space.size(), bytes.size() - at);
    std::memcpy(space.data(), bytes.data() + at, n);
    d.commit(n);
    at += n;
  }
}

}  // namespace

TEST(Frame, HeaderRoundTrips) {
  for (std::uint32_t len : {0u, 1u, 4096u, 1u << 20, 0xFFFF'FFFFu}) {
    for (FrameKind k : {FrameKind::data, FrameKind::reject}) {
      const HeaderBytes h = encode_header(len, k);
      const Head p = parse_header(h, 0xFFFF'FFFFu);
      ASSERT_EQ(p.status, Head::ready) << len;
      EXPECT_EQ(p.length, len);
      EXPECT_EQ(p.kind, k);
      EXPECT_EQ(p.buffered_payload, 0u);
    }
  }
}

TEST(Frame, EverySingleFlippedHeaderBitIsCaught) {
  for (std::uint32_t len : {0u, 1u, 77u, 65536u, 0x1234'5678u}) {
    const HeaderBytes good = encode_header(len, FrameKind::data);
    for (int bit = 0; bit < 64; ++bit) {
      HeaderBytes bad = good;
      bad[bit / 8] ^= std::byte(1u << (bit % 8));
      EXPECT_EQ(parse_header(bad, 0xFFFF'FFFFu).status, Head::bad) << "len " << len << " bit " << bit;
    }
  }
}

TEST(Frame, AllZeroHeaderIsGarbage) {
  const HeaderBytes zero{};
  EXPECT_EQ(parse_header(zero, 1 << 20).status, Head::bad);
}

TEST(Frame, ShortInputNeedsMore) {
  const HeaderBytes h = encode_header(5, FrameKind::data);
  for (std::size_t n = 0; n < kHeaderSize; ++n)
    EXPECT_EQ(parse_header(std::span(h.data(), n), 100).status, Head::need_more);
}

TEST(Frame, LengthAboveTheMaximumIsBadBeforeAnyPayload) {
  const HeaderBytes h = encode_header(101, FrameKind::data);
  const Head p = parse_header(h, 100);
  EXPECT_EQ(p.status, Head::bad);
  EXPECT_EQ(p.length, 101u);
  EXPECT_EQ(parse_header(encode_header(100, FrameKind::data), 100).status, Head::ready);
}

TEST(Frame, FdFramesCarryNoPayload) {
  EXPECT_EQ(parse_header(encode_header(0, FrameKind::fd), 100).status, Head::ready);
  EXPECT_EQ(parse_header(encode_header(1, FrameKind::fd), 100).status, Head::bad);
}

TEST(Frame, UnknownKindIsBad) {
  HeaderBytes h{};
  const std::uint32_t len = 3;
  const std::uint16_t kind = 7;
  const std::uint16_t check = frame_check(len, kind);  // a well-formed check of an unknown kind
  std::memcpy(h.data(), &len, 4);
  std::memcpy(h.data() + 4, &kind, 2);
  std::memcpy(h.data() + 6, &check, 2);
  EXPECT_EQ(parse_header(h, 100).status, Head::bad);
}

TEST(FrameDecoder, ParsesManyFramesOutOfOneBuffer) {
  FrameDecoder d(1 << 20);
  std::vector<std::byte> stream;
  for (std::uint32_t len : {0u, 1u, 7u, 100u, 0u}) {
    const auto f = frame(len);
    stream.insert(stream.end(), f.begin(), f.end());
  }
  feed(d, stream);
  for (std::uint32_t len : {0u, 1u, 7u, 100u, 0u}) {
    const Head h = d.head();
    ASSERT_TRUE(h.whole());
    EXPECT_EQ(h.length, len);
    d.consume(kHeaderSize + len);
  }
  EXPECT_TRUE(d.empty());
  EXPECT_EQ(d.offset(), stream.size());
}

TEST(FrameDecoder, GrowsForALargeFrameAndShrinksAfter) {
  FrameDecoder d(1 << 20, 4096);
  const auto f = frame(300'000);
  feed(d, f);
  EXPECT_TRUE(d.head().whole());
  EXPECT_LE(d.capacity(), kHeaderSize + (1u << 20) + 4096);
  d.consume(f.size());
  EXPECT_EQ(d.capacity(), 0u);  // released once empty
}

TEST(FrameDecoder, NeverGrowsBeyondTheBound) {
  const std::size_t max = 10'000, chunk = 1024;
  FrameDecoder d(max, chunk);
  for (int i = 0; i < 100; ++i) {
    auto space = d.prepare(1u << 30);  // absurd requests are clamped
    EXPECT_LE(d.capacity(), kHeaderSize + max + chunk);
    d.commit(std::min<std::size_t>(space.size(), 10));
    if (d.buffered().size() > max) break;
  }
  EXPECT_LE(d.capacity(), kHeaderSize + max + chunk);
}

TEST(FrameDecoder, CompactsInsteadOfGrowing) {
  FrameDecoder d(1 << 20, 4096);
  std::vector<std::byte> stream;
  for (int i = 0; i < 200; ++i) {
    const auto f = frame(60);
    stream.insert(stream.end(), f.begin(), f.end());
  }
  std::size_t at = 0, frames = 0, rounds = 0;
  while (at < stream.size() || !d.empty()) {
    ASSERT_LT(++rounds, 10'000u) << "no progress";
    if (at < stream.size()) {
      auto space = d.prepare(1);
      const std::size_t n = std::min({space.size(), stream.size() - at, std::size_t{1000}});
      std::memcpy(space.data(), stream.data() + at, n);
      d.commit(n);
      at += n;
    }
    while (d.head().whole()) {
      d.consume(kHeaderSize + 60);
      ++frames;
    }
    EXPECT_LE(d.capacity(), 4096u);
  }
  EXPECT_EQ(frames, 200u);
}
