// The arena allocator: TLSF-style segregated fits with immediate coalescing, every store to
// shared bookkeeping undo-logged so a process killed mid-call leaves nothing half-done.
// Design and the exact "fits" rule: the top of multiproc/arena.hpp. Layout: arena_layout.hpp.
//
// Invariants (check() verifies all of them):
//   I1 blocks tile [heap_begin, heap_end) exactly; each size is a multiple of 16, >= 32;
//   I2 prev_size of each block is its physical predecessor's size (0 for the first block) and
//      kPrevFree mirrors the predecessor's kFree;
//   I3 no two free blocks are adjacent (immediate coalescing);
//   I4 each free block is in exactly the list of its size class; the doubly linked lists are
//      consistent; sl_bitmap / fl_bitmap bits are set exactly for non-empty lists;
//   I5 used == the sum of allocated block sizes; the undo log is empty outside a call.
#include "heap.hpp"

#include <multiproc/error.hpp>
#include <multiproc/robust_mutex.hpp>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

namespace multiproc::detail {

using namespace layout;

namespace {

std::atomic<std::int64_t> g_wait_limit_ns{-1};

/// Corrupt bookkeeping met inside a call: the call rolls back what it wrote and reports it.
struct Corrupt {
  const char* what;
  std::uint64_t offset;
};

constexpr std::uint64_t bit(int i) noexcept { return std::uint64_t{1} << i; }
constexpr std::uint64_t round_up(std::uint64_t v, std::uint64_t a) noexcept { return (v + a - 1) & ~(a - 1); }

struct Class {
  int fl;
  int sl;
};

/// The class a free block of `size` is filed under.
Class mapping(std::uint64_t size) noexcept {
  if (size < kSmall) return {0, static_cast<int>(size / kGranule)};
  const int f = 63 - std::countl_zero(size);
  return {f - (kSlLog2 + 3), static_cast<int>((size >> (f - kSlLog2)) & (kSl - 1))};
}
static_assert(kSmall == 256 && kGranule == 16, "mapping(): fl = log2(size) - 7 above 256 bytes");

/// The first class all of whose blocks are >= size (TLSF's round-up "good fit" search).
Class mapping_search(std::uint64_t size) noexcept {
  if (size >= kSmall) size += (std::uint64_t{1} << (63 - std::countl_zero(size) - kSlLog2)) - 1;
  return mapping(size);
}

AllocState& alloc_state(std::byte* base) noexcept { return reinterpret_cast<Layout*>(base)->alloc; }

}  // namespace

void set_arena_wait_limit(std::chrono::nanoseconds limit) noexcept {
  // relaxed: a testing knob read at the start of each wait; no data is published through it.
  g_wait_limit_ns.store(limit.count(), std::memory_order_relaxed);
}

Deadline arena_wait_deadline() noexcept {
  const std::int64_t ns = g_wait_limit_ns.load(std::memory_order_relaxed);  // see above
  return ns < 0 ? Deadline::never() : Deadline::after(std::chrono::nanoseconds(ns));
}

void throw_lock_failure(LockResult r, const char* who, const char* what) {
  if (r == LockResult::timed_out)
    throw Error(errc::timeout, std::string(who) + ": the arena's " + what + " lock stayed busy past the wait limit");
  throw Error(errc::not_recoverable, std::string(who) + ": the arena's " + what +
                                         " lock is not recoverable (its repair failed: the arena is corrupt)");
}

// ---- one locked call: the lock, the undo log, validated access ------------------------------

class HeapTxn {
 public:
  explicit HeapTxn(const Heap& h) noexcept
      : base_(h.base_), a_(alloc_state(h.base_)), begin_(h.begin_), end_(h.end_) {}
  HeapTxn(const HeapTxn&) = delete;
  HeapTxn& operator=(const HeapTxn&) = delete;
  ~HeapTxn() { release(); }

  /// Locks; after owner_dead replays the dead holder's log. acquired, or why not:
  /// not_recoverable (also: the log itself was garbage) or timed_out.
  LockResult acquire() noexcept {
    const LockResult r = a_.lock.lock(arena_wait_deadline());
    if (r == LockResult::acquired) {
      held_ = true;
      return r;
    }
    if (r != LockResult::owner_dead) return r;
    held_ = true;
    if (!replay()) {
      // Unlocking without make_consistent() marks the lock not recoverable for everyone: the
      // right outcome when the state cannot be repaired.
      held_ = false;
      a_.lock.unlock();
      return LockResult::not_recoverable;
    }
    ++a_.recoveries;
    a_.lock.make_consistent();
    return LockResult::acquired;
  }
  void acquire_or_throw(const char* who) {
    const LockResult r = acquire();
    if (r != LockResult::acquired) throw_lock_failure(r, who, "allocator");
  }

  /// Unlocks; an uncommitted call is rolled back first.
  void release() noexcept {
    if (!held_) return;
    if (a_.log_count != 0) rollback();
    held_ = false;
    a_.lock.unlock();
  }

  /// Logs the word's old value, then stores `v`. The entry and the count are in place before
  /// the word changes (program order, kept by the compiler fences: a thread killed between any
  /// two of these stores leaves a log that undoes exactly what it did).
  void set(std::uint64_t& word, std::uint64_t v) noexcept {
    const std::uint64_t n = a_.log_count;
    if (n >= kLogCapacity) {  // a bug in this file, not bad input: the bound is static
      std::fputs("multiproc: arena undo log overflow (allocator bug)\n", stderr);
      std::abort();
    }
    a_.log[n].offset = static_cast<std::uint64_t>(reinterpret_cast<std::byte*>(&word) - base_);
    a_.log[n].old_value = word;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    a_.log_count = n + 1;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    // relaxed: the lock's release publishes it to the next holder; `used` is also read
    // lock-free as a snapshot, hence the atomic store (a plain mov on x86).
    std::atomic_ref<std::uint64_t>(word).store(v, std::memory_order_relaxed);
  }
  void commit() noexcept {
    std::atomic_signal_fence(std::memory_order_seq_cst);
    a_.log_count = 0;
  }
  /// Undoes this call's stores (newest first). Idempotent: a rollback cut short is redone whole.
  void rollback() noexcept {
    for (std::uint64_t i = a_.log_count; i-- > 0;)
      std::atomic_ref<std::uint64_t>(word(a_.log[i].offset)).store(a_.log[i].old_value, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    a_.log_count = 0;
  }

  // ---- validated access ------------------------------------------------------------------
  std::uint64_t& word(std::uint64_t off) noexcept { return *reinterpret_cast<std::uint64_t*>(base_ + off); }
  Block& blk(std::uint64_t b) noexcept { return *reinterpret_cast<Block*>(base_ + b); }
  static std::uint64_t size_of(const Block& k) noexcept { return k.size_flags & ~kFlagMask; }

  void check_block(std::uint64_t b) const {
    if (b < begin_ || b % kGranule != 0 || b > end_ - kMinBlock) throw Corrupt{"a block offset outside the heap or off the 16-byte grid", b};
    const std::uint64_t s = size_of(*reinterpret_cast<const Block*>(base_ + b));
    if (s < kMinBlock || s > end_ - b) throw Corrupt{"block size out of range", b};
  }
  void check_free(std::uint64_t b) {
    check_block(b);
    if (!(blk(b).size_flags & kFree)) throw Corrupt{"a free-list link to an allocated block", b};
  }

  /// Whether `b` is the header of a live (allocated) block: its size and both boundary tags
  /// agree with its neighbours. Never throws: an arbitrary offset just answers false.
  bool live_at(std::uint64_t b) noexcept {
    if (b < begin_ || b % kGranule != 0 || b > end_ - kMinBlock) return false;
    const std::uint64_t sf = blk(b).size_flags, s = sf & ~kFlagMask;
    if ((sf & kFree) || s < kMinBlock || s > end_ - b) return false;
    const std::uint64_t ps = blk(b).prev_size;
    if (b == begin_) {
      if (ps != 0 || (sf & kPrevFree)) return false;
    } else {
      if (ps < kMinBlock || ps % kGranule != 0 || ps > b - begin_) return false;
      const std::uint64_t psf = blk(b - ps).size_flags;
      if ((psf & ~kFlagMask) != ps || ((psf & kFree) != 0) != ((sf & kPrevFree) != 0)) return false;
    }
    const std::uint64_t nb = b + s;
    if (nb < end_) {
      if (end_ - nb < kMinBlock || blk(nb).prev_size != s || (blk(nb).size_flags & kPrevFree)) return false;
    }
    return true;
  }

  // ---- free lists --------------------------------------------------------------------------
  std::uint64_t& head(Class c) noexcept { return a_.heads[c.fl][c.sl]; }

  /// Unlinks free block b from its class list. At most 3 logged stores.
  void remove(std::uint64_t b) {
    Block& k = blk(b);
    const Class c = mapping(size_of(k));
    const std::uint64_t n = k.next_free, p = k.prev_free;
    if (n != 0) {
      check_free(n);
      if (blk(n).prev_free != b) throw Corrupt{"free-list back link does not match", n};
    }
    if (p != 0) {
      check_free(p);
      if (blk(p).next_free != b) throw Corrupt{"free-list forward link does not match", p};
      set(blk(p).next_free, n);
    } else {
      if (head(c) != b) throw Corrupt{"free block is not in its size class's list", b};
      set(head(c), n);
      if (n == 0) {
        set(a_.sl_bitmap[c.fl], a_.sl_bitmap[c.fl] & ~bit(c.sl));
        if (a_.sl_bitmap[c.fl] == 0) set(a_.fl_bitmap, a_.fl_bitmap & ~bit(c.fl));
      }
    }
    if (n != 0) set(blk(n).prev_free, p);
  }

  /// Pushes free block b (header already written) on its class list. At most 5 logged stores.
  void insert(std::uint64_t b) {
    Block& k = blk(b);
    const Class c = mapping(size_of(k));
    const std::uint64_t h = head(c);
    if (h != 0) check_free(h);
    set(k.next_free, h);
    set(k.prev_free, 0);
    if (h != 0) {
      set(blk(h).prev_free, b);
    } else {
      if (!(a_.sl_bitmap[c.fl] & bit(c.sl))) set(a_.sl_bitmap[c.fl], a_.sl_bitmap[c.fl] | bit(c.sl));
      if (!(a_.fl_bitmap & bit(c.fl))) set(a_.fl_bitmap, a_.fl_bitmap | bit(c.fl));
    }
    set(head(c), b);
  }

  /// The first non-empty class at or above c; its list head, or 0.
  std::uint64_t first_at_or_above(Class c) {
    std::uint64_t sl_map = a_.sl_bitmap[c.fl] & (~std::uint64_t{0} << c.sl) & ((std::uint64_t{1} << kSl) - 1);
    int fl = c.fl;
    if (sl_map == 0) {
      const std::uint64_t fl_map = c.fl + 1 < 64 ? a_.fl_bitmap & (~std::uint64_t{0} << (c.fl + 1)) : 0;
      if (fl_map == 0) return 0;
      fl = std::countr_zero(fl_map);
      if (fl >= kFl) throw Corrupt{"first-level bitmap names a class that does not exist", 0};
      sl_map = a_.sl_bitmap[fl] & ((std::uint64_t{1} << kSl) - 1);
      if (sl_map == 0) throw Corrupt{"first-level bitmap set for an empty level", 0};
    }
    const std::uint64_t b = a_.heads[fl][std::countr_zero(sl_map)];
    if (b == 0) throw Corrupt{"second-level bitmap set for an empty list", 0};
    return b;
  }

  /// Where a (need, align) request would put its payload in free block b; 0 if it does not fit.
  /// need = 16 + the rounded payload. The rule is the "fits" definition in arena.hpp.
  std::uint64_t placement(std::uint64_t b, std::uint64_t need, std::uint64_t align) noexcept {
    const std::uint64_t s = size_of(blk(b));
    std::uint64_t p = round_up(b + kBlockHeader, align);
    if (p - kBlockHeader - b != 0 && p - kBlockHeader - b < kMinBlock) p += align;
    return p - kBlockHeader + need <= b + s ? p : 0;
  }

  /// A free block the request fits (see arena.hpp), or 0 when there is none.
  std::uint64_t find(std::uint64_t need, std::uint64_t align) {
    const std::uint64_t heap = end_ - begin_;
    // Any block of `sure` bytes fits: the aligned payload is at most align + 16 past its start.
    const std::uint64_t sure = align == kGranule ? need : need + align + kGranule;
    if (sure <= heap) {
      const Class c = mapping_search(sure);
      if (c.fl < kFl) {
        if (const std::uint64_t b = first_at_or_above(c); b != 0) {
          check_free(b);
          if (placement(b, need, align) == 0) throw Corrupt{"free block filed under too large a class", b};
          return b;
        }
      }
    }
    // Exact fallback, reached only when the O(1) search found nothing: the blocks it could not
    // vouch for are those in need's own class (align 16) or in any class from there up.
    const Class c0 = mapping(need);
    std::uint64_t budget = heap / kMinBlock + 1;  // more steps than blocks: a cycle
    for (int fl = c0.fl; fl < kFl; ++fl) {
      if (fl != c0.fl && !(a_.fl_bitmap & bit(fl))) continue;
      for (int sl = fl == c0.fl ? c0.sl : 0; sl < kSl; ++sl) {
        for (std::uint64_t b = a_.heads[fl][sl]; b != 0; b = blk(b).next_free) {
          if (budget-- == 0) throw Corrupt{"a free list has a cycle", b};
          check_free(b);
          if (placement(b, need, align) != 0) return b;
        }
        if (align == kGranule) return 0;  // every later class was covered by the search above
      }
    }
    return 0;
  }

  /// Carves the request out of free block b at payload p. At most 3 + 7 + 1 + 7 + 2 + 1 = 21
  /// logged stores (+1 for a publish word). Returns the allocated block's size.
  std::uint64_t place(std::uint64_t b, std::uint64_t p, std::uint64_t need, std::uint64_t flags) {
    Block& k = blk(b);
    const std::uint64_t s = size_of(k);
    if (k.size_flags & kPrevFree) throw Corrupt{"two adjacent free blocks", b};
    const std::uint64_t end = b + s;
    if (end < end_) {
      check_block(end);
      if (!(blk(end).size_flags & kPrevFree) || blk(end).prev_size != s) throw Corrupt{"boundary tag disagrees", end};
    }
    remove(b);
    const std::uint64_t bb = p - kBlockHeader, gap = bb - b;
    if (gap != 0) {  // the front gap stays free, as a block of its own
      set(k.size_flags, gap | kFree);
      insert(b);
      set(blk(bb).prev_size, gap);
    }
    std::uint64_t asize = need, rest = end - bb - need;
    if (rest < kMinBlock) {
      asize += rest;
      rest = 0;
    }
    set(blk(bb).size_flags, asize | flags | (gap != 0 ? kPrevFree : 0));
    if (rest != 0) {
      const std::uint64_t t = bb + asize;
      set(blk(t).prev_size, asize);
      set(blk(t).size_flags, rest | kFree);
      insert(t);
    }
    if (end < end_) {
      set(blk(end).prev_size, rest != 0 ? rest : asize);
      if (rest == 0) set(blk(end).size_flags, blk(end).size_flags & ~kPrevFree);
    }
    set(a_.used, a_.used + asize);
    return asize;
  }

  /// Frees live block b, merging it with free neighbours. At most 3 + 3 + 1 + 5 + 2 + 1 = 15
  /// logged stores (+1 for a cleared word).
  void free_block(std::uint64_t b) {
    Block& k = blk(b);
    const std::uint64_t s = size_of(k);
    if (a_.used < s) throw Corrupt{"used count below a live block's size", b};
    std::uint64_t start = b, total = s;
    if (k.size_flags & kPrevFree) {
      const std::uint64_t pb = b - k.prev_size;
      check_free(pb);
      if (blk(pb).size_flags & kPrevFree) throw Corrupt{"two adjacent free blocks", pb};
      remove(pb);
      start = pb;
      total += size_of(blk(pb));
    }
    const std::uint64_t nb = b + s;
    if (nb < end_ && (blk(nb).size_flags & kFree)) {
      check_free(nb);
      remove(nb);
      total += size_of(blk(nb));
    }
    set(blk(start).size_flags, total | kFree);
    insert(start);
    const std::uint64_t after = start + total;
    if (after < end_) {
      check_block(after);
      set(blk(after).prev_size, total);
      set(blk(after).size_flags, blk(after).size_flags | kPrevFree);
    }
    set(a_.used, a_.used - s);
  }

  AllocState& state() noexcept { return a_; }

 private:
  /// A log entry may only name a word the allocator writes: heap words, `used`, the bitmaps
  /// and heads, and the directory's pending-page word.
  bool valid_target(std::uint64_t off) const noexcept {
    if (off % 8 != 0) return false;
    if (off >= begin_ && off < end_) return true;
    constexpr std::uint64_t a = offsetof(Layout, alloc);
    if (off == a + offsetof(AllocState, used)) return true;
    if (off >= a + offsetof(AllocState, fl_bitmap) && off < a + sizeof(AllocState)) return true;
    return off == offsetof(Layout, dir) + offsetof(DirState, pending_chunk);
  }
  /// Recovery after owner_dead: validates, then undoes the dead holder's partial call.
  bool replay() noexcept {
    const std::uint64_t n = a_.log_count;
    if (n > kLogCapacity) return false;
    for (std::uint64_t i = 0; i < n; ++i)
      if (!valid_target(a_.log[i].offset)) return false;
    rollback();
    return true;
  }

  std::byte* base_;
  AllocState& a_;
  std::uint64_t begin_, end_;
  bool held_ = false;
};

// ---- Heap ------------------------------------------------------------------------------------

Heap::Heap(std::byte* base, [[maybe_unused]] std::uint64_t mapped) noexcept
    : base_(base),
      begin_(reinterpret_cast<const Layout*>(base)->header.heap_begin),
      end_(reinterpret_cast<const Layout*>(base)->header.heap_end) {}

void Heap::format(std::byte* base, std::uint64_t total) noexcept {
  auto* l = ::new (base) Layout();
  Header& h = l->header;
  h.magic = kMagic;
  h.version = kVersion;
  h.lock_mode = RobustMutex::native() ? 1 : 0;
  h.total_bytes = total;
  h.heap_begin = kHeaderBytes;
  h.heap_end = total;
  h.checksum = header_checksum(h);
  // One free block over the whole heap, filed directly (nobody else can see it yet).
  auto* b = reinterpret_cast<Block*>(base + kHeaderBytes);
  const std::uint64_t size = total - kHeaderBytes;
  *b = Block{0, size | kFree, 0, 0};
  const Class c = mapping(size);
  l->alloc.heads[c.fl][c.sl] = kHeaderBytes;
  l->alloc.sl_bitmap[c.fl] = bit(c.sl);
  l->alloc.fl_bitmap = bit(c.fl);
}

std::uint64_t Heap::allocate(std::uint64_t bytes, std::uint64_t align, std::uint64_t publish, std::uint64_t flags,
                             const char* who) {
  if (align == 0 || (align & (align - 1)) != 0 || align > Arena::kMaxAlign)
    throw Error(std::make_error_code(std::errc::invalid_argument),
                std::string(who) + ": alignment " + std::to_string(align) + " is not a power of two up to 4096");
  if (align < kGranule) align = kGranule;
  const std::uint64_t heap = end_ - begin_;
  std::uint64_t used_now = 0;
  if (bytes <= heap) {
    const std::uint64_t need = kBlockHeader + round_up(bytes == 0 ? 1 : bytes, kGranule);
    HeapTxn t(*this);
    t.acquire_or_throw(who);
    Corrupt bad{};
    try {
      if (const std::uint64_t b = t.find(need, align); b != 0) {
        const std::uint64_t p = t.placement(b, need, align);
        t.place(b, p, need, flags);
        if (publish != 0) t.set(t.word(publish), p);
        t.commit();
        return p;
      }
    } catch (const Corrupt& c) {
      bad = c;
    }
    used_now = t.state().used;
    t.release();  // rolls back whatever a corrupt call wrote
    if (bad.what != nullptr)
      throw Error(errc::bad_arena, std::string(who) + ": the arena's allocator bookkeeping is corrupt (" + bad.what +
                                       " at offset " + std::to_string(bad.offset) + "); nothing was changed");
  } else {
    used_now = used();
  }
  throw Error(errc::out_of_memory, std::string(who) + ": no free block fits " + std::to_string(bytes) +
                                       " bytes aligned to " + std::to_string(align) + " (" + std::to_string(used_now) +
                                       " of " + std::to_string(heap) + " heap bytes in use)");
}

Heap::Freed Heap::deallocate(std::uint64_t payload, bool named_ok) noexcept {
  if (payload < begin_ + kBlockHeader || payload >= end_ || payload % kGranule != 0) return Freed::not_a_block;
  HeapTxn t(*this);
  if (t.acquire() != LockResult::acquired) return Freed::lock_failed;
  const std::uint64_t b = payload - kBlockHeader;
  if (!t.live_at(b)) return Freed::not_a_block;
  if ((t.blk(b).size_flags & kNamed) && !named_ok) return Freed::named;
  try {
    t.free_block(b);
    t.commit();
    return Freed::freed;
  } catch (const Corrupt&) {
    return Freed::corrupt;  // the destructor rolls back
  }
}

Heap::Freed Heap::deallocate_word(std::uint64_t word, bool named_ok) noexcept {
  HeapTxn t(*this);
  if (t.acquire() != LockResult::acquired) return Freed::lock_failed;
  const std::uint64_t payload = t.word(word);
  if (payload == 0) return Freed::freed;
  if (payload < begin_ + kBlockHeader || payload >= end_ || payload % kGranule != 0) return Freed::not_a_block;
  const std::uint64_t b = payload - kBlockHeader;
  if (!t.live_at(b)) return Freed::not_a_block;
  if ((t.blk(b).size_flags & kNamed) && !named_ok) return Freed::named;
  try {
    t.free_block(b);
    t.set(t.word(word), 0);
    t.commit();
    return Freed::freed;
  } catch (const Corrupt&) {
    return Freed::corrupt;
  }
}

bool Heap::is_live(std::uint64_t payload, bool named, const char* who) const {
  if (payload < begin_ + kBlockHeader || payload >= end_ || payload % kGranule != 0) return false;
  HeapTxn t(*this);
  t.acquire_or_throw(who);
  const std::uint64_t b = payload - kBlockHeader;
  return t.live_at(b) && ((t.blk(b).size_flags & kNamed) != 0) == named;
}

void Heap::settle(const char* who) const {
  HeapTxn t(*this);
  t.acquire_or_throw(who);
}

std::uint64_t Heap::used() const noexcept {
  // relaxed: a snapshot; the value is only ever a number for the caller.
  return std::atomic_ref<std::uint64_t>(alloc_state(base_).used).load(std::memory_order_relaxed);
}

void Heap::count_invalid_free() noexcept {
  // relaxed: a statistic; nothing is published through it.
  std::atomic_ref<std::uint64_t>(alloc_state(base_).invalid_frees).fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t Heap::recoveries() const {
  HeapTxn t(*this);
  t.acquire_or_throw("Arena::stats");
  return t.state().recoveries;
}

std::uint64_t Heap::invalid_frees() const noexcept {
  return std::atomic_ref<std::uint64_t>(alloc_state(base_).invalid_frees).load(std::memory_order_relaxed);
}

std::string Heap::check(Walk* out) const {
  HeapTxn t(*this);
  t.acquire_or_throw("Arena::check");
  AllocState& a = t.state();
  auto at = [](const char* what, std::uint64_t off) { return std::string(what) + " at offset " + std::to_string(off); };
  if (a.log_count != 0) return "the undo log is not empty outside a call";
  Walk w;
  std::vector<std::uint64_t> free_phys, free_listed;
  std::uint64_t b = begin_, prev_size = 0;
  bool prev_free = false;
  while (b < end_) {
    if (end_ - b < kMinBlock) return at("the heap ends inside a block header", b);
    const Block& k = t.blk(b);
    const std::uint64_t sf = k.size_flags, s = sf & ~kFlagMask;
    if (s < kMinBlock || s > end_ - b) return at("block size out of range", b);
    if (k.prev_size != prev_size) return at("prev_size is not the previous block's size", b);
    if (((sf & kPrevFree) != 0) != prev_free) return at("kPrevFree disagrees with the previous block", b);
    if (sf & kFree) {
      if (prev_free) return at("two adjacent free blocks (not coalesced)", b);
      if (sf & kNamed) return at("a free block marked named", b);
      free_phys.push_back(b);
      ++w.free_blocks;
      w.free_bytes += s;
      w.largest_free = std::max(w.largest_free, s);
    } else {
      ++w.allocated_blocks;
      w.allocated_bytes += s;
    }
    prev_free = (sf & kFree) != 0;
    prev_size = s;
    b += s;
  }
  if (b != end_) return at("blocks overrun the heap's end", b);
  if (w.allocated_bytes != a.used)
    return "used (" + std::to_string(a.used) + ") is not the sum of allocated blocks (" +
           std::to_string(w.allocated_bytes) + ")";
  for (int fl = 0; fl < kFl; ++fl) {
    if (((a.fl_bitmap & bit(fl)) != 0) != ((a.sl_bitmap[fl] & ((std::uint64_t{1} << kSl) - 1)) != 0))
      return "first-level bitmap bit " + std::to_string(fl) + " disagrees with its second level";
    for (int sl = 0; sl < kSl; ++sl) {
      const std::uint64_t h = a.heads[fl][sl];
      if ((h != 0) != ((a.sl_bitmap[fl] & bit(sl)) != 0))
        return "bitmap disagrees with list " + std::to_string(fl) + "/" + std::to_string(sl);
      std::uint64_t prev = 0, steps = 0;
      for (std::uint64_t x = h; x != 0; x = t.blk(x).next_free) {
        if (++steps > w.free_blocks) return "a free list is longer than the number of free blocks (a cycle?)";
        if (x < begin_ || x % kGranule != 0 || x > end_ - kMinBlock) return at("a free-list link outside the heap", x);
        const std::uint64_t sf = t.blk(x).size_flags;
        if (!(sf & kFree)) return at("an allocated block in a free list", x);
        const Class c = mapping(sf & ~kFlagMask);
        if (c.fl != fl || c.sl != sl) return at("a free block in the wrong size class", x);
        if (t.blk(x).prev_free != prev) return at("a free-list back link is wrong", x);
        free_listed.push_back(x);
        prev = x;
      }
    }
  }
  std::sort(free_listed.begin(), free_listed.end());
  if (free_listed != free_phys) return "the free lists do not hold exactly the free blocks";
  if (out != nullptr) *out = w;
  return {};
}

}  // namespace multiproc::detail
