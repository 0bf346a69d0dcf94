// Helpers shared by the pipe tests: a child-side check, and deterministic message contents.
#pragma once

#include <cstddef>
#include <cstdio>
#include <unistd.h>
#include <vector>

/// In a fork()ed child (mptest::spawn): on failure print where and return a non-zero exit code
/// naming the line, so the parent's wait_exit check fails with it.
#define CHILD_CHECK(cond)                                                                   \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "child %d: %s:%d: %s\n", ::getpid(), __FILE__, __LINE__, #cond); \
      return __LINE__ % 200 + 1;                                                            \
    }                                                                                       \
  } while (0)

namespace pipetest {

/// Byte i of message number `index`: each side can check the other's without sharing it.
inline std::byte content(std::size_t index, std::size_t i) {
  return std::byte(static_cast<unsigned char>(index * 131 + i * 7 + (i >> 8)));
}

/// Message number `index`, `size` bytes of content(index, i).
inline std::vector<std::byte> message(std::size_t index, std::size_t size) {
  std::vector<std::byte> m(size);
  for (std::size_t i = 0; i < size; ++i) m[i] = content(index, i);
  return m;
}

}  // namespace pipetest
