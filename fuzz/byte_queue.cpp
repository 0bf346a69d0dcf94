// libFuzzer target: a ByteQueue whose shared image — cursors, close flag and every byte of
// every slot (state words, lengths, check fields, payloads) — is overwritten with fuzzer bytes,
// as a scribbling process could. try_get / try_put / the snapshots must work or throw
// Error(bad_message) (Closed for a put on a closed queue): never read or write outside the
// slots (ASan: the slot array is its own exact-size heap block), never return a message longer
// than max_message, never hang (try_ calls are bounded scans).
//
// Input: [0] capacity - 1 (mod 8)  [1] max_message (0..255)  [2] flags: bit 0 closed, bit 1 put
//        first  [3, 11) tail cursor  [11, 19) head cursor  [19, ...) the slot array's bytes,
//        from its first byte (slots not covered keep their freshly constructed state).
// The geometry (offset, stride, capacity) is not overwritten: it is written once at construction
// and covered by a check word; tests/queue checks that a scribbled header is refused.
#include <multiproc/byte_queue.hpp>
#include <multiproc/error.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

namespace mp = multiproc;

namespace {

void expect_allowed(const mp::Error& e) {
  if (e.code() != mp::errc::bad_message && e.code() != mp::errc::closed) __builtin_trap();
}

void try_get(mp::ByteQueue& q) {
  try {
    if (auto m = q.try_get(); m && m->size() > q.max_message()) __builtin_trap();
  } catch (const mp::Error& e) {
    expect_allowed(e);
  }
}

void try_put(mp::ByteQueue& q, std::size_t n) {
  try {
    (void)q.try_put(std::vector<std::byte>(n, std::byte{0x5A}));
  } catch (const mp::Error& e) {
    expect_allowed(e);
  }
}

std::uint64_t read_u64(const std::uint8_t* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 19) return 0;
  const std::size_t capacity = 1 + data[0] % 8;
  const std::size_t max_message = data[1];
  const bool closed = data[2] & 1, put_first = data[2] & 2;
  const std::size_t slot_bytes = mp::ByteQueue::storage_bytes(capacity, max_message);

  void* object = std::aligned_alloc(64, sizeof(mp::ByteQueue));
  auto* slots = static_cast<std::byte*>(std::aligned_alloc(64, slot_bytes));  // a multiple of 64
  auto* q = new (object) mp::ByteQueue(std::span<std::byte>(slots, slot_bytes), capacity, max_message);

  std::memcpy(slots, data + 19, std::min(size - 19, slot_bytes));
  q->ring().test_set_cursors(read_u64(data + 3), read_u64(data + 11), closed);

  if (put_first) try_put(*q, max_message);
  for (std::size_t i = 0; i < capacity + 2; ++i) try_get(*q);
  try_put(*q, 0);
  try_put(*q, max_message);
  for (std::size_t i = 0; i < 3; ++i) try_get(*q);
  volatile std::size_t sink = q->size() + q->empty() + q->full() + q->closed();
  (void)sink;

  q->~ByteQueue();
  std::free(slots);
  std::free(object);
  return 0;
}
