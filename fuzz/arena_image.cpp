// libFuzzer target: arbitrary bytes (or a patched valid arena, see arena_image.hpp) become a
// sealed memfd; Arena::from_fd must refuse it or map it, and then find / allocate / deallocate /
// check / stats must work or throw multiproc::Error — never crash, hang, or hand out memory
// outside the mapping. Any other exception escapes and counts as a finding.
#include "arena_image.hpp"

#include "../alloc/src/arena_layout.hpp"

#include <multiproc/arena.hpp>
#include <multiproc/error.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

namespace mp = multiproc;
using namespace arena_fuzz;

namespace {

/// ARENA_FUZZ_VERBOSE=1: print every refusal, to see which paths a corpus reaches.
void note(const mp::Error& e) {
  static const bool verbose = std::getenv("ARENA_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "  %s\n", e.what());
}

void in_mapping_or_die(const mp::Arena& a, const void* p, std::size_t n) {
  const auto* b = static_cast<const char*>(a.base());
  const auto* c = static_cast<const char*>(p);
  if (c < b || c > b + a.mapped_size() || static_cast<std::size_t>(b + a.mapped_size() - c) < n) __builtin_trap();
}

void exercise(mp::Arena& a) {
  std::vector<std::string> names(std::begin(kNames), std::end(kNames));
  for (int i = 0; i <= kInts; ++i) names.push_back("n" + std::to_string(i));
  names.push_back("missing");
  for (const auto& n : names) {
    try {
      if (FuzzObject* o = a.find<FuzzObject>(n)) {
        in_mapping_or_die(a, o, sizeof *o);
        volatile std::uint64_t sink = o->a + o->b;
        (void)sink;
      }
    } catch (const mp::Error& e) {
      note(e);
    }
    try {
      if (int* i = a.find<int>(n)) in_mapping_or_die(a, i, sizeof *i);
    } catch (const mp::Error& e) {
      note(e);
    }
  }
  std::vector<void*> got;
  for (std::size_t n : {1, 48, 300, 4000, 20000}) {
    for (std::size_t align : {16, 64, 4096}) {
      try {
        void* p = a.allocate(n, align);
        in_mapping_or_die(a, p, n);
        if (reinterpret_cast<std::uintptr_t>(p) % align != 0) __builtin_trap();
        std::memset(p, 0xee, n);
        got.push_back(p);
      } catch (const mp::Error& e) {
        note(e);
      }
    }
  }
  for (std::size_t i = 0; i < got.size(); i += 2) a.deallocate(got[i]);
  try {
    a.check();
  } catch (const mp::Error& e) {
    note(e);
  }
  try {
    (void)a.stats();
  } catch (const mp::Error& e) {
    note(e);
  }
  (void)a.used();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // A garbage lock word may name a live thread: bound every wait so that is an Error, not a hang.
  static const bool limited = (mp::detail::set_arena_wait_limit(std::chrono::milliseconds(2)), true);
  static const std::vector<std::uint8_t> tmpl = image_of(make_template());
  (void)limited;
  if (size == 0) return 0;
  const std::uint8_t flags = data[0];
  std::vector<std::uint8_t> image;
  if (flags & kPatchMode) {
    image = tmpl;
    for (std::size_t i = 1; i + 5 <= size;) {
      std::uint32_t off;
      std::memcpy(&off, data + i, 4);
      std::size_t len = data[i + 4];
      i += 5;
      len = std::min(len, size - i);
      off %= static_cast<std::uint32_t>(image.size());
      len = std::min<std::size_t>(len, image.size() - off);
      std::memcpy(image.data() + off, data + i, len);
      i += len;
    }
    if (flags & kFixChecksum) {
      auto& h = *reinterpret_cast<mp::detail::layout::Header*>(image.data());
      h.checksum = mp::detail::layout::header_checksum(h);
    }
  } else {
    if (size - 1 > (std::size_t{4} << 20)) return 0;
    image.assign(data + 1, data + size);
  }
  const int fd = ::memfd_create("fuzz-arena", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return 0;
  if (::ftruncate(fd, static_cast<off_t>(image.size())) == 0 &&
      (image.empty() || ::pwrite(fd, image.data(), image.size(), 0) == static_cast<ssize_t>(image.size())) &&
      ::fcntl(fd, F_ADD_SEALS, (flags & kSealLoosely) ? F_SEAL_SHRINK : F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) == 0) {
    try {
      mp::Arena a = mp::Arena::from_fd(fd);
      exercise(a);
    } catch (const mp::Error& e) {
      note(e);
    }
  }
  ::close(fd);
  return 0;
}
