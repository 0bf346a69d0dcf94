// The arena that fuzz/arena_image.cpp mutates in patch mode, built identically by the fuzzer and
// by the seed generator (tests/arena/make_corpus.cpp), so seeds can aim at its offsets.
//
// Input format (one libFuzzer input):
//   byte 0: flags — kPatchMode: the rest patches a copy of this template image;
//                   otherwise the rest *is* the memfd's bytes.
//                   kFixChecksum: recompute the header checksum after patching.
//                   kSealLoosely: seal only F_SEAL_SHRINK (from_fd must refuse it).
//   patch mode: repeated [u32 offset (mod image size)][u8 length][length bytes].
#pragma once

#include <multiproc/arena.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace arena_fuzz {

struct FuzzObject {  // same spelling under gcc and clang, so the type fingerprint matches
  std::uint64_t a, b;
  FuzzObject(std::uint64_t x, std::uint64_t y) : a(x), b(y) {}
};

inline constexpr std::uint8_t kPatchMode = 1, kFixChecksum = 2, kSealLoosely = 4;
inline constexpr std::size_t kHeap = 32 * 1024;
inline const char* const kNames[] = {"obj0", "obj1", "obj2", "obj3"};
inline constexpr int kInts = 12;  // "n0".."n11": a second directory page; "n3" destroyed

/// A small arena with named objects, a fragmented heap and two directory pages. Deterministic.
inline multiproc::Arena make_template() {
  auto a = multiproc::Arena::create(kHeap, "fuzz-template");
  for (int i = 0; i < 4; ++i) a.make<FuzzObject>(kNames[i], std::uint64_t(i), ~std::uint64_t(i));
  std::vector<void*> blocks;
  for (int i = 0; i < 40; ++i) blocks.push_back(a.allocate(16 + (37 * i) % 700, i % 5 == 0 ? 256 : 16));
  for (int i = 0; i < 40; i += 3) a.deallocate(blocks[static_cast<std::size_t>(i)]);
  for (int i = 0; i < kInts; ++i) a.make<int>("n" + std::to_string(i), i);
  a.destroy(*a.find<int>("n3"));
  return a;
}

inline std::vector<std::uint8_t> image_of(const multiproc::Arena& a) {
  const auto* p = static_cast<const std::uint8_t*>(a.base());
  return {p, p + a.mapped_size()};
}

}  // namespace arena_fuzz
