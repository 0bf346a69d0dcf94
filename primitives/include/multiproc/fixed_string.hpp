// multiproc/fixed_string.hpp — FixedString<N>: a string of at most N bytes that is trivially
// copyable, so it can be a key or value of a shared Dict, an element of a List or a Queue.
//
// What it guarantees
//   * Layout: a length (the smallest unsigned type that holds N) followed by N bytes, nothing
//     else: no pointer, no heap. Bytes past the length are zero after construction, so two
//     equal strings are also equal byte for byte (hashing or comparing the object's bytes agrees
//     with comparing text).
//   * Construction from std::string_view or const char* copies the text; text longer than N
//     bytes throws Error(std::errc::value_too_large) naming both lengths. Nothing is truncated
//     silently. Bytes are bytes: UTF-8 (or embedded NULs) are stored as given.
//   * view() never reads outside the object: a FixedString copied out of corrupted or torn
//     shared memory, whose length field is garbage, yields a view clamped to its N bytes.
//   * Comparison (==, <=>) is by text, as std::string_view compares. std::hash<FixedString<N>>
//     hashes the text with detail::hash_bytes, which depends only on the bytes — not on the
//     standard library's version — so processes built by different compilers agree on it.
#pragma once

#include <multiproc/error.hpp>

#include <algorithm>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

namespace multiproc {

namespace detail {

/// A 64-bit finalizer with full avalanche (SplitMix64's, after Stafford's "Mix13"): every input
/// bit flips each output bit with probability ~1/2. Dict applies it to every key hash, so weak
/// hashes (std::hash<int> is the identity in libstdc++) still spread over the table.
constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

/// Hash of `n` bytes: one multiply-xorshift step per 8-byte word, the length folded into the
/// seed, mix64 at the end. Depends only on the bytes (and byte order), never on the process,
/// build or standard library, so every process sharing a Dict computes the same value.
inline std::uint64_t hash_bytes(const void* data, std::size_t n) noexcept {
  const auto* p = static_cast<const unsigned char*>(data);
  std::uint64_t h = 0x9e3779b97f4a7c15ull ^ (static_cast<std::uint64_t>(n) * 0xff51afd7ed558ccdull);
  for (; n >= 8; n -= 8, p += 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 32;
  }
  if (n != 0) {
    std::uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 32;
  }
  return mix64(h);
}

template <std::size_t N>
using fixed_string_size_t =
    std::conditional_t<(N <= 0xff), std::uint8_t, std::conditional_t<(N <= 0xffff), std::uint16_t, std::uint32_t>>;

}  // namespace detail

template <std::size_t N>
class FixedString {
  static_assert(N > 0, "a FixedString holds at least one byte");
  static_assert(N <= 0xffffffffu, "a FixedString's length must fit in 32 bits");

 public:
  using size_type = detail::fixed_string_size_t<N>;
  static constexpr std::size_t max_size() noexcept { return N; }

  /// The empty string.
  constexpr FixedString() noexcept = default;

  /// A copy of `text`. Throws Error(std::errc::value_too_large) if it is longer than N bytes.
  FixedString(std::string_view text) {  // NOLINT: implicit, like std::string's
    if (text.size() > N) too_long(text.size());
    size_ = static_cast<size_type>(text.size());
    if (!text.empty()) std::memcpy(data_, text.data(), text.size());
  }

  /// A copy of the NUL-terminated `text` (nullptr: the empty string). Throws like the above.
  FixedString(const char* text) : FixedString(text ? std::string_view(text) : std::string_view()) {}  // NOLINT

  /// The text; never longer than N even if the length field was corrupted.
  std::string_view view() const noexcept { return {data_, size()}; }
  operator std::string_view() const noexcept { return view(); }  // NOLINT: as std::string's
  std::string str() const { return std::string(view()); }

  /// Length in bytes (clamped to N, like view()).
  std::size_t size() const noexcept { return std::min<std::size_t>(size_, N); }
  bool empty() const noexcept { return size() == 0; }
  const char* data() const noexcept { return data_; }

  friend bool operator==(const FixedString& a, const FixedString& b) noexcept { return a.view() == b.view(); }
  friend std::strong_ordering operator<=>(const FixedString& a, const FixedString& b) noexcept {
    return a.view() <=> b.view();
  }

 private:
  [[noreturn]] static void too_long(std::size_t n) {
    throw Error(std::make_error_code(std::errc::value_too_large),
                "FixedString<" + std::to_string(N) + ">: " + std::to_string(n) + " bytes do not fit in " +
                    std::to_string(N));
  }

  size_type size_ = 0;
  char data_[N] = {};
};

static_assert(std::is_trivially_copyable_v<FixedString<32>>, "FixedString is trivially copyable: it can live in a Dict");
static_assert(std::is_standard_layout_v<FixedString<32>>, "FixedString is standard layout: it can live in shared memory");
static_assert(sizeof(FixedString<31>) == 32, "FixedString<N> is N bytes plus its length, nothing else");

}  // namespace multiproc

template <std::size_t N>
struct std::hash<multiproc::FixedString<N>> {
  std::size_t operator()(const multiproc::FixedString<N>& s) const noexcept {
    const std::string_view v = s.view();
    return static_cast<std::size_t>(multiproc::detail::hash_bytes(v.data(), v.size()));
  }
};
