// frame.hpp (internal) — the Connection wire format and the receive-side frame decoder.
//
// Frame: an 8-byte header, then `length` payload bytes.
//   bytes 0-3  length  u32, host order (both ends of an AF_UNIX socket run on one host)
//   bytes 4-5  kind    u16: 0 data, 1 fd (the fd rides as SCM_RIGHTS on the header's bytes),
//                      2 reject (a Listener refusing a client; the payload is the reason)
//   bytes 6-7  check   u16: the two halves of length, xor kind, xor a constant
// A header is accepted only if its check matches and its kind is known, so random bytes pass
// with probability 3 * 2^-32 and any single flipped header bit is caught.
//
// FrameDecoder owns the receive buffer and is pure computation (no I/O, no fds): the caller
// reads into prepare(), commit()s what arrived, looks at head(), and consume()s frames. Memory
// is bounded: the buffer never grows beyond kHeaderSize + max_message + chunk bytes, and a header
// announcing more than max_message is reported as bad before any payload is read.
// Not thread-safe: one Connection, one thread at a time.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>

namespace multiproc::detail {

inline constexpr std::size_t kHeaderSize = 8;

enum class FrameKind : std::uint16_t { data = 0, fd = 1, reject = 2 };
inline constexpr std::uint16_t kMaxKind = 2;

inline constexpr std::uint16_t frame_check(std::uint32_t length, std::uint16_t kind) noexcept {
  // Xor-folding: every bit of length and kind lands on exactly one check bit, so any single
  // flipped header bit (check bits included) is caught; the constant ("mp") makes an all-zero
  // header invalid.
  return static_cast<std::uint16_t>((length & 0xFFFFu) ^ (length >> 16) ^ kind ^ 0x6D70u);
}

using HeaderBytes = std::array<std::byte, kHeaderSize>;

inline HeaderBytes encode_header(std::uint32_t length, FrameKind kind) noexcept {
  HeaderBytes h;
  const auto k = static_cast<std::uint16_t>(kind);
  const std::uint16_t c = frame_check(length, k);
  std::memcpy(h.data(), &length, 4);
  std::memcpy(h.data() + 4, &k, 2);
  std::memcpy(h.data() + 6, &c, 2);
  return h;
}

struct Head {
  enum Status : std::uint8_t {
    need_more,  // fewer than kHeaderSize bytes buffered
    ready,      // a valid header; `buffered_payload` of its `length` bytes are buffered
    bad,        // garbled header or length above the maximum: the stream is unusable
  };
  Status status = need_more;
  FrameKind kind = FrameKind::data;
  std::uint32_t length = 0;
  std::size_t buffered_payload = 0;
  const char* why = nullptr;  // for `bad`

  bool whole() const noexcept { return status == ready && buffered_payload == length; }
};

/// Parses a header; `max_message` bounds the length.
inline Head parse_header(std::span<const std::byte> bytes, std::size_t max_message) noexcept {
  Head h;
  if (bytes.size() < kHeaderSize) return h;
  std::uint32_t length;
  std::uint16_t kind, check;
  std::memcpy(&length, bytes.data(), 4);
  std::memcpy(&kind, bytes.data() + 4, 2);
  std::memcpy(&check, bytes.data() + 6, 2);
  if (check != frame_check(length, kind)) {
    h.status = Head::bad;
    h.why = "garbled frame header (check mismatch)";
    return h;
  }
  if (kind > kMaxKind) {
    h.status = Head::bad;
    h.why = "unknown frame kind";
    return h;
  }
  if (length > max_message) {
    h.status = Head::bad;
    h.kind = static_cast<FrameKind>(kind);
    h.length = length;
    h.why = "the header announces a message larger than max_message_size()";
    return h;
  }
  if (static_cast<FrameKind>(kind) == FrameKind::fd && length != 0) {
    h.status = Head::bad;
    h.why = "an fd frame with a payload";
    return h;
  }
  h.status = Head::ready;
  h.kind = static_cast<FrameKind>(kind);
  h.length = length;
  h.buffered_payload = std::min<std::size_t>(length, bytes.size() - kHeaderSize);
  return h;
}

class FrameDecoder {
 public:
  static constexpr std::size_t kDefaultChunk = 64 * 1024;

  explicit FrameDecoder(std::size_t max_message, std::size_t chunk = kDefaultChunk) noexcept
      : max_(max_message), chunk_(chunk) {}

  std::size_t max_message() const noexcept { return max_; }
  void set_max_message(std::size_t m) noexcept { max_ = m; }
  std::size_t chunk() const noexcept { return chunk_; }

  /// The bytes received and not yet consumed.
  std::span<const std::byte> buffered() const noexcept { return {buf_.get() + begin_, end_ - begin_}; }
  bool empty() const noexcept { return begin_ == end_; }
  /// Stream offset of buffered()[0]: bytes consumed so far, including bytes the caller read
  /// past the buffer (skip()).
  std::uint64_t offset() const noexcept { return offset_; }
  std::size_t capacity() const noexcept { return cap_; }

  /// The header at the front.
  Head head() const noexcept { return parse_header(buffered(), max_); }

  /// Free space at the tail, at least `min_free` bytes (and, when it has to move anything, at
  /// least half a chunk) — compacting first, then growing. The buffer never exceeds
  /// kHeaderSize + max_message + chunk bytes: `min_free` is clamped to that. Precondition for a
  /// non-empty result: the front frame is not whole (then fewer than kHeaderSize + max_message
  /// bytes are buffered). Throws std::bad_alloc only if the system is out of memory.
  std::span<std::byte> prepare(std::size_t min_free = 1) {
    const std::size_t used = end_ - begin_;
    const std::size_t bound = kHeaderSize + max_ + chunk_;
    min_free = std::clamp<std::size_t>(min_free, 1, bound > used ? bound - used : 1);
    const std::size_t tail = cap_ - end_;
    if (tail >= min_free && (begin_ == 0 || tail >= chunk_ / 2)) return {buf_.get() + end_, tail};
    if (cap_ != 0 && cap_ - used >= min_free) {
      std::memmove(buf_.get(), buf_.get() + begin_, used);
    } else {
      const std::size_t want = std::min(bound, std::max({used + min_free, 2 * cap_, chunk_}));
      std::unique_ptr<std::byte[]> bigger(new std::byte[want]);
      if (used != 0) std::memcpy(bigger.get(), buf_.get() + begin_, used);
      buf_ = std::move(bigger);
      cap_ = want;
    }
    begin_ = 0;
    end_ = used;
    return {buf_.get() + end_, cap_ - end_};
  }

  /// `n` bytes were written at the start of the last prepare()d span.
  void commit(std::size_t n) noexcept { end_ += n; }

  /// Drops `n` buffered bytes from the front. When the buffer empties, an oversized buffer
  /// (grown for one large message) is released.
  void consume(std::size_t n) noexcept {
    begin_ += n;
    offset_ += n;
    if (begin_ == end_) {
      begin_ = end_ = 0;
      if (cap_ > 2 * chunk_) {
        buf_.reset();
        cap_ = 0;
      }
    }
  }

  /// The caller read `n` stream bytes itself (a large payload straight into its buffer).
  void skip(std::size_t n) noexcept { offset_ += n; }

  /// Forgets everything (on close).
  void reset() noexcept {
    buf_.reset();
    cap_ = begin_ = end_ = 0;
  }

 private:
  std::size_t max_;
  std::size_t chunk_;
  std::unique_ptr<std::byte[]> buf_;
  std::size_t cap_ = 0, begin_ = 0, end_ = 0;
  std::uint64_t offset_ = 0;
};

}  // namespace multiproc::detail
