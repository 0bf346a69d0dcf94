// The untyped parts of Dict and List: geometry, validation, stripe repair, the wrapped span
// acquisition, the readers' slow path and the recount. The design is argued in dict.hpp.
#include <multiproc/dict.hpp>
#include <multiproc/list.hpp>

#include <multiproc/park.hpp>

#include <sched.h>

#include <cstddef>
#include <cstdio>
#include <limits>
#include <new>
#include <string>
#include <vector>

namespace multiproc {
namespace detail {

static_assert(std::is_standard_layout_v<DictCore>, "a Dict lives in shared memory: standard layout");
static_assert(sizeof(DictCore) == 192, "a Dict object is 192 bytes: geometry, counters, the recount lock");
static_assert(std::is_standard_layout_v<ListCore>, "a List lives in shared memory: standard layout");
static_assert(sizeof(ListCore) == 128, "a List object is 128 bytes");

namespace {

struct Geometry {
  std::uint64_t chunks;
  std::uint64_t bytes;
};

// Chunks of 15 slots so that `capacity` entries fill at most 3/4 of them.
Geometry dict_geometry(std::size_t key_size, std::size_t value_size, std::size_t capacity) {
  const std::uint64_t kw = words_for(key_size), vw = words_for(value_size);
  const std::uint64_t cap = capacity;
  if (cap >= (std::uint64_t{1} << 32) || kw > (1u << 24) || vw > (1u << 24))
    throw Error(errc::out_of_memory, "Dict: capacity " + std::to_string(capacity) + " of " +
                                         std::to_string(key_size) + "+" + std::to_string(value_size) +
                                         "-byte entries is too large to address");
  std::uint64_t chunks = (cap * 4 + 44) / 45;
  if (chunks == 0) chunks = 1;
  if (chunks > std::numeric_limits<std::uint32_t>::max() / 2)
    throw Error(errc::out_of_memory, "Dict: capacity " + std::to_string(capacity) + " needs too many chunks");
  // Per chunk: its meta line, its stripe line, its slots (whole lines); then the redo logs
  // (one value per chunk), padded to a whole line so that the slots start on one.
  const std::uint64_t per_chunk =
      sizeof(DictChunk) + sizeof(DictStripe) + slot_block_words(static_cast<std::uint32_t>(kw), static_cast<std::uint32_t>(vw)) * 8;
  std::uint64_t bytes = 0;
  if (__builtin_mul_overflow(per_chunk + vw * 8, chunks, &bytes) || bytes > (std::uint64_t{1} << 56))
    throw Error(errc::out_of_memory, "Dict: capacity " + std::to_string(capacity) + " needs a table too large to address");
  return {chunks, chunks * per_chunk + round64(chunks * vw * 8)};
}

}  // namespace

// ---- Dict: geometry and validation ---------------------------------------------------------

std::size_t DictCore::table_bytes_for(std::size_t key_size, std::size_t value_size, std::size_t capacity) {
  return static_cast<std::size_t>(dict_geometry(key_size, value_size, capacity).bytes);
}

DictCore::DictCore(std::size_t key_size, std::size_t value_size, std::size_t capacity) {
  const Geometry g = dict_geometry(key_size, value_size, capacity);
  key_size_ = static_cast<std::uint32_t>(key_size);
  value_size_ = static_cast<std::uint32_t>(value_size);
  key_words_ = words_for(key_size);
  value_words_ = words_for(value_size);
  n_chunks_ = static_cast<std::uint32_t>(g.chunks);
  capacity_ = capacity;
  table_bytes_ = g.bytes;
}

void DictCore::attach(void* table, std::size_t bytes) {
  if (table == nullptr || reinterpret_cast<std::uintptr_t>(table) % 64 != 0 || bytes < table_bytes_)
    throw Error(std::make_error_code(std::errc::invalid_argument),
                "Dict: table storage must be " + std::to_string(table_bytes_) + " bytes aligned to 64 (got " +
                    std::to_string(bytes) + " bytes)");
  auto* base = static_cast<std::byte*>(table);
  const std::size_t c = n_chunks_;
  auto* chunks = reinterpret_cast<DictChunk*>(base);
  auto* stripes = reinterpret_cast<DictStripe*>(base + c * sizeof(DictChunk));
  for (std::size_t i = 0; i < c; ++i) ::new (&chunks[i]) DictChunk();
  for (std::size_t i = 0; i < c; ++i) ::new (&stripes[i]) DictStripe();
  const std::size_t rest = c * (sizeof(DictChunk) + sizeof(DictStripe));
  std::memset(base + rest, 0, static_cast<std::size_t>(table_bytes_) - rest);  // logs and slots
  table_offset_ = base - reinterpret_cast<std::byte*>(this);
  magic_ = kMagic;
  static_assert(offsetof(DictCore, check_) == 56, "the immutable header is the first 64 bytes, check word last");
  check_ = seal();
}

void* DictCore::table_address() const noexcept {
  return const_cast<std::byte*>(reinterpret_cast<const std::byte*>(this)) + table_offset_;
}

void DictCore::bad_header(std::size_t key_size, std::size_t value_size) const {
  if (magic_ != kMagic) bad_image("Dict: not a Dict (bad magic): corrupted, destroyed, or not constructed");
  if (check_ != seal()) bad_image("Dict: header check word mismatch: the shared image is corrupted");
  if (key_size_ != key_size || value_size_ != value_size)
    throw Error(errc::bad_arena, "Dict: built for " + std::to_string(key_size_) + "-byte keys and " +
                                     std::to_string(value_size_) + "-byte values, used as " + std::to_string(key_size) +
                                     " and " + std::to_string(value_size));
  bad_image("Dict: inconsistent geometry in the header");
}

void DictCore::bad_image(const char* what) { throw Error(errc::bad_arena, what); }

void DictCore::full() const {
  throw Error(errc::out_of_memory, "Dict::insert: the Dict is full (capacity " + std::to_string(capacity_) + ")");
}

// ---- Dict: stripes --------------------------------------------------------------------------

void DictCore::after_lock_slow(const View& v, std::uint32_t c, LockResult r) const {
  if (r == LockResult::not_recoverable)
    throw Error(errc::not_recoverable,
                "Dict: stripe " + std::to_string(c) + "'s lock is not recoverable (unlocked after a death without repair)");
  if (r == LockResult::timed_out)  // a blocking lock without deadline cannot time out
    throw Error(errc::timeout, "Dict: stripe " + std::to_string(c) + "'s lock timed out");
  repair_stripe(v, c, r == LockResult::owner_dead);
}

bool DictCore::try_lock_stripe(const View& v, std::uint32_t c) const {
  DictStripe& s = v.stripes[c];
  const LockResult r = s.mutex.try_lock();
  if (r == LockResult::timed_out) return false;
  if (r != LockResult::acquired || s.log_active.load(std::memory_order_relaxed) != 0) after_lock_slow(v, c, r);
  return true;
}

// Stripe c is held. Replays an active redo log, normalises the versions a death left odd, and
// after a death marks the Dict for a recount (a dead insert or erase may have left size and
// overflow counts too high) before declaring the lock consistent.
void DictCore::repair_stripe(const View& v, std::uint32_t c, bool owner_died) const {
  DictStripe& s = v.stripes[c];
  DictChunk& chunk = v.chunks[c];
  const char* bad = nullptr;
  // acquire: pairs with the dead writer's release store of the flag (its log is complete).
  if (s.log_active.load(std::memory_order_acquire) != 0) {
    const std::uint32_t i = s.log_slot.load(std::memory_order_relaxed);
    if (i < kDictChunkSlots && DictMeta::full(chunk.meta(i, std::memory_order_relaxed))) {
      write_value(v, c, i, v.log_at(c));
    } else {
      bad = "Dict: a stripe's redo log names a slot that holds no entry: the shared image is corrupted";
    }
    s.log_active.store(0, std::memory_order_relaxed);  // our unlock (release) publishes it
  }
  for (std::uint32_t i = 0; i < kDictChunkSlots && bad == nullptr; ++i) {
    const std::uint32_t m = chunk.meta(i, std::memory_order_relaxed);
    if (!DictMeta::writing(m)) continue;
    if (DictMeta::full(m)) {
      bad = "Dict: an entry is marked as being rewritten but no redo log covers it: the shared image is corrupted";
    } else {
      chunk.set(i, DictMeta::advance(m, 1), std::memory_order_relaxed);  // a free slot: no reader cares
    }
  }
  if (owner_died) {
    // release: whoever sees the flag also sees the repaired stripe.
    size_dirty_.store(1, std::memory_order_release);
    repairs_.fetch_add(1, std::memory_order_relaxed);  // a statistic
    s.mutex.make_consistent();
  }
  if (bad != nullptr) {
    s.mutex.unlock();
    bad_image(bad);
  }
}

bool DictCore::Span::extend_wrapped() {
  const std::uint32_t n = v_.n_chunks;
  const std::uint32_t next = first_ + count_ - n;  // below first_: taking it blocking could deadlock
  if (d_.try_lock_stripe(v_, next)) {
    ++count_;
    return true;
  }
  // Release everything and take [0, next] then [first_, n) — ascending, like everyone else.
  release();
  std::uint32_t held_low = 0, held_high = 0;
  try {
    for (; held_low <= next; ++held_low) d_.lock_stripe(v_, held_low);
    for (; first_ + held_high < n; ++held_high) d_.lock_stripe(v_, first_ + held_high);
  } catch (...) {
    for (std::uint32_t i = 0; i < held_low; ++i) unlock_stripe(v_, i);
    for (std::uint32_t i = 0; i < held_high; ++i) unlock_stripe(v_, first_ + i);
    throw;
  }
  count_ = held_high + held_low;
  return false;
}

void DictCore::Span::too_long() const {
  throw Error(errc::not_supported, "Dict: a search spans more than " + std::to_string(kMaxSpan) +
                                       " lock stripes (a degenerate Hash, or corrupted overflow counts)");
}

std::uint32_t DictCore::wait_stable(View v, std::uint32_t c, std::uint32_t i) const {
  const DictChunk& chunk = v.chunks[c];
  for (;;) {
    for (int k = 0; k < kSpinIterations; ++k) {
      const std::uint32_t m = chunk.meta(i, std::memory_order_acquire);
      if (!DictMeta::writing(m)) return m;
      cpu_relax();
    }
    // Odd for a while: its writer is descheduled, or dead. A dead one's stripe is ours to repair.
    if (try_lock_stripe(v, c)) {
      const std::uint32_t m = chunk.meta(i, std::memory_order_acquire);
      unlock_stripe(v, c);
      if (!DictMeta::writing(m)) return m;
      bad_image("Dict: an entry is marked as being rewritten while its stripe is free: the shared image is corrupted");
    }
    ::sched_yield();
  }
}

// ---- Dict: size and recount -----------------------------------------------------------------

bool DictCore::find_dead_stripes(const View& v) const {
  for (std::uint32_t c = 0; c < v.n_chunks; ++c)
    if (try_lock_stripe(v, c)) unlock_stripe(v, c);
  suspect_size();
  return recount_pending();
}

void DictCore::suspect_size() const noexcept {
  // A size above capacity is impossible: only a corrupted image has one. Recount it.
  if (count_of(size_.load(std::memory_order_relaxed)) > capacity_) size_dirty_.store(1, std::memory_order_release);
}

void DictCore::recount(const View& v, KeyHashFn hash) const {
  const LockResult r = recount_mutex_.lock();
  if (r == LockResult::not_recoverable) throw Error(errc::not_recoverable, "Dict: the recount lock is not recoverable");
  const bool died = r == LockResult::owner_dead;  // a recount died half way: redo it
  struct Unlock {
    const DictCore& d;
    bool died;
    ~Unlock() {
      if (died) d.recount_mutex_.make_consistent();
      d.recount_mutex_.unlock();
    }
  } unlock{*this, died};
  if (!died && size_dirty_.load(std::memory_order_acquire) == 0 && frozen_.load(std::memory_order_acquire) == 0) return;

  // seq_cst store, then every stripe: a writer that locks a stripe after we pass it sees the
  // flag (our unlock, its lock); one that held it before we pass it finishes first.
  frozen_.store(1, std::memory_order_seq_cst);
  for (std::uint32_t c = 0; c < v.n_chunks; ++c) {
    lock_stripe(v, c);
    unlock_stripe(v, c);
  }
  // No insert or erase runs now: keys and full bits are still. (update may still rewrite
  // values, which the recount does not read.)
  std::vector<std::uint32_t> overflow(v.n_chunks, 0);
  std::uint64_t entries = 0;
  std::vector<std::uint64_t> key(v.key_words);
  for (std::uint32_t c = 0; c < v.n_chunks; ++c) {
    for (std::uint32_t i = 0; i < kDictChunkSlots; ++i) {
      if (!DictMeta::full(v.chunks[c].meta(i, std::memory_order_acquire))) continue;
      ++entries;
      load_words(v.key_at(c, i), key.data(), v.key_words);
      for (std::uint32_t h = v.home(hash(key.data())); h != c; h = v.next(h)) ++overflow[h];
    }
  }
  if (entries > capacity_) {  // only a corrupted image has more full slots than capacity
    frozen_.store(0, std::memory_order_seq_cst);
    bad_image("Dict: more entries than capacity: the shared image is corrupted");
  }
  for (std::uint32_t c = 0; c < v.n_chunks; ++c) {
    // Under the stripe: a count shares its word with slot 14's meta, which update() may be
    // rewriting now. relaxed: each count goes from a value >= the true one to the true one;
    // readers are correct with either, in any order.
    lock_stripe(v, c);
    v.chunks[c].set(DictChunk::kOverflowLane, overflow[c], std::memory_order_relaxed);
    unlock_stripe(v, c);
  }
  size_.store(entries, std::memory_order_relaxed);  // nothing in flight: writers are drained and frozen
  size_dirty_.store(0, std::memory_order_release);
  frozen_.store(0, std::memory_order_seq_cst);
}

std::size_t DictCore::size_impl(std::size_t key_size, std::size_t value_size, KeyHashFn hash) const noexcept {
  View v;
  try {
    v = view(key_size, value_size);
  } catch (...) {
    return 0;
  }
  // Inserts and erases in flight: live ones land within nanoseconds; a unit that stays may be
  // a dead writer's, whose stripe nobody has locked since. Look for one, then recount.
  if (size_.load(std::memory_order_relaxed) >= kInFlight) {
    bool landed = false;
    for (int k = 0; k < 4 * kSpinIterations && !landed; ++k) {
      landed = size_.load(std::memory_order_relaxed) < kInFlight;
      cpu_relax();
    }
    if (!landed) {
      try {
        (void)find_dead_stripes(v);
      } catch (...) {  // a corrupted stripe: the stored count stands
      }
    }
  }
  suspect_size();
  if (recount_pending()) {
    try {
      recount(v, hash);
    } catch (...) {  // a corrupted image or no memory for the recount: the stored count stands
    }
  }
  return size_snapshot();
}

// ---- List -----------------------------------------------------------------------------------

std::size_t ListCore::storage_bytes_for(std::size_t elem_size, std::size_t capacity) {
  std::uint64_t bytes = 0;
  if (capacity > (std::uint64_t{1} << 48) || __builtin_mul_overflow(std::uint64_t{elem_size}, std::uint64_t{capacity} + 1, &bytes) ||
      bytes > (std::uint64_t{1} << 56))
    throw Error(errc::out_of_memory, "List: capacity " + std::to_string(capacity) + " is too large to address");
  return static_cast<std::size_t>(bytes < 64 ? 64 : bytes);
}

ListCore::ListCore(std::size_t elem_size, std::size_t capacity) {
  elem_size_ = elem_size;
  capacity_ = capacity;
  storage_bytes_ = storage_bytes_for(elem_size, capacity);
}

void ListCore::attach(void* storage, std::size_t bytes) {
  if (storage == nullptr || reinterpret_cast<std::uintptr_t>(storage) % 64 != 0 || bytes < storage_bytes_)
    throw Error(std::make_error_code(std::errc::invalid_argument),
                "List: storage must be " + std::to_string(storage_bytes_) + " bytes aligned to 64 (got " +
                    std::to_string(bytes) + " bytes)");
  std::memset(storage, 0, static_cast<std::size_t>(storage_bytes_));
  storage_offset_ = static_cast<std::byte*>(storage) - reinterpret_cast<std::byte*>(this);
  magic_ = kMagic;
  check_ = checksum();
}

void* ListCore::storage_address() const noexcept {
  return const_cast<std::byte*>(reinterpret_cast<const std::byte*>(this)) + storage_offset_;
}

std::uint64_t ListCore::checksum() const noexcept {
  return mix64(magic_ + elem_size_ * 0x9e3779b97f4a7c15ull + capacity_ * 0xc2b2ae3d27d4eb4full +
               static_cast<std::uint64_t>(storage_offset_) * 0x165667b19e3779f9ull + storage_bytes_ * 0xd6e8feb86659fd93ull);
}

void ListCore::bad(const char* why) const { throw Error(errc::bad_arena, std::string("List: ") + why); }

std::byte* ListCore::lock(std::size_t elem_size) const {
  if (magic_ != kMagic) bad("not a List (bad magic): corrupted, destroyed, or not constructed");
  if (check_ != checksum()) bad("header check word mismatch: the shared image is corrupted");
  if (elem_size_ != elem_size) bad("used with another element type than it was built for");
  const LockResult r = mutex_.lock();
  if (r == LockResult::not_recoverable) throw Error(errc::not_recoverable, "List: the lock is not recoverable");
  if (r == LockResult::timed_out) throw Error(errc::timeout, "List: the lock timed out");
  auto* base = reinterpret_cast<std::byte*>(storage_address());
  const char* why = nullptr;
  // acquire: pairs with set()'s release store of the flag (the log is complete).
  if (log_active_.load(std::memory_order_acquire) != 0) {
    // A holder died inside set(): finish it (the log holds the whole new value).
    if (log_index_ < capacity_) {
      std::memcpy(base + (log_index_ + 1) * elem_size_, base, static_cast<std::size_t>(elem_size_));
    } else {
      why = "the redo log names an element past the capacity: the shared image is corrupted";
    }
    log_active_.store(0, std::memory_order_relaxed);
  }
  if (size_.load(std::memory_order_relaxed) > capacity_) why = "size above capacity: the shared image is corrupted";
  if (r == LockResult::owner_dead) mutex_.make_consistent();
  if (why != nullptr) {
    mutex_.unlock();
    bad(why);
  }
  return base;
}

void ListCore::set_logged(const Guard& g, std::size_t i, const void* value) const noexcept {
  std::memcpy(g.log(), value, static_cast<std::size_t>(elem_size_));
  log_index_ = i;
  // release: whoever sees the log active (the next holder, after our death) sees its contents.
  log_active_.store(1, std::memory_order_release);
  std::memcpy(g.element(i), value, static_cast<std::size_t>(elem_size_));
  // relaxed: our unlock publishes it; a death before that only makes the next holder replay.
  log_active_.store(0, std::memory_order_relaxed);
}

void ListCore::full() const {
  throw Error(errc::out_of_memory, "List::push_back: the List is full (capacity " + std::to_string(capacity_) + ")");
}

void ListCore::out_of_range(const char* op, std::size_t i, std::size_t size) const {
  throw Error(std::make_error_code(std::errc::result_out_of_range),
              std::string(op) + ": index " + std::to_string(i) + " is out of range for a List of size " + std::to_string(size));
}

}  // namespace detail
}  // namespace multiproc
