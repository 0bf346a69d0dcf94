// The object the arena fd-passing test shares with an exec()ed program (arena_peer.cpp): both
// binaries include this one definition, so the arena's type fingerprint matches.
#pragma once

#include <atomic>
#include <cstdint>

namespace pipe_test {

struct Board {
  std::atomic<std::uint64_t> hits{0};      // both processes add to it at the same time
  std::atomic<std::int32_t> writer_pid{0};  // the peer's pid, once it has written `note`
  char note[64] = {};
};

inline constexpr std::uint64_t kHitsPerProcess = 200'000;

}  // namespace pipe_test
