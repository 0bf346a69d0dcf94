// multiproc/dict.hpp — Dict<K, V>: a fixed-capacity hash map in shared memory that every
// process reads and writes directly (what Python's Manager().dict() is for, without the server
// process and the socket round trip per access). Also brings in FixedString and List.
//
// What it guarantees
//   * Capacity is exact: `capacity` entries always fit; inserting one more throws
//     Error(out_of_memory). Keys and values are trivially copyable and stored by value.
//     capacity < 2^32; the table is about 4/3 * capacity slots.
//   * get / for_each never take a lock and never write shared memory: they cannot slow writers
//     down, and a reader that dies leaves nothing behind.
//   * Every call is linearizable per key. update(k, fn) runs fn on k's value atomically with
//     respect to every other insert/update/erase of k (fn sees the latest value, nobody sees a
//     half-applied fn).
//   * A process killed at any instruction inside insert / insert_or_assign / update / erase
//     leaves the Dict usable by everyone else, with every entry either as it was before the call
//     or as the call leaves it — never torn, never lost, never duplicated. Readers never block
//     on a dead writer.
//   * A corrupted shared image is detected before it is trusted: Error(bad_arena), never a read
//     or write outside the Dict's own memory (fuzzed: fuzz/dict_image.cpp).
//
// The table. Open addressing over chunks of 15 slots (Folly F14's scheme). A key's hash picks a
// home chunk (Lemire's multiply-shift, so any chunk count works) and an 8-bit tag. Per chunk,
// one 64-byte line holds 16 32-bit lanes in 8 atomic 64-bit words: the 15 slot metas and an
// `overflow` count. Keys and values sit in a separate array (each rounded up to 8-byte words).
// A key lives in the first chunk from its home (cyclically) that had a free slot when it was
// inserted; `overflow[c]` counts the keys whose home is before chunk c and which live after it.
// A search loads a chunk's 8 words and compares all 15 tags at once (SSE2: four 4-lane
// compares), and stops at the first chunk whose overflow is 0: usually one meta line and one
// key line. Erasing frees the slot at once (no tombstones) and decrements the overflow counts
// it had incremented. Entries never move once written: this is what lets readers go without
// locks and lets for_each pass every entry exactly once. Chunks = ceil(capacity * 4 / 45), so
// the table is at most 3/4 full at capacity.
//
// Readers: a seqlock per slot, in the slot's meta lane:
//     bit 0 full | bits 1..23 version (odd: value being rewritten) | bits 24..31 tag.
//   A reader loads the meta (acquire), copies the key and value out of the slot with 8-byte
//   acquire loads through std::atomic_ref (so a copy racing a writer is not a data race in the
//   C++ model, only a stale or mixed copy), then reloads the meta (relaxed; the acquire loads
//   keep it after them). Equal metas mean the copy is a snapshot; otherwise it retries the slot.
//   A writer that rewrites a value stores the odd meta (relaxed), the words (release) and the
//   next even meta (release). If any word a reader copied was stored by the writer, the
//   reader's acquire load synchronizes with that release store, so the odd meta (sequenced
//   before it) is visible to the reader's reload: the copy is rejected. This is Boehm's
//   seqlock argument ("Can seqlocks get along with programming language memory models?",
//   MSPC 2012) with per-word acquire/release instead of standalone fences: plain moves on
//   x86-64, and modelled by ThreadSanitizer. Filling a free slot needs no odd phase: readers
//   copy only from full slots, and the store that freed the slot happened before the filler's
//   release stores (through the stripe lock), so a reader still holding the old full meta
//   fails its reload the same way. A value of one word is rewritten by a single release store
//   and no odd phase at all: a reader sees the old or the new word. The user's == runs only
//   on validated copies, never on torn bytes. A version is 23 bits: a reader would have to
//   stall across exactly 2^23 rewrites of one slot to be fooled (the usual seqlock caveat). A
//   reader that sees an odd meta for longer than a short spin checks the slot's stripe with
//   try_lock: if its holder is dead the reader repairs the stripe (below), otherwise it yields
//   and retries. get and for_each synchronize like locks do: a get that returns a value
//   written by insert/update happens after that write.
//
// Writers: striped robust locks. Chunk c is guarded by stripe c: a core RobustMutex (48 bytes,
//   in a 64-byte line of its own, away from the readers' lines) plus a one-entry redo log. A
//   writer locks the chunks from the key's home as far as its search goes — usually one — in
//   ascending index order; when the search wraps past the last chunk it try_locks, and if that
//   fails releases everything and re-acquires the whole span in ascending order (so no two
//   writers ever wait for each other in a cycle). Every slot and overflow count a writer reads
//   or writes lies in a chunk whose stripe it holds. Writers of one key always share its home
//   stripe, so they are serialized; writers of keys in other chunks run in parallel.
//   Why RobustMutex and not the public Lock: the Dict must repair a stripe whose holder died
//   inside its own code path, on any of several locks at once, including from a reader's
//   try_lock; RobustMutex reports owner_dead as a value, where Lock would throw OwnerDead out of
//   the middle of a span acquisition. (Lock is built on the same RobustMutex.)
//
// Crash recovery. Each write is arranged so that every prefix of it is harmless or replayable:
//   * insert: reserve one unit of size (CAS under capacity), increment the overflow counts on
//     the path, write key and value into the free slot, then publish with one meta store. Dying
//     before the store leaves the slot free; counts are then too high, which only lengthens
//     searches.
//   * erase: one meta store frees the slot; then the path's overflow counts are decremented.
//   * update / insert_or_assign of an existing key: a one-word value is one atomic store.
//     A longer one is first written to the stripe's redo log, the log marked active (release),
//     then the slot rewritten (odd/even), then the log cleared. The next locker of a stripe
//     whose holder died (owner_dead) — writer or reader — replays an active log with the same
//     seqlock protocol (idempotent), and so does a recoverer of a recoverer.
//   * A process killed at capacity may leave size one too high before anyone has locked its
//     stripe; an insert that finds the Dict full therefore try_locks every stripe (repairing
//     dead ones) before it throws out_of_memory, so capacity stays exact after deaths too.
//   Size and overflow counts may be left off by a death. So every owner_dead marks the Dict
//   "recount pending", and the size word also counts inserts/erases "in flight" (between their
//   size change and their slot change): a unit that stays in flight is a dead writer's, and
//   size() then try_locks every stripe to find it even if nobody has locked its stripe since.
//   The next insert/erase/size() after a death performs a recount: it sets a freeze
//   flag, locks and unlocks every stripe once (draining writes in flight; later writers see the
//   flag after taking their locks and wait), recomputes size and every overflow count from the
//   slots, stores them (each count goes from >= true to true, so readers stay correct
//   throughout) and clears the flag. The recount runs under its own robust lock; one that dies
//   is redone by the next. Recounts happen only after deaths.
//
// Validation. The Dict object's first 64 bytes hold its immutable geometry (chunk count,
// key/value sizes, table offset and size) and a check word chosen so that the eight words XOR
// to a constant; every call verifies that, the magic and the key/value sizes (about twenty
// instructions) before computing any address, so a corrupted header is Error(bad_arena).
// Everything derived from mutable shared state is bounded: chunk indexes are reduced modulo
// the chunk count, log slot numbers are range-checked, searches stop after one full cycle,
// overflow counts are never trusted to be exact, a size above capacity triggers a recount and
// a recount that finds more entries than capacity is bad_arena. The check catches stray writes
// and torn images; it is not a defence against a malicious process, which can write anything
// anywhere in a mapping it shares.
//
// Layout. The Dict object (192 bytes, standard layout, no pointers) lives in the Arena (or any
// MAP_SHARED mapping) and stores the table's position as an offset from itself. The table is
// one allocation of the same mapping: [chunk meta lines][stripe lines][redo logs][slots], the
// slots in one block of whole cache lines per chunk (an entry of 8, 16, 32 or 64 bytes never
// straddles two lines: a get reads one meta line and one slot line, an update writes one slot
// line). Bytes per chunk: 128 + round8(sizeof V) + round64(15 * (round8(sizeof K) +
// round8(sizeof V))), plus < 64 bytes of padding after the logs.
//
// Hashing: Hash(k) (default: std::hash<K> where it exists, else the key's bytes, which then
// must have unique object representations), mixed by detail::mix64. Every process must compute
// the same hash for the same key — std::hash of the same library build does; FixedString's hash
// depends only on its bytes. Equality: KeyEqual (default operator== where it exists, else the
// bytes). fn in update and the hash/equality functors run with the key's stripe locked: they
// must not call back into the same Dict.
#pragma once

#include <multiproc/arena.hpp>
#include <multiproc/error.hpp>
#include <multiproc/fixed_string.hpp>
#include <multiproc/list.hpp>
#include <multiproc/robust_mutex.hpp>

#include <atomic>
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <type_traits>
#include <utility>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace multiproc {

namespace detail {

/// std::hash<K> is usable (enabled and callable).
template <class K>
concept StdHashable = requires(const K& k) {
  { std::hash<K>{}(k) } -> std::convertible_to<std::size_t>;
};

}  // namespace detail

/// Dict's default hash: std::hash<K> where it exists, else the key's object bytes.
template <class K>
struct DictHash {
  std::uint64_t operator()(const K& key) const {
    if constexpr (detail::StdHashable<K>) {
      return static_cast<std::uint64_t>(std::hash<K>{}(key));
    } else {
      static_assert(std::has_unique_object_representations_v<K>,
                    "Dict<K, V>: K has no std::hash and has padding bits, so hashing its bytes would not be "
                    "stable: give the Dict a Hash (Dict<K, V, MyHash>) or specialise std::hash<K>");
      return detail::hash_bytes(&key, sizeof(K));
    }
  }
};

/// Dict's default key equality: operator== where it exists, else the object bytes.
template <class K>
struct DictEqual {
  bool operator()(const K& a, const K& b) const {
    if constexpr (std::equality_comparable<K>) {
      return a == b;
    } else {
      return std::memcmp(&a, &b, sizeof(K)) == 0;
    }
  }
};

namespace detail {

inline constexpr std::uint32_t kDictChunkSlots = 15;

/// The slot meta word: bit 0 full, bits 1..23 version (odd while a value is rewritten),
/// bits 24..31 the key's tag.
struct DictMeta {
  static constexpr std::uint32_t kFull = 1;
  static constexpr std::uint32_t kVersionUnit = 2;
  static constexpr std::uint32_t kVersionMask = 0x00fffffeu;
  static constexpr std::uint32_t kWriting = kVersionUnit;  // the version's lowest bit
  static constexpr int kTagShift = 24;

  static constexpr std::uint32_t kTagAndFull = 0xff000000u | kFull;  // what a search compares
  static constexpr bool full(std::uint32_t m) noexcept { return (m & kFull) != 0; }
  static constexpr bool writing(std::uint32_t m) noexcept { return (m & kWriting) != 0; }
  static constexpr std::uint32_t tag(std::uint32_t m) noexcept { return m >> kTagShift; }
  /// m with its version advanced by n (wrapping inside the version bits).
  static constexpr std::uint32_t advance(std::uint32_t m, std::uint32_t n) noexcept {
    return (m & ~kVersionMask) | ((m + n * kVersionUnit) & kVersionMask);
  }
  /// A full meta for `tag`, version after m's (kept even).
  static constexpr std::uint32_t filled(std::uint32_t m, std::uint32_t tag) noexcept {
    return (advance(m, 2) & kVersionMask) | (tag << kTagShift) | kFull;
  }
  /// A free meta, version after m's (kept even).
  static constexpr std::uint32_t freed(std::uint32_t m) noexcept { return advance(m, 2) & kVersionMask; }
};

/// What readers touch: one cache line per chunk holding 16 32-bit lanes, two per 64-bit word
/// (lane 2j in the low half of word j): lanes 0..14 are the slots' meta words, lane 15 the
/// chunk's overflow count. Only the chunk's stripe holder writes a lane, so replacing one
/// half of a word is a plain load and store of the word (no other writer can interleave).
/// Readers load whole words — a chunk is 8 atomic loads — and compare the tags of all 15
/// slots at once (SSE2 where available).
struct alignas(64) DictChunk {
  static constexpr std::uint32_t kOverflowLane = 15;
  std::atomic<std::uint64_t> word[8];

  static constexpr std::uint32_t lane(std::uint64_t w, std::uint32_t i) noexcept {
    return static_cast<std::uint32_t>(w >> ((i & 1) * 32));
  }
  std::uint32_t meta(std::uint32_t i, std::memory_order order) const noexcept { return lane(word[i >> 1].load(order), i); }
  std::uint32_t overflow(std::memory_order order) const noexcept { return lane(word[7].load(order), kOverflowLane); }
  /// Stripe holder only: stores `value` into lane i (a meta, or the overflow count at 15).
  void set(std::uint32_t i, std::uint32_t value, std::memory_order order) noexcept {
    std::atomic<std::uint64_t>& w = word[i >> 1];
    const unsigned shift = (i & 1) * 32;
    // relaxed: the stripe holder is this word's only writer; it reads its own last store.
    const std::uint64_t old = w.load(std::memory_order_relaxed);
    w.store((old & ~(std::uint64_t{0xffffffffu} << shift)) | (std::uint64_t{value} << shift), order);
  }
  /// One pass over the chunk: 8 atomic loads (`order`), then the lanes compared at once.
  struct Scan {
    std::uint32_t hits;      // bit i: slot i is full with the wanted tag
    std::uint32_t free;      // bit i: slot i is free
    std::uint32_t overflow;  // the overflow count
  };
  Scan scan(std::uint32_t want, std::memory_order order) const noexcept {
    Scan r{0, 0, 0};
#if defined(__SSE2__)
    const __m128i sel = _mm_set1_epi32(static_cast<int>(DictMeta::kTagAndFull));
    const __m128i wanted = _mm_set1_epi32(static_cast<int>(want));
    const __m128i full = _mm_set1_epi32(static_cast<int>(DictMeta::kFull));
    std::uint64_t hi = 0;
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      const std::uint64_t lo = word[2 * q].load(order);
      hi = word[2 * q + 1].load(order);
      const __m128i v = _mm_set_epi64x(static_cast<long long>(hi), static_cast<long long>(lo));
      const __m128i eq = _mm_cmpeq_epi32(_mm_and_si128(v, sel), wanted);
      const __m128i empty = _mm_cmpeq_epi32(_mm_and_si128(v, full), _mm_setzero_si128());
      r.hits |= static_cast<std::uint32_t>(_mm_movemask_ps(_mm_castsi128_ps(eq))) << (4 * q);
      r.free |= static_cast<std::uint32_t>(_mm_movemask_ps(_mm_castsi128_ps(empty))) << (4 * q);
    }
    r.overflow = lane(hi, kOverflowLane);
#else
    for (std::uint32_t j = 0; j < 8; ++j) {
      const std::uint64_t w = word[j].load(order);
      for (std::uint32_t i = 2 * j; i < 2 * j + 2; ++i) {
        r.hits |= static_cast<std::uint32_t>((lane(w, i) & DictMeta::kTagAndFull) == want) << i;
        r.free |= static_cast<std::uint32_t>((lane(w, i) & DictMeta::kFull) == 0) << i;
      }
      if (j == 7) r.overflow = lane(w, kOverflowLane);
    }
#endif
    r.hits &= 0x7fffu;  // lane 15 is the count, not a slot
    r.free &= 0x7fffu;
    return r;
  }
};
static_assert(sizeof(DictChunk) == 64, "a chunk's metadata is exactly one cache line");

/// What writers touch: the stripe lock and its one-entry redo log (value words live elsewhere).
struct alignas(64) DictStripe {
  RobustMutex mutex;
  std::atomic<std::uint32_t> log_active;  // 1: the log's value must be (re)written into log_slot
  std::atomic<std::uint32_t> log_slot;    // slot within the chunk, 0..14
  std::uint64_t reserved;
};
static_assert(sizeof(DictStripe) == 64, "a stripe is one cache line, apart from the readers' lines");

/// Word-wise copies between a slot (shared) and private memory, as 8-byte atomic accesses: a
/// copy racing a writer is then not a data race, just a stale or mixed copy that the seqlock
/// rejects. Loads are acquire and stores release (plain moves on x86-64): a reader whose load
/// sees a word that a writer stored synchronizes with that store, so everything the writer did
/// before it — the odd meta, or the meta change that freed the slot — is visible to the
/// reader's meta reload that follows, and the copy is rejected. (The same argument as
/// Boehm's fence-based seqlock, without standalone fences, which ThreadSanitizer cannot model.)
inline void load_words(const std::uint64_t* src, std::uint64_t* dst, std::uint32_t n) noexcept {
  for (std::uint32_t i = 0; i < n; ++i)
    dst[i] = std::atomic_ref<std::uint64_t>(const_cast<std::uint64_t&>(src[i])).load(std::memory_order_acquire);
}
inline void store_words(std::uint64_t* dst, const std::uint64_t* src, std::uint32_t n) noexcept {
  for (std::uint32_t i = 0; i < n; ++i) std::atomic_ref<std::uint64_t>(dst[i]).store(src[i], std::memory_order_release);
}

constexpr std::uint32_t words_for(std::size_t bytes) noexcept { return static_cast<std::uint32_t>((bytes + 7) / 8); }
constexpr std::size_t round64(std::size_t bytes) noexcept { return (bytes + 63) & ~std::size_t{63}; }
/// Words of one chunk's 15 slots, rounded up to whole cache lines: every chunk's slots start
/// on a line, so an entry of 8, 16, 32 or 64 bytes never straddles two lines.
constexpr std::size_t slot_block_words(std::uint32_t key_words, std::uint32_t value_words) noexcept {
  return (std::size_t{kDictChunkSlots} * (key_words + value_words) + 7) & ~std::size_t{7};
}

/// A hint that this core is about to write the line holding p: asks for it in exclusive state
/// now. No effect on the program's meaning. x86-64: PREFETCHW (which cores without it execute
/// as a NOP); elsewhere the compiler's write prefetch.
inline void prefetch_for_write(const void* p) noexcept {
#if defined(__x86_64__)
  asm volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p, 1, 3);
#endif
}

/// The untyped part of Dict: geometry, validation, stripe locking, repair and recount. One Dict
/// object is exactly a DictCore (Dict adds no members).
class DictCore {
 public:
  DictCore(const DictCore&) = delete;
  DictCore& operator=(const DictCore&) = delete;

  std::size_t capacity() const noexcept { return capacity_; }

  /// How many times a stripe was repaired after its holder died (all processes, ever).
  std::uint64_t repairs() const noexcept { return repairs_.load(std::memory_order_relaxed); }

  /// Bytes of table storage a Dict of `capacity` with these key/value sizes needs.
  static std::size_t table_bytes_for(std::size_t key_size, std::size_t value_size, std::size_t capacity);

  /// Geometry of this process's view of the table, computed from validated header fields.
  struct View {
    DictChunk* chunks;
    DictStripe* stripes;
    std::uint64_t* logs;    // chunks * value_words
    std::uint64_t* slots;   // chunks * slot_block_words(key_words, value_words), 64-byte aligned
    std::uint32_t n_chunks;
    std::uint32_t key_words;
    std::uint32_t value_words;

    std::uint64_t* key_at(std::uint32_t chunk, std::uint32_t slot) const noexcept {
      return slots + static_cast<std::size_t>(chunk) * slot_block_words(key_words, value_words) +
             static_cast<std::size_t>(slot) * (key_words + value_words);
    }
    std::uint64_t* value_at(std::uint32_t chunk, std::uint32_t slot) const noexcept {
      return key_at(chunk, slot) + key_words;
    }
    std::uint64_t* log_at(std::uint32_t chunk) const noexcept {
      return logs + static_cast<std::size_t>(chunk) * value_words;
    }
    std::uint32_t next(std::uint32_t c) const noexcept { return c + 1 == n_chunks ? 0 : c + 1; }
    /// Home chunk of a mixed hash: multiply-shift over the high bits (the tag uses the low 8).
    std::uint32_t home(std::uint64_t h) const noexcept {
      return static_cast<std::uint32_t>((static_cast<unsigned __int128>(h) * n_chunks) >> 64);
    }
  };

 protected:
  /// Geometry for `capacity` entries; the table is attached by attach(). Throws
  /// Error(out_of_memory) for a capacity whose table could not be addressed.
  DictCore(std::size_t key_size, std::size_t value_size, std::size_t capacity);
  ~DictCore() = default;

  /// Initialises `table` (table_bytes() bytes, 64-byte aligned, same mapping as *this) and
  /// records it. Not thread-safe: before the Dict is shared.
  void attach(void* table, std::size_t bytes);
  std::size_t table_bytes() const noexcept { return static_cast<std::size_t>(table_bytes_); }
  void* table_address() const noexcept;

  /// Validates the header (magic, check word, key and value sizes) and computes the view.
  /// Throws Error(bad_arena). About twenty instructions: eight loads of the immutable first 64
  /// bytes, their XOR against kSeal (check_ is chosen so), and three compares.
  View view(std::size_t key_size, std::size_t value_size) const {
    const std::uint32_t sizes[2] = {static_cast<std::uint32_t>(key_size), static_cast<std::uint32_t>(value_size)};
    const std::uint32_t words[2] = {words_for(key_size), words_for(value_size)};
    std::uint64_t want_sizes, want_words;
    std::memcpy(&want_sizes, sizes, 8);
    std::memcpy(&want_words, words, 8);
    const std::uint64_t h0 = header_word(0), h1 = header_word(1), h2 = header_word(2), h3 = header_word(3);
    const std::uint64_t fold = h0 ^ h1 ^ h2 ^ h3 ^ header_word(4) ^ header_word(5) ^ header_word(6) ^ header_word(7);
    if ((fold != kSeal) | (h0 != kMagic) | (h1 != want_sizes) | (h2 != want_words) | (static_cast<std::uint32_t>(h3) == 0))
        [[unlikely]]
      bad_header(key_size, value_size);
    auto* base = reinterpret_cast<std::byte*>(const_cast<DictCore*>(this)) + table_offset_;
    const std::size_t c = n_chunks_;
    View v;
    v.chunks = reinterpret_cast<DictChunk*>(base);
    v.stripes = reinterpret_cast<DictStripe*>(base + c * sizeof(DictChunk));
    v.logs = reinterpret_cast<std::uint64_t*>(base + c * (sizeof(DictChunk) + sizeof(DictStripe)));
    v.slots = reinterpret_cast<std::uint64_t*>(base + c * (sizeof(DictChunk) + sizeof(DictStripe)) +
                                               round64(c * value_words_ * 8));
    v.n_chunks = n_chunks_;
    v.key_words = key_words_;
    v.value_words = value_words_;
    return v;
  }

  // ---- stripes ----------------------------------------------------------------------------

  /// Locks stripe c for writing (blocking); repairs it first if its holder died.
  void lock_stripe(const View& v, std::uint32_t c) const {
    DictStripe& s = v.stripes[c];
    const LockResult r = s.mutex.lock();
    // relaxed: the log is written by stripe holders only; our lock acquire ordered us after them.
    if (r != LockResult::acquired || s.log_active.load(std::memory_order_relaxed) != 0) [[unlikely]]
      after_lock_slow(v, c, r);
  }
  /// try_lock of stripe c; true when held (repaired if needed).
  bool try_lock_stripe(const View& v, std::uint32_t c) const;
  static void unlock_stripe(const View& v, std::uint32_t c) noexcept { v.stripes[c].mutex.unlock(); }

  /// The chunks a writer holds: the cyclic interval [first, first + count).
  class Span {
   public:
    Span(const DictCore& d, const View& v, std::uint32_t home) : d_(d), v_(v), first_(home), count_(0) {
      d_.lock_stripe(v_, home);
      count_ = 1;
    }
    ~Span() { release(); }
    Span(const Span&) = delete;
    Span& operator=(const Span&) = delete;

    std::uint32_t count() const noexcept { return count_; }
    /// Locks the chunk after the last one held. True: held, continue the scan. False: to keep
    /// lock order everything was released and re-acquired (now including that chunk); the
    /// caller must restart its scan from the home chunk.
    bool extend() {
      if (count_ >= kMaxSpan) too_long();
      const std::uint32_t end = first_ + count_;
      if (end < v_.n_chunks) {  // ascending: above everything held
        d_.lock_stripe(v_, end);
        ++count_;
        return true;
      }
      return extend_wrapped();
    }
    /// Unlocks everything held.
    void release() noexcept {
      for (std::uint32_t i = 0; i < count_; ++i) {
        const std::uint32_t c = first_ + i;
        unlock_stripe(v_, c < v_.n_chunks ? c : c - v_.n_chunks);
      }
      count_ = 0;
    }

    /// A writer holds at most this many stripes: the kernel walks at most 2048 entries of a
    /// dead thread's robust list, and stripes past that would never report owner_dead.
    static constexpr std::uint32_t kMaxSpan = 512;

   private:
    bool extend_wrapped();
    [[noreturn]] void too_long() const;

    const DictCore& d_;
    const View& v_;
    std::uint32_t first_;
    std::uint32_t count_;
  };

  /// Spins while slot (c, i) is being rewritten; past the spin budget checks its stripe for a
  /// dead holder (repairing it) or yields. Returns the slot's meta once it is not odd.
  std::uint32_t wait_stable(View v, std::uint32_t c, std::uint32_t i) const;  // (by value: the slow path materialises it)

  // ---- size and recount -------------------------------------------------------------------

  bool recount_pending() const noexcept {
    // acquire: pairs with the recount's stores; the freeze flag is also ordered for us by the
    // stripe locks we hold (the recount locks every stripe after setting it).
    return (size_dirty_.load(std::memory_order_acquire) | frozen_.load(std::memory_order_acquire)) != 0;
  }
  // size_ packs two counters: the entries (low 32 bits) and the inserts/erases between their
  // size change and their slot change (high 32 bits, "in flight"). A writer killed in that
  // window leaves its in-flight unit behind, so size() can tell that the count may be off by
  // the dead writer's entry before anyone has locked its stripe (see size_impl).
  static constexpr std::uint64_t kInFlight = std::uint64_t{1} << 32;
  static constexpr std::uint64_t count_of(std::uint64_t s) noexcept { return s & 0xffffffffu; }

  /// insert: takes one unit of size and one in flight; false at capacity.
  bool try_reserve_one() noexcept {
    std::uint64_t s = size_.load(std::memory_order_relaxed);
    do {
      if (count_of(s) >= capacity_) [[unlikely]]
        return false;
      // relaxed: size_ orders nothing; it is a counter whose exactness the stripe locks and the
      // recount's freeze protocol guarantee.
    } while (!size_.compare_exchange_weak(s, s + 1 + kInFlight, std::memory_order_relaxed, std::memory_order_relaxed));
    return true;
  }
  /// insert, once the entry is published: the unit is no longer in flight.
  void inserted() noexcept { size_.fetch_sub(kInFlight, std::memory_order_relaxed); }
  /// erase, before the slot is freed.
  void erasing() noexcept { size_.fetch_add(kInFlight, std::memory_order_relaxed); }
  /// erase, once the slot is freed: one entry less, nothing in flight.
  void erased() noexcept {
    std::uint64_t s = size_.load(std::memory_order_relaxed);
    while (!size_.compare_exchange_weak(s, s - kInFlight - (count_of(s) != 0 ? 1 : 0), std::memory_order_relaxed,
                                        std::memory_order_relaxed)) {
    }
  }
  /// At capacity, or when size() finds units in flight that do not land: a process that died
  /// holding a stripe may have left size_ off by one without anyone noticing yet. try_locks
  /// every stripe (repairing dead ones) and says whether a recount is now due. Call with no
  /// stripe held. O(chunks): the slow paths only.
  bool find_dead_stripes(const View& v) const;
  /// Marks a recount pending if size_ is impossible (above capacity).
  void suspect_size() const noexcept;
  std::size_t size_snapshot() const noexcept {
    const std::uint64_t n = count_of(size_.load(std::memory_order_relaxed));
    return static_cast<std::size_t>(n < capacity_ ? n : capacity_);
  }

  using KeyHashFn = std::uint64_t (*)(const std::uint64_t* key_words);
  /// Recomputes size and overflow counts if a death left them in doubt (see the top of this
  /// file). Blocks while another process does it. Call with no stripe held.
  void recount(const View& v, KeyHashFn hash) const;
  /// size() for Dict: recount if pending (never throws: a bad image reads as 0).
  std::size_t size_impl(std::size_t key_size, std::size_t value_size, KeyHashFn hash) const noexcept;

  /// Writes `value` into full slot (c, i) through the stripe's redo log. Stripe c is held.
  static void write_value_logged(const View& v, std::uint32_t c, std::uint32_t i, const std::uint64_t* value) noexcept {
    DictStripe& s = v.stripes[c];
    std::memcpy(v.log_at(c), value, std::size_t{v.value_words} * 8);
    s.log_slot.store(i, std::memory_order_relaxed);
    // release: whoever sees the log active (the next holder, after our death) sees its contents.
    s.log_active.store(1, std::memory_order_release);
    write_value(v, c, i, value);
    // relaxed: the unlock (release) publishes this to the next holder; a death before it only
    // makes the next holder replay the same value.
    s.log_active.store(0, std::memory_order_relaxed);
  }
  /// The seqlock write of a full slot's value (stripe c held).
  static void write_value(const View& v, std::uint32_t c, std::uint32_t i, const std::uint64_t* value) noexcept {
    DictChunk& chunk = v.chunks[c];
    const std::uint32_t m = chunk.meta(i, std::memory_order_relaxed);  // we are its only writer
    const std::uint32_t even = m & DictMeta::kWriting ? DictMeta::advance(m, 1) : m;  // (a replay after a death)
    // relaxed: the release stores of the words below carry it to any reader that sees one.
    chunk.set(i, DictMeta::advance(even, 1), std::memory_order_relaxed);  // odd
    store_words(v.value_at(c, i), value, v.value_words);
    chunk.set(i, DictMeta::advance(even, 2), std::memory_order_release);  // even: published
  }

  [[noreturn]] void full() const;
  [[noreturn]] void bad_header(std::size_t key_size, std::size_t value_size) const;
  [[noreturn]] static void bad_image(const char* what);

 private:
  static constexpr std::uint64_t kMagic = 0x3130'5443'4944'504dull;  // "MPDICT01"
  static constexpr std::uint64_t kSeal = 0x9e37'79b9'7f4a'7c15ull;

  void after_lock_slow(const View& v, std::uint32_t c, LockResult r) const;
  void repair_stripe(const View& v, std::uint32_t c, bool owner_died) const;
  /// Word i of the immutable first 64 bytes (magic .. check_), as the validation folds them.
  std::uint64_t header_word(int i) const noexcept {
    std::uint64_t w;
    std::memcpy(&w, reinterpret_cast<const char*>(this) + 8 * i, 8);
    return w;
  }
  /// The check word that makes the header's eight words XOR to kSeal.
  std::uint64_t seal() const noexcept {
    std::uint64_t x = kSeal;
    for (int i = 0; i < 7; ++i) x ^= header_word(i);
    return x;
  }

  // Immutable after attach(); covered by check_. The first 64 bytes, in this order.
  std::uint64_t magic_ = 0;
  std::uint32_t key_size_ = 0;
  std::uint32_t value_size_ = 0;
  std::uint32_t key_words_ = 0;
  std::uint32_t value_words_ = 0;
  std::uint32_t n_chunks_ = 0;
  [[maybe_unused]] std::uint32_t reserved0_ = 0;
  std::uint64_t capacity_ = 0;
  std::int64_t table_offset_ = 0;   // table address minus this object's address
  std::uint64_t table_bytes_ = 0;
  std::uint64_t check_ = 0;

  // Mutable shared state.
  alignas(64) mutable std::atomic<std::uint64_t> size_{0};
  mutable std::atomic<std::uint32_t> size_dirty_{0};  // a death may have left size/overflow too high
  mutable std::atomic<std::uint32_t> frozen_{0};      // a recount is draining writers
  mutable std::atomic<std::uint64_t> repairs_{0};
  alignas(64) mutable RobustMutex recount_mutex_;
};

}  // namespace detail

/// A fixed-capacity hash map in an Arena, safe across processes and across their deaths.
/// See the top of this file for the guarantees, the design and the memory ordering.
template <class K, class V, class Hash = DictHash<K>, class KeyEqual = DictEqual<K>>
  requires std::is_trivially_copyable_v<K> && std::is_trivially_copyable_v<V>
class Dict : private detail::DictCore {
  static_assert(std::is_invocable_r_v<std::uint64_t, const Hash&, const K&>, "Dict: Hash must be callable on const K&");
  static_assert(std::is_invocable_r_v<bool, const KeyEqual&, const K&, const K&>,
                "Dict: KeyEqual must be callable on (const K&, const K&)");
  static_assert(std::is_empty_v<Hash> && std::is_empty_v<KeyEqual>,
                "Dict: Hash and KeyEqual must be stateless (every process constructs its own)");

 public:
  using key_type = K;
  using mapped_type = V;

  /// A Dict for `capacity` entries whose table is allocated in `arena` (Arena::make passes it).
  /// Throws Error(out_of_memory) if the arena cannot hold the table.
  Dict(Arena& arena, std::size_t capacity) : DictCore(sizeof(K), sizeof(V), capacity) {
    void* table = arena.allocate(table_bytes(), 64);
    attach(table, table_bytes());
  }

  /// A Dict whose table is `storage` (storage_bytes(capacity) bytes, 64-byte aligned), for a
  /// Dict placed in MAP_SHARED memory outside an Arena. `storage` must be in the same mapping
  /// as the Dict object itself (the Dict records it as a distance from itself).
  Dict(void* storage, std::size_t bytes, std::size_t capacity) : DictCore(sizeof(K), sizeof(V), capacity) {
    attach(storage, bytes);
  }
  /// Table bytes for `capacity` entries (the arena allocation, or the storage to pass above).
  static std::size_t storage_bytes(std::size_t capacity) { return table_bytes_for(sizeof(K), sizeof(V), capacity); }

  /// Called by Arena::destroy: gives the table back to the arena.
  void arena_release(Arena& arena) noexcept { arena.deallocate(table_address()); }

  /// Inserts (key, value) if key is absent: true if inserted, false if present (nothing changes).
  /// Throws Error(out_of_memory) if absent and size() == capacity(). Blocks while another
  /// writer holds one of the key's stripes.
  bool insert(const K& key, const V& value) {
    const View v = checked_view();
    const std::uint64_t h = mixed_hash(key);
    for (;;) {
      Span span(*this, v, v.home(h));
      Probe p;
      if (locked_find<true>(span, v, h, key, p)) return false;
      if (recount_pending()) {
        span.release();
        recount(v, &hash_words);
        continue;
      }
      if (!try_reserve_one()) [[unlikely]] {
        span.release();
        if (!find_dead_stripes(v)) full();
        recount(v, &hash_words);
        continue;
      }
      fill(v, h, p, key, value);
      inserted();
      return true;
    }
  }

  /// Inserts or overwrites. Throws Error(out_of_memory) if absent and the Dict is full.
  void insert_or_assign(const K& key, const V& value) {
    const View v = checked_view();
    const std::uint64_t h = mixed_hash(key);
    for (;;) {
      Span span(*this, v, v.home(h));
      Probe p;
      if (locked_find<true>(span, v, h, key, p)) {
        rewrite(v, p.chunk, p.slot, Words<V>(value));
        return;
      }
      if (recount_pending()) {
        span.release();
        recount(v, &hash_words);
        continue;
      }
      if (!try_reserve_one()) [[unlikely]] {
        span.release();
        if (!find_dead_stripes(v)) full();
        recount(v, &hash_words);
        continue;
      }
      fill(v, h, p, key, value);
      inserted();
      return;
    }
  }

  /// The value for key, or nullopt. Never blocks on a live writer, never writes shared memory
  /// (except to repair a stripe whose holder died).
  std::optional<V> get(const K& key) const {
    const View v = checked_view();
    const std::uint64_t h = mixed_hash(key);
    const std::uint32_t want = tag_of(h) << Meta::kTagShift | Meta::kFull;
    std::uint32_t c = v.home(h);
    // A hint (no effect on meaning): the home chunk's first slot line. Inserts take the first
    // free slot, so in a chunk that is not crowded the key is usually there; its fetch — a
    // coherence miss when another process updated that line — then overlaps the meta line's
    // load instead of following it. (2 processes, 90/10 mix: +7%, preemption-free batches.)
    __builtin_prefetch(v.key_at(c, 0), 0, 3);
    for (std::uint32_t step = 0; step < v.n_chunks; ++step) {
      // acquire: pairs with the writers' publishing (release) stores of metas and counts.
      const auto scan = v.chunks[c].scan(want, std::memory_order_acquire);
      for (std::uint32_t hits = scan.hits; hits != 0; hits &= hits - 1) {
        const std::uint32_t i = static_cast<std::uint32_t>(std::countr_zero(hits));
        Words<V> out;
        if (read_entry(v, c, i, want, key, out)) return out.get();
      }
      // (the count from the same scan: an insert increments it before publishing its key)
      if (scan.overflow == 0) return std::nullopt;
      c = v.next(c);
    }
    return std::nullopt;
  }

  bool contains(const K& key) const { return get(key).has_value(); }

  /// Erases key: true if it was present.
  bool erase(const K& key) {
    const View v = checked_view();
    const std::uint64_t h = mixed_hash(key);
    for (;;) {
      Span span(*this, v, v.home(h));
      Probe p;
      if (!locked_find<false>(span, v, h, key, p)) return false;
      if (recount_pending()) {
        span.release();
        recount(v, &hash_words);
        continue;
      }
      erasing();
      detail::DictChunk& chunk = v.chunks[p.chunk];
      // relaxed: freeing publishes no data; a later filler's release stores order this store
      // before its words (see the top of the file), and our unlock publishes it to writers.
      chunk.set(p.slot, Meta::freed(chunk.meta(p.slot, std::memory_order_relaxed)), std::memory_order_relaxed);
      for (std::uint32_t c = v.home(h); c != p.chunk; c = v.next(c)) {
        const std::uint32_t n = v.chunks[c].overflow(std::memory_order_relaxed);
        // relaxed: a count going down only shortens searches for keys that are gone.
        if (n != 0) v.chunks[c].set(detail::DictChunk::kOverflowLane, n - 1, std::memory_order_relaxed);
      }
      erased();
      return true;
    }
  }

  /// Runs fn(V&) on key's value with the key's stripe locked and stores the result: atomic
  /// with respect to every other writer of key, invisible to readers until complete. False if
  /// key is absent (fn not called). If fn throws, nothing changes and the exception propagates.
  /// fn must not call into this Dict.
  template <class F>
  bool update(const K& key, F fn) {
    static_assert(std::is_invocable_v<F&, V&>, "Dict::update: fn must be callable as fn(V&)");
    const View v = checked_view();
    const std::uint64_t h = mixed_hash(key);
    // Hints (no effect on meaning), as in get: the stripe's line, which the lock first reads
    // and then compare-and-swaps (two coherence transactions when another process locked it
    // last: one, asked for exclusive now), and the home chunk's first slot line, where the
    // value usually is and which this update then writes; both fetches overlap the lock's.
    // (2 processes: update +8%, 90/10 mix +3%, preemption-free batches.)
    detail::prefetch_for_write(&v.stripes[v.home(h)]);
    detail::prefetch_for_write(v.key_at(v.home(h), 0));
    Span span(*this, v, v.home(h));
    Probe p;
    if (!locked_find<false>(span, v, h, key, p)) return false;
    Words<V> value;
    std::memcpy(value.w, v.value_at(p.chunk, p.slot), std::size_t{v.value_words} * 8);  // we are its writer
    V current = value.get();
    fn(current);
    std::memcpy(value.w, &current, sizeof(V));
    rewrite(v, p.chunk, p.slot, value);
    return true;
  }

  /// Calls fn(const K&, const V&) on a private copy of every entry, without any lock (fn may
  /// use this Dict). Every entry present for the whole call is passed exactly once, with a
  /// value it had during the call; entries inserted or erased meanwhile may or may not be (a
  /// key erased and re-inserted meanwhile may be passed twice).
  template <class F>
  void for_each(F fn) const {
    static_assert(std::is_invocable_v<F&, const K&, const V&>, "Dict::for_each: fn must be callable as fn(const K&, const V&)");
    const View v = checked_view();
    for (std::uint32_t c = 0; c < v.n_chunks; ++c) {
      for (std::uint32_t i = 0; i < detail::kDictChunkSlots; ++i) {
        std::uint32_t m = v.chunks[c].meta(i, std::memory_order_acquire);
        while (Meta::full(m)) {
          if (Meta::writing(m)) {
            m = wait_stable(v, c, i);
            continue;
          }
          Words<K> k;
          Words<V> val;
          detail::load_words(v.key_at(c, i), k.w, v.key_words);  // acquire loads: the reload stays after them
          detail::load_words(v.value_at(c, i), val.w, v.value_words);
          const std::uint32_t m2 = v.chunks[c].meta(i, std::memory_order_relaxed);
          if (m2 != m) {
            m = m2;
            continue;
          }
          const K key = k.get();
          const V value = val.get();
          fn(key, value);
          break;
        }
      }
    }
  }

  /// Number of entries (a snapshot). Exact after deaths too: if a writer died between changing
  /// the count and changing its slot, this finds it (try_lock of every stripe, O(chunks)) and
  /// recounts first. A corrupted image reads as 0 here (every other call throws).
  std::size_t size() const noexcept { return size_impl(sizeof(K), sizeof(V), &hash_words); }
  bool empty() const noexcept { return size() == 0; }
  using DictCore::capacity;
  using DictCore::repairs;

 private:
  using Meta = detail::DictMeta;

  /// A K or V as the 8-byte words a slot stores (tail bytes zero).
  template <class T>
  struct Words {
    static constexpr std::uint32_t kCount = detail::words_for(sizeof(T));
    std::uint64_t w[kCount];
    Words() noexcept = default;
    explicit Words(const T& t) noexcept : w{} { std::memcpy(w, &t, sizeof(T)); }
    T get() const noexcept {
      T t;
      std::memcpy(static_cast<void*>(&t), w, sizeof(T));
      return t;
    }
  };

  struct Probe {
    std::uint32_t chunk = 0, slot = 0;  // where the key is (found) or goes (free slot)
    bool have_free = false;
  };

  View checked_view() const { return view(sizeof(K), sizeof(V)); }

  static std::uint32_t tag_of(std::uint64_t h) noexcept { return static_cast<std::uint32_t>(h & 0xff); }

  /// Replaces the value of full slot (c, i); its stripe is held. A value of one word is one
  /// atomic store — a reader sees the old or the new word, a death leaves one of them — so it
  /// needs neither the redo log nor the odd/even phase; longer values go through both.
  static void rewrite(const View& v, std::uint32_t c, std::uint32_t i, const Words<V>& value) noexcept {
    if constexpr (Words<V>::kCount == 1) {
      // release: a reader that copies this word (acquire) sees what the updater wrote before.
      std::atomic_ref<std::uint64_t>(*v.value_at(c, i)).store(value.w[0], std::memory_order_release);
    } else {
      write_value_logged(v, c, i, value.w);
    }
  }

  /// The seqlock read of slot (c, i), which a snapshot showed full with our tag: true and the
  /// value in `out` if it holds `key`. Copies the key, validates, compares (the user's == never
  /// sees torn bytes), then copies the value and validates again; retries on any change.
  bool read_entry(const View& v, std::uint32_t c, std::uint32_t i, std::uint32_t want, const K& key, Words<V>& out) const {
    const detail::DictChunk& chunk = v.chunks[c];
    // acquire: pairs with the release store that published this meta.
    std::uint32_t m = chunk.meta(i, std::memory_order_acquire);
    while ((m & Meta::kTagAndFull) == want) {
      if (Meta::writing(m)) [[unlikely]] {
        m = wait_stable(v, c, i);
        continue;
      }
      Words<K> k;
      detail::load_words(v.key_at(c, i), k.w, Words<K>::kCount);  // == v.key_words (validated)
      if constexpr (kCopyValueWithKey) detail::load_words(v.value_at(c, i), out.w, Words<V>::kCount);
      // relaxed: the acquire loads above keep it after them; equal to m means the copies are m's.
      const std::uint32_t m2 = chunk.meta(i, std::memory_order_relaxed);
      if (m2 != m) [[unlikely]] {
        m = m2;
        continue;
      }
      if (!KeyEqual{}(k.get(), key)) return false;
      if constexpr (kCopyValueWithKey) return true;
      detail::load_words(v.value_at(c, i), out.w, Words<V>::kCount);
      const std::uint32_t m3 = chunk.meta(i, std::memory_order_relaxed);
      if (m3 == m) return true;
      m = m3;  // rewritten meanwhile: re-validate the key too
    }
    return false;
  }
  /// Small values are copied with the key under one validation (a tag collision then wastes
  /// the copy, ~1 lookup in 25); large ones only after the key matched.
  static constexpr bool kCopyValueWithKey = sizeof(V) <= 32;

  static std::uint64_t mixed_hash(const K& key) { return detail::mix64(static_cast<std::uint64_t>(Hash{}(key))); }
  static std::uint64_t hash_words(const std::uint64_t* words) {
    K k;
    std::memcpy(static_cast<void*>(&k), words, sizeof(K));
    return mixed_hash(k);
  }

  /// With the span holding the home chunk: finds key (true; p = its slot), else false with p =
  /// the first free slot from home if `want_free`. Extends the span as the search goes.
  template <bool want_free>
  bool locked_find(Span& span, const View& v, std::uint64_t h, const K& key, Probe& p) const {
    const std::uint32_t want = tag_of(h) << Meta::kTagShift | Meta::kFull;
    const std::uint32_t home = v.home(h);
  restart:
    p = Probe{};
    bool searching = true;
    std::uint32_t c = home;
    for (std::uint32_t step = 0;;) {
      // relaxed: we hold this chunk's stripe, the only writers' lock; its acquire ordered us.
      const auto scan = v.chunks[c].scan(want, std::memory_order_relaxed);
      if (searching) {
        for (std::uint32_t hits = scan.hits; hits != 0; hits &= hits - 1) {
          const std::uint32_t i = static_cast<std::uint32_t>(std::countr_zero(hits));
          K k;
          std::memcpy(static_cast<void*>(&k), v.key_at(c, i), sizeof(K));  // stable: only stripe holders write it
          if (KeyEqual{}(k, key)) {
            p.chunk = c;
            p.slot = i;
            return true;
          }
        }
      }
      if constexpr (want_free) {
        if (!p.have_free && scan.free != 0) {
          p.chunk = c;
          p.slot = static_cast<std::uint32_t>(std::countr_zero(scan.free));
          p.have_free = true;
        }
      }
      if (searching && scan.overflow == 0) searching = false;
      if (!searching && (p.have_free || !want_free)) return false;
      if (++step == v.n_chunks) {  // one full cycle
        if (want_free && !p.have_free) bad_image("Dict: no free slot although size() < capacity()");
        return false;
      }
      c = v.next(c);
      if (step >= span.count() && !span.extend()) goto restart;
    }
  }

  /// Publishes (key, value) into the free slot p; stripes from home to p.chunk are held.
  static void fill(const View& v, std::uint64_t h, const Probe& p, const K& key, const V& value) noexcept {
    for (std::uint32_t c = v.home(h); c != p.chunk; c = v.next(c)) {
      // relaxed: the publishing release store below orders these before the key is visible.
      v.chunks[c].set(detail::DictChunk::kOverflowLane, v.chunks[c].overflow(std::memory_order_relaxed) + 1,
                      std::memory_order_relaxed);
    }
    // The words are release stores: a reader still holding the meta of this slot's previous
    // entry that copies any of them sees, on its reload, the meta change that freed the slot.
    const Words<K> k(key);
    const Words<V> val(value);
    detail::store_words(v.key_at(p.chunk, p.slot), k.w, v.key_words);
    detail::store_words(v.value_at(p.chunk, p.slot), val.w, v.value_words);
    detail::DictChunk& chunk = v.chunks[p.chunk];
    // release: readers that see the full meta (acquire) see the key, the value and the counts.
    chunk.set(p.slot, Meta::filled(chunk.meta(p.slot, std::memory_order_relaxed), tag_of(h)), std::memory_order_release);
  }
};

}  // namespace multiproc
