// Writes the arena_image fuzzer's seed corpus (see fuzz/arena_image.hpp for the input format):
//   build-x/tests/arena/arena-make-corpus fuzz/corpus/arena_image
// Valid images of small arenas with named objects, garbage, and patches of the fuzzer's template
// that steer into each recovery and validation path (a dead constructor's entry, a dead
// allocator holder's undo log, a bad log, a scribbled free list, a bad directory page, a lock
// held by a live stranger, damaged header fields).
#include "../../fuzz/arena_image.hpp"
#include "arena_layout.hpp"

#include <multiproc/arena.hpp>
#include <multiproc/robust_mutex.hpp>

#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace mp = multiproc;
namespace L = multiproc::detail::layout;
using namespace arena_fuzz;

namespace {

std::string dir;

void write(const std::string& name, const std::vector<std::uint8_t>& bytes) {
  const std::string path = dir + "/" + name;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) {
    std::perror(path.c_str());
    std::exit(1);
  }
  std::fclose(f);
  std::printf("%s (%zu bytes)\n", path.c_str(), bytes.size());
}

std::vector<std::uint8_t> raw(std::uint8_t flags, const std::vector<std::uint8_t>& image) {
  std::vector<std::uint8_t> v{flags};
  v.insert(v.end(), image.begin(), image.end());
  return v;
}

struct Patches {
  std::vector<std::uint8_t> bytes{static_cast<std::uint8_t>(kPatchMode | kFixChecksum)};
  template <class T>
  Patches& at(std::uint64_t off, const T& value) {
    const auto o = static_cast<std::uint32_t>(off);
    bytes.insert(bytes.end(), reinterpret_cast<const std::uint8_t*>(&o), reinterpret_cast<const std::uint8_t*>(&o) + 4);
    bytes.push_back(static_cast<std::uint8_t>(sizeof(T)));
    bytes.insert(bytes.end(), reinterpret_cast<const std::uint8_t*>(&value),
                 reinterpret_cast<const std::uint8_t*>(&value) + sizeof(T));
    return *this;
  }
};

/// Offset of the directory entry named `name` in the template.
std::uint64_t entry_of(const mp::Arena& a, std::string_view name) {
  const auto* base = static_cast<const std::byte*>(a.base());
  const auto& l = *reinterpret_cast<const L::Layout*>(base);
  for (std::uint64_t c = l.dir.first_chunk; c != 0; c = reinterpret_cast<const L::DirChunk*>(base + c)->next) {
    const auto& k = *reinterpret_cast<const L::DirChunk*>(base + c);
    for (std::uint64_t i = 0; i < k.capacity; ++i) {
      const std::uint64_t e = L::entry_offset(c, k.capacity, i);
      const auto& d = *reinterpret_cast<const L::DirEntry*>(base + e);
      if (d.state.load() != L::kEntryFree && std::string_view(d.name, d.name_len) == name) return e;
    }
  }
  std::fprintf(stderr, "no entry %.*s\n", static_cast<int>(name.size()), name.data());
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  dir = argv[1];
  const mp::Arena t = make_template();
  const auto tmpl = image_of(t);

  // Valid images.
  write("valid-template", raw(0, tmpl));
  {
    auto a = mp::Arena::create(4096, "fuzz-empty");
    write("valid-empty", raw(0, image_of(a)));
    a.make<FuzzObject>("obj0", 1, 2);
    a.make<int>("n0", 0);
    write("valid-two-names", raw(0, image_of(a)));
  }
  write("loosely-sealed-template", raw(kSealLoosely, tmpl));
  // Garbage and near misses.
  {
    std::mt19937_64 rng(1);
    std::vector<std::uint8_t> g(L::kHeaderBytes + 4096);
    for (auto& b : g) b = static_cast<std::uint8_t>(rng());
    write("garbage-12k", raw(0, g));
    write("garbage-short", raw(0, std::vector<std::uint8_t>(g.begin(), g.begin() + 100)));
    auto trunc = tmpl;
    trunc.resize(L::kHeaderBytes);
    write("truncated-template", raw(0, trunc));
  }

  const std::uint64_t alloc = offsetof(L::Layout, alloc), dirs = offsetof(L::Layout, dir);
  const std::uint64_t owner_died = mp::RobustMutex::kOwnerDied;
  const std::uint64_t obj1 = entry_of(t, "obj1"), n5 = entry_of(t, "n5");
  const auto& tl = *reinterpret_cast<const L::Layout*>(t.base());
  // A constructor that died: busy entry, its mutex owner-dead -> find reclaims the name.
  write("patch-dead-constructor",
        Patches().at(obj1 + offsetof(L::DirEntry, state), std::uint32_t{L::kEntryConstructing})
            .at(obj1, std::uint32_t(owner_died)).bytes);
  write("patch-dead-destroyer", Patches().at(n5 + offsetof(L::DirEntry, state), std::uint32_t{L::kEntryDestroying})
                                    .at(n5, std::uint32_t(owner_died)).bytes);
  // A busy entry nobody holds: corrupt.
  write("patch-busy-unheld", Patches().at(obj1 + offsetof(L::DirEntry, state), std::uint32_t{L::kEntryConstructing}).bytes);
  // A dead allocator holder with a one-entry log: replayed.
  write("patch-dead-allocator",
        Patches().at(alloc, std::uint32_t(owner_died))
            .at(alloc + offsetof(L::AllocState, log_count), std::uint64_t{1})
            .at(alloc + offsetof(L::AllocState, log), L::UndoEntry{alloc + offsetof(L::AllocState, used), tl.alloc.used})
            .at(alloc + offsetof(L::AllocState, used), std::uint64_t{999}).bytes);
  // ...with a log naming a word the allocator never writes: not recoverable.
  write("patch-bad-log", Patches().at(alloc, std::uint32_t(owner_died))
                             .at(alloc + offsetof(L::AllocState, log_count), std::uint64_t{2})
                             .at(alloc + offsetof(L::AllocState, log), L::UndoEntry{8, 0}).bytes);
  // A free-list head outside the heap, and one inside an allocated block.
  {
    std::uint64_t head = 0;
    for (int fl = 0; fl < L::kFl && head == 0; ++fl)
      for (int sl = 0; sl < L::kSl; ++sl)
        if (tl.alloc.heads[fl][sl] != 0) {
          head = alloc + offsetof(L::AllocState, heads) + (static_cast<std::uint64_t>(fl) * L::kSl + sl) * 8;
          break;
        }
    write("patch-head-outside", Patches().at(head, std::uint64_t{1} << 40).bytes);
    write("patch-head-into-object", Patches().at(head, obj1 + 8).bytes);
  }
  // Directory damage: a page in the middle of nowhere, a broken page magic, a huge name.
  write("patch-first-page-bogus", Patches().at(dirs + offsetof(L::DirState, first_chunk), std::uint64_t{L::kHeaderBytes + 48}).bytes);
  write("patch-page-magic", Patches().at(tl.dir.first_chunk + offsetof(L::DirChunk, magic), std::uint64_t{0}).bytes);
  write("patch-name-length", Patches().at(obj1 + offsetof(L::DirEntry, name_len), std::uint32_t{200}).bytes);
  write("patch-chain-cycle", Patches().at(tl.dir.first_chunk, tl.dir.first_chunk).bytes);
  // Locks held by a live stranger (pid 1): the wait limit turns them into Error(timeout).
  write("patch-alloc-lock-held", Patches().at(alloc, std::uint32_t{1}).bytes);
  write("patch-dir-lock-held", Patches().at(dirs, std::uint32_t{1}).bytes);
  write("patch-not-recoverable", Patches().at(alloc, std::uint32_t(mp::RobustMutex::kNotRecoverable)).bytes);
  // Header fields (checksum recomputed, so the field check itself is reached).
  write("patch-version", Patches().at(offsetof(L::Header, version), std::uint32_t{2}).bytes);
  write("patch-heap-end", Patches().at(offsetof(L::Header, heap_end), std::uint64_t{L::kHeaderBytes + 4096}).bytes);
  {
    Patches p;
    p.bytes[0] = kPatchMode;  // checksum left stale
    write("patch-stale-checksum", p.at(offsetof(L::Header, total_bytes), std::uint64_t{1} << 30).bytes);
  }
  return 0;
}
