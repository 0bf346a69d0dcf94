// The arena's name directory: make / find / find_or_make / destroy across processes.
//
// Pages of DirEntry (arena_layout.hpp) chained from DirState::first_chunk, allocated from the
// heap on demand (8, 16, 32, then 64 entries each). Lookup is a linear scan of 64-bit name
// hashes under the directory lock: directories are small (a program names its queues, locks
// and tables); a name found once should be kept as a reference, not looked up per operation.
//
// Protocol (why it is safe with concurrent processes and with processes that die):
//   * The directory lock (robust) guards the page chain and every free -> constructing claim.
//     A claim fills the entry, locks the entry's own robust mutex and only then stores
//     state = constructing, so "busy" always means "its actor holds the entry mutex, or died
//     holding it". Every other transition is one atomic store by the actor holding that mutex:
//     constructing -> ready (release: the object is complete), constructing -> free (the
//     constructor threw), ready -> destroying -> free.
//   * A finder that meets a busy entry drops the directory lock and blocks on the entry mutex:
//     it sleeps in the kernel until the actor finishes, then looks again. If the actor died,
//     the kernel hands the mutex over with owner_dead; the finder frees the half-built
//     object's block (its offset is published into the entry in the allocation's own logged
//     step, so it is never lost), frees the name, make_consistent(), and looks again.
//   * Lock order: directory lock -> entry mutex -> allocator lock. An entry mutex is taken under
//     the directory lock only for a free or ready entry, whose mutex is held at most briefly by
//     a finder that takes no other lock while holding it, so the order cannot deadlock.
//   * A page is allocated with its offset published into DirState::pending_chunk in the same
//     logged step, initialised, linked, and pending_chunk cleared. A holder that dies anywhere
//     in there leaves the directory lock owner_dead; the next holder settles the allocator,
//     then initialises and links the pending page (or just clears it if it was linked).
#include "heap.hpp"

#include <multiproc/arena.hpp>
#include <multiproc/error.hpp>
#include <multiproc/ids.hpp>

#include <atomic>
#include <cstring>
#include <new>
#include <string>

namespace multiproc {

using namespace detail::layout;
using detail::Heap;

namespace {

std::string quoted(std::string_view name) { return "\"" + std::string(name) + "\""; }

[[noreturn]] void corrupt(const char* who, const std::string& what) {
  throw Error(errc::bad_arena, std::string(who) + ": the arena's name directory is corrupt (" + what + ")");
}

/// A view of one mapping's directory.
class Directory {
 public:
  Directory(std::byte* base, std::uint64_t mapped) noexcept
      : base_(base), heap_(base, mapped), d_(reinterpret_cast<Layout*>(base)->dir) {}

  Heap& heap() noexcept { return heap_; }
  DirState& state() noexcept { return d_; }
  std::uint64_t offset(const void* p) const noexcept {
    return static_cast<std::uint64_t>(static_cast<const std::byte*>(p) - base_);
  }
  std::byte* at(std::uint64_t off) const noexcept { return base_ + off; }

  DirChunk& chunk(std::uint64_t c) noexcept { return *reinterpret_cast<DirChunk*>(base_ + c); }
  /// Entry i of page c (whose capacity was validated).
  DirEntry& entry(std::uint64_t c, std::uint64_t i) noexcept {
    return *reinterpret_cast<DirEntry*>(base_ + entry_offset(c, chunk(c).capacity, i));
  }
  std::uint64_t& hint(std::uint64_t c, std::uint64_t i) noexcept {
    return *reinterpret_cast<std::uint64_t*>(base_ + hint_offset(c, i));
  }

  /// Checks a page offset before anything in the page is read.
  void validate_chunk(std::uint64_t c, const char* who) {
    const std::uint64_t begin = heap_.heap_begin(), end = heap_.heap_end();
    if (c < begin + kBlockHeader || c % kGranule != 0 || c > end || end - c < sizeof(DirChunk))
      corrupt(who, "a directory page offset outside the heap: " + std::to_string(c));
    const DirChunk& k = chunk(c);
    if (k.magic != kChunkMagic) corrupt(who, "a directory page without its magic at offset " + std::to_string(c));
    if (k.capacity == 0 || k.capacity > kMaxChunkEntries || end - c < chunk_bytes(k.capacity))
      corrupt(who, "a directory page of impossible capacity at offset " + std::to_string(c));
  }

  /// Calls f(chunk offset) for each page, validated, in chain order; returns the page count.
  template <class F>
  std::uint32_t for_each_chunk(const char* who, F&& f) {
    const std::uint64_t limit = (heap_.heap_end() - heap_.heap_begin()) / chunk_bytes(kFirstChunkEntries) + 1;
    std::uint32_t n = 0;
    for (std::uint64_t c = d_.first_chunk; c != 0; c = chunk(c).next) {
      if (++n > limit) corrupt(who, "the directory's page chain has a cycle");
      validate_chunk(c, who);
      if (f(c)) break;
    }
    return n;
  }

  static void check_entry(const DirEntry& e, std::uint32_t st, const char* who) {
    if (st > kEntryDestroying) corrupt(who, "an entry in an unknown state " + std::to_string(st));
    if (st != kEntryFree && (e.name_len == 0 || e.name_len > Arena::kMaxName))
      corrupt(who, "an entry with a name of " + std::to_string(e.name_len) + " bytes");
  }

  struct Lookup {
    DirEntry* found = nullptr;
    std::uint64_t last_chunk = 0;
    std::uint32_t chunks = 0;
  };
  /// Under the directory lock: the entry named `name`, and the last page. A name is claimed
  /// at slot hash % capacity of the first page with room when that slot is free, so a first
  /// pass probes that one slot per page; a second pass scans all hints.
  Lookup lookup(std::string_view name, std::uint64_t hash, const char* who) {
    Lookup l;
    auto is_it = [&](std::uint64_t c, std::uint64_t i) {
      if (hint(c, i) != hash) return false;
      DirEntry& e = entry(c, i);
      const std::uint32_t st = e.state.load(std::memory_order_acquire);  // pairs with the actor's release
      check_entry(e, st, who);
      if (st == kEntryFree || e.name_len != name.size() || std::memcmp(e.name, name.data(), name.size()) != 0)
        return false;
      l.found = &e;
      return true;
    };
    l.chunks = for_each_chunk(who, [&](std::uint64_t c) {
      l.last_chunk = c;
      return is_it(c, hash % chunk(c).capacity);
    });
    if (l.found == nullptr) {
      for_each_chunk(who, [&](std::uint64_t c) {
        const std::uint64_t cap = chunk(c).capacity;
        for (std::uint64_t i = 0; i < cap; ++i)
          if (is_it(c, i)) return true;
        return false;
      });
    }
    return l;
  }
  /// Under the directory lock: a free entry (its page and index; the first free one from
  /// slot hash % capacity on, in the first page that has one), or {0, 0}.
  std::pair<std::uint64_t, std::uint64_t> free_entry(std::uint64_t hash, const char* who) {
    std::pair<std::uint64_t, std::uint64_t> hit{0, 0};
    for_each_chunk(who, [&](std::uint64_t c) {
      const std::uint64_t cap = chunk(c).capacity;
      for (std::uint64_t k = 0; k < cap; ++k) {
        const std::uint64_t i = (hash + k) % cap;
        DirEntry& e = entry(c, i);
        const std::uint32_t st = e.state.load(std::memory_order_acquire);
        check_entry(e, st, who);
        if (st == kEntryFree) {
          hit = {c, i};
          return true;
        }
      }
      return false;
    });
    return hit;
  }

  /// Under the directory lock: the ready entry whose object is at `off`, or nullptr.
  DirEntry* by_offset(std::uint64_t off, const char* who) {
    DirEntry* hit = nullptr;
    for_each_chunk(who, [&](std::uint64_t c) {
      for (std::uint64_t i = 0; i < chunk(c).capacity; ++i) {
        DirEntry& e = entry(c, i);
        const std::uint32_t st = e.state.load(std::memory_order_acquire);
        check_entry(e, st, who);
        if (st == kEntryReady && e.offset == off) {
          hit = &e;
          return true;
        }
      }
      return false;
    });
    return hit;
  }

  void init_chunk(std::uint64_t c, std::uint64_t capacity) noexcept {
    DirChunk& k = chunk(c);
    k.next = 0;
    k.capacity = capacity;
    k.reserved = 0;
    for (std::uint64_t i = 0; i < capacity; ++i) {
      hint(c, i) = 0;
      ::new (&entry(c, i)) DirEntry();
    }
    std::atomic_signal_fence(std::memory_order_seq_cst);  // entries complete before the magic says so
    k.magic = kChunkMagic;
  }
  static std::uint64_t capacity_after(std::uint32_t chunks) noexcept {
    return std::min<std::uint64_t>(kMaxChunkEntries, std::uint64_t{kFirstChunkEntries} << std::min<std::uint32_t>(chunks, 3));
  }
  /// Under the directory lock: links the pending page (initialising it first if needed).
  void link_pending(std::uint64_t last_chunk, std::uint32_t chunks) {
    const std::uint64_t p = d_.pending_chunk;
    if (last_chunk != 0) {
      chunk(last_chunk).next = p;
    } else {
      d_.first_chunk = p;
    }
    std::atomic_signal_fence(std::memory_order_seq_cst);  // linked before it stops being pending
    d_.pending_chunk = 0;
    (void)chunks;
  }

  /// Under the directory lock: a new page; returns it (its entry 0 is free).
  std::uint64_t grow(const Lookup& l, const char* who) {
    const std::uint64_t cap = capacity_after(l.chunks);
    heap_.allocate(chunk_bytes(cap), 64, offset(&d_.pending_chunk), kNamed, who);
    init_chunk(d_.pending_chunk, cap);
    const std::uint64_t c = d_.pending_chunk;
    link_pending(l.last_chunk, l.chunks);
    return c;
  }

  /// After owner_dead on the directory lock: finish or undo what the dead holder left.
  void repair(const char* who) {
    heap_.settle(who);  // a dead holder may have died inside the page's allocation
    const std::uint64_t p = d_.pending_chunk;
    if (p == 0) return;
    bool linked = false;
    std::uint64_t last = 0;
    const std::uint32_t chunks = for_each_chunk(who, [&](std::uint64_t c) {
      last = c;
      linked = linked || c == p;
      return false;
    });
    if (linked) {
      d_.pending_chunk = 0;
      return;
    }
    const std::uint64_t cap = capacity_after(chunks);
    if (!heap_.is_live(p, true, who) || heap_.heap_end() - p < chunk_bytes(cap)) {
      d_.pending_chunk = 0;  // not a page we allocated: drop the word (bad image)
      return;
    }
    init_chunk(p, cap);
    link_pending(last, chunks);
  }

 private:
  std::byte* base_;
  Heap heap_;
  DirState& d_;
};

/// Holds the directory lock; repairs after a dead holder.
class DirGuard {
 public:
  DirGuard(Directory& dir, const char* who) : dir_(dir) {
    RobustMutex& m = dir.state().lock;
    const LockResult r = m.lock(detail::arena_wait_deadline());
    if (r != LockResult::acquired && r != LockResult::owner_dead) detail::throw_lock_failure(r, who, "directory");
    held_ = true;
    if (r == LockResult::owner_dead) {
      try {
        dir.repair(who);
      } catch (...) {
        held_ = false;
        m.unlock();  // without make_consistent: unrepairable, so not recoverable for everyone
        throw;
      }
      m.make_consistent();
    }
  }
  ~DirGuard() { unlock(); }
  void unlock() noexcept {
    if (held_) dir_.state().lock.unlock();
    held_ = false;
  }

 private:
  Directory& dir_;
  bool held_ = false;
};

void check_type(const DirEntry& e, const detail::TypeTag& type, std::string_view name, const char* who) {
  if (e.type_hash == type.fingerprint && e.type_size == type.size && e.type_align == type.align) return;
  throw Error(errc::bad_arena, std::string(who) + ": " + quoted(name) + " holds another type (" +
                                   std::to_string(e.type_size) + " bytes, align " + std::to_string(e.type_align) +
                                   "), not " + std::string(type.name) + " (" + std::to_string(type.size) +
                                   " bytes, align " + std::to_string(type.align) + ")");
}

/// After this thread got `r` (acquired or owner_dead) on a busy entry's mutex: repairs what a
/// dead actor left (frees its block and the name). Unlocks. Throws if it cannot.
void settle_entry(Directory& dir, DirEntry& e, LockResult r, const char* who) {
  const std::uint32_t st = e.state.load(std::memory_order_acquire);
  const bool busy = st == kEntryConstructing || st == kEntryDestroying;
  if (r == LockResult::owner_dead) {
    if (busy) {
      const Heap::Freed f = dir.heap().deallocate_word(dir.offset(&e.offset), true);
      if (f == Heap::Freed::lock_failed || f == Heap::Freed::corrupt) {
        e.mutex.unlock();  // without make_consistent: the entry stays unusable, as it must
        throw Error(errc::bad_arena, std::string(who) + ": cannot free the memory of a dead process's half-built object");
      }
      // relaxed: only the offset's next writer (a claimer, after the release store below) reads it.
      std::atomic_ref<std::uint64_t>(e.offset).store(0, std::memory_order_relaxed);
      e.state.store(kEntryFree, std::memory_order_release);
      // relaxed: a statistic.
      std::atomic_ref<std::uint64_t>(dir.state().reclaimed).fetch_add(1, std::memory_order_relaxed);
    }
    e.mutex.make_consistent();
  } else if (busy) {
    e.mutex.unlock();
    corrupt(who, "a busy entry whose actor does not hold it");
  }
  e.mutex.unlock();
}

}  // namespace

void* Arena::named_impl(std::string_view name, const detail::TypeTag& type, NameMode mode, Construct fn, void* ctx) {
  const char* who = mode == NameMode::make ? "Arena::make" : mode == NameMode::find ? "Arena::find" : "Arena::find_or_make";
  if (name.empty() || name.size() > kMaxName)
    throw Error(std::make_error_code(std::errc::invalid_argument),
                std::string(who) + ": a name is 1 to 63 bytes; got " + std::to_string(name.size()));
  Directory dir(base_, mapped_);
  const std::uint64_t hash = detail::fnv1a(name);
  for (;;) {
    DirGuard guard(dir, who);
    const Directory::Lookup l = dir.lookup(name, hash, who);
    if (DirEntry* e = l.found) {
      const std::uint32_t st = e->state.load(std::memory_order_acquire);  // pairs with the actor's release
      if (st == kEntryReady) {
        if (mode == NameMode::make) throw Error(errc::name_exists, std::string(who) + ": " + quoted(name) + " already exists");
        check_type(*e, type, name, who);
        const std::uint64_t off = e->offset;
        if (off < dir.heap().heap_begin() || off % type.align != 0 || off > dir.heap().heap_end() ||
            dir.heap().heap_end() - off < type.size)
          corrupt(who, quoted(name) + " has an object offset outside the heap");
        return base_ + off;
      }
      // Busy: its actor holds the entry mutex (or died holding it).
      if (!mutex_mode_matches(e->mutex)) corrupt(who, "an entry lock in the other lock mode");
      if (e->mutex.held_by_this_thread())
        throw Error(std::make_error_code(std::errc::resource_deadlock_would_occur),
                    std::string(who) + ": " + quoted(name) + " is being constructed or destroyed by this very thread");
      if (mode == NameMode::make) {
        // Taken, unless its actor is dead: then repair and claim it after all.
        const LockResult r = e->mutex.try_lock();
        if (r == LockResult::timed_out)
          throw Error(errc::name_exists, std::string(who) + ": " + quoted(name) + " already exists (pid " +
                                             std::to_string(e->actor_pid) + " is constructing or destroying it)");
        if (r == LockResult::not_recoverable) detail::throw_lock_failure(r, who, "name entry");
        guard.unlock();
        settle_entry(dir, *e, r, who);
        continue;
      }
      guard.unlock();
      const LockResult r = e->mutex.lock(detail::arena_wait_deadline());  // sleeps until the actor is done
      if (r != LockResult::acquired && r != LockResult::owner_dead) detail::throw_lock_failure(r, who, "name entry");
      settle_entry(dir, *e, r, who);
      continue;
    }
    if (mode == NameMode::find) return nullptr;

    // Claim a free entry: fill it, take its mutex, then publish `constructing`.
    auto [page, index] = dir.free_entry(hash, who);
    if (page == 0) {
      page = dir.grow(l, who);
      index = hash % dir.chunk(page).capacity;
    }
    DirEntry* e = &dir.entry(page, index);
    if (!mutex_mode_matches(e->mutex)) corrupt(who, "an entry lock in the other lock mode");
    dir.hint(page, index) = hash;
    std::memcpy(e->name, name.data(), name.size());
    std::memset(e->name + name.size(), 0, sizeof e->name - name.size());
    e->name_len = static_cast<std::uint32_t>(name.size());
    e->name_hash = hash;
    e->type_hash = type.fingerprint;
    e->type_size = type.size;
    e->type_align = static_cast<std::uint32_t>(type.align);
    e->actor_pid = this_pid();
    std::atomic_ref<std::uint64_t>(e->offset).store(0, std::memory_order_relaxed);  // see settle_entry
    const LockResult r = e->mutex.lock(detail::arena_wait_deadline());
    if (r == LockResult::owner_dead) {
      e->mutex.make_consistent();  // someone died holding a free entry's mutex: nothing to repair
    } else if (r != LockResult::acquired) {
      detail::throw_lock_failure(r, who, "name entry");
    }
    // release: the filled fields are visible to whoever sees `constructing` (they read them
    // under the directory lock anyway).
    e->state.store(kEntryConstructing, std::memory_order_release);
    guard.unlock();

    const std::uint64_t offset_word = dir.offset(&e->offset);
    try {
      dir.heap().allocate(type.size, type.align < 16 ? 16 : type.align, offset_word, kNamed, who);
      fn(ctx, base_ + e->offset);
    } catch (...) {
      dir.heap().deallocate_word(offset_word, true);  // nothing if the allocation failed
      e->state.store(kEntryFree, std::memory_order_release);
      e->mutex.unlock();
      throw;
    }
    void* object = base_ + e->offset;
    // release: the constructor's writes happen-before any finder's acquire load of `ready`.
    e->state.store(kEntryReady, std::memory_order_release);
    e->mutex.unlock();
    return object;
  }
}

Arena::DestroyTicket Arena::begin_destroy(void* object, const detail::TypeTag& type) {
  const char* who = "Arena::destroy";
  Directory dir(base_, mapped_);
  if (!contains(object))
    throw Error(errc::bad_arena, std::string(who) + ": the object is not in this arena's mapping");
  const std::uint64_t off = offset_of(object);
  {
    DirGuard guard(dir, who);
    if (DirEntry* e = dir.by_offset(off, who)) {
      const std::string_view name(e->name, e->name_len);
      check_type(*e, type, name, who);
      if (!mutex_mode_matches(e->mutex)) corrupt(who, "an entry lock in the other lock mode");
      const LockResult r = e->mutex.lock(detail::arena_wait_deadline());
      if (r == LockResult::owner_dead) {
        e->mutex.make_consistent();  // a finder died holding it briefly; the entry is ready
      } else if (r != LockResult::acquired) {
        detail::throw_lock_failure(r, who, "name entry");
      }
      e->actor_pid = this_pid();
      e->state.store(kEntryDestroying, std::memory_order_release);  // finders now wait for us
      return {dir.offset(e), off};
    }
  }
  if (!dir.heap().is_live(off, false, who))
    throw Error(errc::bad_arena, std::string(who) + ": the object at offset " + std::to_string(off) +
                                     " is not a live object of this arena (destroyed twice?)");
  return {0, off};
}

void Arena::cancel_destroy(const DestroyTicket& t) noexcept {
  if (t.entry == 0) return;
  auto& e = *reinterpret_cast<DirEntry*>(base_ + t.entry);
  e.state.store(kEntryReady, std::memory_order_release);
  e.mutex.unlock();
}

void Arena::end_destroy(const DestroyTicket& t) noexcept {
  Heap heap(base_, mapped_);
  if (t.entry == 0) {
    if (heap.deallocate(t.block, false) != Heap::Freed::freed) heap.count_invalid_free();
    return;
  }
  auto& e = *reinterpret_cast<DirEntry*>(base_ + t.entry);
  if (heap.deallocate_word(t.entry + offsetof(DirEntry, offset), true) != Heap::Freed::freed)
    heap.count_invalid_free();  // the block leaks; the name is freed all the same
  std::atomic_ref<std::uint64_t>(e.offset).store(0, std::memory_order_relaxed);  // see settle_entry
  e.state.store(kEntryFree, std::memory_order_release);
  e.mutex.unlock();
}

Arena::Stats Arena::stats() const {
  Directory dir(base_, mapped_);
  Stats s;
  {
    DirGuard guard(dir, "Arena::stats");
    dir.for_each_chunk("Arena::stats", [&](std::uint64_t c) {
      for (std::uint64_t i = 0; i < dir.chunk(c).capacity; ++i)
        if (dir.entry(c, i).state.load(std::memory_order_acquire) == kEntryReady) ++s.named_objects;
      return false;
    });
  }
  Heap::Walk w;
  if (const std::string problem = dir.heap().check(&w); !problem.empty())
    throw Error(errc::bad_arena, "Arena::stats: " + problem);
  s.heap_bytes = heap_bytes_;
  s.used_bytes = w.allocated_bytes;
  s.free_bytes = w.free_bytes;
  s.free_blocks = w.free_blocks;
  s.largest_free_block = w.largest_free;
  s.allocated_blocks = w.allocated_blocks;
  s.invalid_deallocations = dir.heap().invalid_frees();
  s.lock_recoveries = dir.heap().recoveries();
  s.reclaimed_names = std::atomic_ref<std::uint64_t>(dir.state().reclaimed).load(std::memory_order_relaxed);
  return s;
}

void Arena::check() const {
  const char* who = "Arena::check";
  Directory dir(base_, mapped_);
  DirGuard guard(dir, who);
  if (dir.state().pending_chunk != 0) corrupt(who, "a directory page left pending outside a call");
  dir.for_each_chunk(who, [&](std::uint64_t c) {
    if (!dir.heap().is_live(c, true, who)) corrupt(who, "a directory page that is not a live named block");
    for (std::uint64_t i = 0; i < dir.chunk(c).capacity; ++i) {
      DirEntry& e = dir.entry(c, i);
      const std::uint32_t st = e.state.load(std::memory_order_acquire);
      Directory::check_entry(e, st, who);
      if (st == kEntryReady && !dir.heap().is_live(e.offset, true, who))
        corrupt(who, "named object " + quoted(std::string_view(e.name, e.name_len)) + " is not a live named block");
    }
    return false;
  });
  if (const std::string problem = dir.heap().check(nullptr); !problem.empty())
    throw Error(errc::bad_arena, std::string(who) + ": the allocator is inconsistent: " + problem);
}

}  // namespace multiproc
