// Fuzz target: arbitrary bytes as a Connection's incoming stream, cut into arbitrary pieces.
//
// Input layout: bytes 0-2 pick max_message (0..1 MiB), byte 3 the read-ahead chunk, bytes 4-7
// seed the piece sizes; the rest is the stream. The chunked FrameDecoder (what Connection uses)
// is checked against a straightforward decode of the whole stream at once: same frames, same
// payloads, same verdict at the end. Never a crash, never a buffer beyond
// kHeaderSize + max_message + chunk (so no allocation a header could inflate), never a loop that
// does not consume input.
#include "../primitives/src/frame.hpp"

#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

using namespace multiproc::detail;

namespace {

#define FUZZ_CHECK(cond) \
  do {                   \
    if (!(cond)) __builtin_trap(); \
  } while (0)

struct Frame {
  FrameKind kind;
  std::size_t at, length;  // payload at stream[at, at + length)
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 8) return 0;
  const std::size_t max = (std::size_t{data[0]} | std::size_t{data[1]} << 8 | std::size_t{data[2] & 0x0Fu} << 16);
  const std::size_t chunk = 16 + std::size_t{data[3]} * 64;
  std::uint32_t rng;
  std::memcpy(&rng, data + 4, 4);
  rng |= 1;
  const std::span<const std::byte> stream(reinterpret_cast<const std::byte*>(data + 8), size - 8);

  // Reference: decode the whole stream in one piece.
  std::vector<Frame> ref;
  Head::Status ref_end = Head::need_more;
  std::size_t at = 0;
  for (;;) {
    const Head h = parse_header(stream.subspan(at), max);
    if (h.status == Head::bad) {
      ref_end = Head::bad;
      break;
    }
    if (!h.whole()) break;
    ref.push_back({h.kind, at + kHeaderSize, h.length});
    at += kHeaderSize + h.length;
  }

  // Chunked, as Connection reads: room for what the front frame still needs, a random piece.
  FrameDecoder d(max, chunk);
  std::size_t fed = 0, decoded = 0;
  for (;;) {
    Head h = d.head();
    while (h.whole()) {
      FUZZ_CHECK(decoded < ref.size());
      FUZZ_CHECK(h.kind == ref[decoded].kind && h.length == ref[decoded].length);
      FUZZ_CHECK(d.offset() + kHeaderSize == ref[decoded].at);
      FUZZ_CHECK(std::memcmp(d.buffered().data() + kHeaderSize, stream.data() + ref[decoded].at, h.length) == 0);
      d.consume(kHeaderSize + h.length);
      ++decoded;
      h = d.head();
    }
    if (h.status == Head::bad) {
      FUZZ_CHECK(ref_end == Head::bad && decoded == ref.size());
      break;
    }
    if (fed == stream.size()) {
      FUZZ_CHECK(ref_end == Head::need_more && decoded == ref.size());
      break;
    }
    const std::size_t have = d.buffered().size();
    const std::size_t want = h.status == Head::ready ? kHeaderSize + h.length - have : kHeaderSize - have;
    const std::span<std::byte> space = d.prepare(want);
    FUZZ_CHECK(!space.empty());
    FUZZ_CHECK(d.capacity() <= kHeaderSize + max + chunk);
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    const std::size_t piece = 1 + rng % std::min<std::size_t>(space.size(), stream.size() - fed);
    std::memcpy(space.data(), stream.data() + fed, piece);
    d.commit(piece);
    fed += piece;
  }
  return 0;
}
