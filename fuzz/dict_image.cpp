// libFuzzer target: a valid, populated Dict (or List) image is patched with the input's bytes —
// header fields, slot metas, overflow counts, keys, values, redo logs, size and recount flags —
// and then every call is made on it. Each call must work or throw Error(bad_arena) (or
// out_of_memory / an index error, when a corrupted size says so); never crash, hang, or touch memory outside
// the image. The image is copied into a heap buffer of exactly its size, so AddressSanitizer
// (the -Dfuzz=enabled build) reports any access outside it; the plain replay build (suite
// fuzz-smoke) catches crashes and hangs.
//
// Not patched: the bytes of the robust mutexes (each stripe's first 48 bytes and the Dict's
// recount lock). A lock word naming a live thread is a held lock, indistinguishable from
// corruption by anyone; waiting for it is correct behaviour, and the robust-mutex core has its
// own tests.
//
// Input: byte 0 picks the image (even: Dict, odd: List); then records
//   {u16 offset (little endian, modulo the image size), u8 n, n & 15 + 1 data bytes}
// each overwriting image bytes (a record touching mutex bytes skips those bytes).
#include <multiproc/dict.hpp>
#include <multiproc/error.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <vector>

namespace mp = multiproc;

namespace {

using Key = mp::FixedString<12>;
using FuzzDict = mp::Dict<Key, std::uint64_t>;
using FuzzList = mp::List<std::uint64_t>;
constexpr std::size_t kDictCapacity = 40;  // 4 chunks
constexpr std::size_t kListCapacity = 16;
constexpr std::size_t kHead = 256;  // the object at 0, its storage at kHead

Key key_of(int i) {
  char buf[12];
  std::snprintf(buf, sizeof buf, "key%d", i);
  return Key(buf);
}

struct Image {
  std::vector<unsigned char> bytes;
  std::vector<bool> locked;  // mutex bytes: not patched
};

template <class T>
void* build(std::vector<unsigned char>& raw, std::size_t capacity) {
  const std::size_t storage = T::storage_bytes(capacity);
  void* mem = std::aligned_alloc(64, (kHead + storage + 63) & ~std::size_t{63});
  std::memset(mem, 0, kHead + storage);
  ::new (mem) T(static_cast<char*>(mem) + kHead, storage, capacity);
  raw.resize(kHead + storage);
  return mem;
}

const Image& dict_image() {
  static const Image image = [] {
    Image im;
    void* mem = build<FuzzDict>(im.bytes, kDictCapacity);
    auto& d = *static_cast<FuzzDict*>(mem);
    for (int i = 0; i < 30; ++i) d.insert(key_of(i), static_cast<std::uint64_t>(i) * 1000);
    for (int i = 0; i < 30; i += 4) d.erase(key_of(i));
    for (int i = 1; i < 30; i += 3) d.update(key_of(i), [](std::uint64_t& v) { v += 7; });
    std::memcpy(im.bytes.data(), mem, im.bytes.size());
    im.locked.assign(im.bytes.size(), false);
    // The recount lock in the Dict object, and each stripe's mutex in the table.
    for (std::size_t i = 128; i < 128 + sizeof(mp::RobustMutex); ++i) im.locked[i] = true;
    const std::size_t chunks = (kDictCapacity * 4 + 44) / 45;
    const std::size_t stripes = kHead + chunks * sizeof(mp::detail::DictChunk);
    for (std::size_t c = 0; c < chunks; ++c)
      for (std::size_t i = 0; i < sizeof(mp::RobustMutex); ++i) im.locked[stripes + c * 64 + i] = true;
    std::free(mem);
    return im;
  }();
  return image;
}

const Image& list_image() {
  static const Image image = [] {
    Image im;
    void* mem = build<FuzzList>(im.bytes, kListCapacity);
    auto& l = *static_cast<FuzzList*>(mem);
    for (std::uint64_t i = 0; i < 10; ++i) l.push_back(i * 3);
    l.set(2, 99);
    std::memcpy(im.bytes.data(), mem, im.bytes.size());
    im.locked.assign(im.bytes.size(), false);
    for (std::size_t i = 80; i < 80 + sizeof(mp::RobustMutex); ++i) im.locked[i] = true;  // the List's lock
    std::free(mem);
    return im;
  }();
  return image;
}

void expected(const mp::Error& e) {
  static const bool verbose = std::getenv("DICT_FUZZ_VERBOSE") != nullptr;  // which paths a corpus reaches
  if (verbose) std::fprintf(stderr, "  %s\n", e.what());
  // out_of_memory: a corrupted size says "full"; result_out_of_range: a List index past a
  // corrupted (smaller) size. Anything else is a finding.
  if (e.code() != mp::errc::bad_arena && e.code() != mp::errc::out_of_memory &&
      e.code() != std::make_error_code(std::errc::result_out_of_range)) {
    std::fprintf(stderr, "unexpected error: %s\n", e.what());
    std::abort();
  }
}

template <class F>
void call(F&& f) {
  try {
    f();
  } catch (const mp::Error& e) {
    expected(e);
  }
}

void exercise_dict(FuzzDict& d) {
  for (int i = 0; i < 34; ++i) call([&] { (void)d.get(key_of(i)); });
  call([&] {
    std::size_t n = 0;
    d.for_each([&](const Key& k, const std::uint64_t&) {
      if (k.size() > 12) std::abort();
      ++n;
    });
    if (n > 4 * 15) std::abort();  // more entries than slots
  });
  (void)d.size();
  call([&] { (void)d.insert(key_of(50), 1); });
  call([&] { d.insert_or_assign(key_of(3), 2); });
  call([&] { d.insert_or_assign(key_of(51), 2); });
  call([&] { (void)d.update(key_of(5), [](std::uint64_t& v) { ++v; }); });
  call([&] { (void)d.erase(key_of(7)); });
  call([&] { (void)d.erase(key_of(50)); });
  for (int i = 60; i < 75; ++i) call([&] { (void)d.insert(key_of(i), 3); });  // up to full
  if (d.size() > d.capacity()) std::abort();
  call([&] { (void)d.get(key_of(61)); });
}

void exercise_list(FuzzList& l) {
  call([&] { (void)l[0]; });
  call([&] { (void)l[9]; });
  call([&] { l.set(1, 5); });
  call([&] { l.push_back(7); });
  call([&] { (void)l.pop_back(); });
  call([&] {
    if (l.snapshot().size() > l.capacity()) std::abort();
  });
  if (l.size() > l.capacity()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const bool list = size > 0 && (data[0] & 1);
  const Image& image = list ? list_image() : dict_image();
  const std::size_t n = image.bytes.size();
  // Exactly n bytes of heap (64-aligned): AddressSanitizer sees any access outside.
  auto* buf = static_cast<unsigned char*>(::operator new(n, std::align_val_t{64}));
  std::memcpy(buf, image.bytes.data(), n);
  for (std::size_t i = 1; i + 3 <= size;) {
    std::size_t off = (data[i] | std::size_t{data[i + 1]} << 8) % n;
    std::size_t len = (data[i + 2] & 15) + 1;
    i += 3;
    for (; len > 0 && i < size; --len, ++i, off = (off + 1) % n)
      if (!image.locked[off]) buf[off] = data[i];
  }
  if (list) {
    exercise_list(*std::launder(reinterpret_cast<FuzzList*>(buf)));
  } else {
    exercise_dict(*std::launder(reinterpret_cast<FuzzDict*>(buf)));
  }
  ::operator delete(buf, std::align_val_t{64});
  return 0;
}
