// Shared helpers for the Dict/List tests: a Dict or List placed in its own MAP_SHARED mapping
// (inherited by fork()ed children), and a value type whose torn copies are detectable.
#pragma once

#include <multiproc/dict.hpp>

#include "mptest.hpp"

#include <csignal>
#include <cstdint>
#include <functional>
#include <new>
#include <sys/prctl.h>
#include <unistd.h>

namespace dicttest {

/// mptest::spawn, but the child is SIGKILLed if this process dies first: loops that run until
/// the parent says stop must not outlive a parent killed by a test timeout.
inline pid_t spawn_tied(std::function<int()> fn) {
  const pid_t parent = ::getpid();
  return mptest::spawn([fn = std::move(fn), parent] {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) return 98;  // the parent died before prctl
    return fn();
  });
}

/// A T (Dict or List) and its storage in one shared anonymous mapping.
template <class T>
class InShared {
 public:
  explicit InShared(std::size_t capacity)
      : bytes_(T::storage_bytes(capacity)), mem_(kHead + bytes_) {
    static_assert(sizeof(T) <= kHead, "the object fits before its storage");
    auto* base = static_cast<char*>(mem_.get());
    p_ = ::new (base) T(base + kHead, bytes_, capacity);
  }
  T* operator->() const { return p_; }
  T& operator*() const { return *p_; }
  /// The whole image: object then storage.
  unsigned char* image() const { return static_cast<unsigned char*>(mem_.get()); }
  std::size_t image_bytes() const { return kHead + bytes_; }
  static constexpr std::size_t kHead = 256;

 private:
  std::size_t bytes_;
  mptest::SharedMemory mem_;
  T* p_;
};

/// A value whose three words are equal when written whole: a torn copy has unequal words.
struct Triple {
  std::uint64_t a = 0, b = 0, c = 0;
  static Triple of(std::uint64_t x) { return Triple{x, x * 31 + 7, ~x}; }
  bool whole() const { return b == a * 31 + 7 && c == ~a; }
  bool operator==(const Triple&) const = default;
};

/// A 256-byte value (32 words derived from the first): a long write, so a reader that could
/// copy a half-written value would be caught.
struct Wide {
  std::uint64_t w[32] = {};
  static Wide of(std::uint64_t x) {
    Wide v;
    for (int i = 0; i < 32; ++i) v.w[i] = x * (2 * i + 1) + i;
    return v;
  }
  bool whole() const { return *this == of(w[0]); }
  bool operator==(const Wide&) const = default;
};

}  // namespace dicttest
