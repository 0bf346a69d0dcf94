// multiproc/arena.hpp — a memfd-backed shared heap with a name directory, usable from any
// number of processes at once, each mapping it at its own address.
//
// What it guarantees
//   * Storage: one memfd (memfd_create, MFD_CLOEXEC | MFD_ALLOW_SEALING) sealed with
//     F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL, mapped MAP_SHARED. Nobody can truncate it under
//     a peer (which would SIGBUS the peer) and every mapping covers all of it. Children made by
//     fork() inherit the mapping; an unrelated process receives fd() (Connection::send_fd) and
//     calls Arena::from_fd, which validates everything before it trusts anything.
//   * Position independence: everything inside is an offset from the arena's first byte, never
//     a pointer, so one arena mapped at two addresses (two processes, or from_fd twice in one
//     process) is the same set of objects. Objects you put in it must follow the same rule:
//     store offsets (`offset_of`/`at`) or self-relative `offset_ptr<T>` (offset_ptr.hpp).
//   * Allocator: allocate/deallocate from any number of processes, alignment up to 4096, freed
//     space reused with immediate coalescing, Error(out_of_memory) exactly when no free block can
//     hold the request (the precise rule is under "Allocator" below). A process SIGKILLed in the
//     middle of a call cannot corrupt it (see "Crash consistency").
//   * Names: make / find / find_or_make / destroy are safe when several processes call them at
//     once: racing find_or_make("x") calls construct one object exactly once and none of them
//     sees it half-built. The directory records each object's size, alignment and a fingerprint
//     of its type, so find<Wrong>("x") throws instead of reinterpreting bytes.
//
// Layout of the memfd (all offsets from byte 0; sizes are this version's)
//   [0, 64)            header: magic "MPARENA1", layout version, lock mode, total size, heap
//                      bounds, FNV-1a checksum of those fields. Immutable after create.
//   [64, kHeaderBytes) allocator state (robust lock, undo log, TLSF bitmaps and list heads) and
//                      directory state (robust lock, first directory page). ~7 KiB, page rounded.
//   [kHeaderBytes, end) the heap: blocks with a 16-byte header each. Directory pages (8, 16, 32,
//                      then 64 entries of 160 bytes plus an 8-byte name-hash hint each) are
//                      allocated from it on demand, so they count in used().
//
// Allocator (alloc/src/allocator.cpp): TLSF-style segregated fits with immediate coalescing.
//   Why not size classes: a size-class allocator cannot give a 4 KiB request the memory freed
//   by a thousand 16-byte blocks, so "out of memory" would depend on history; here freed
//   neighbours merge at once and out_of_memory has a precise meaning:
//     A block is [b, b + s) with a 16-byte header; its payload starts at b + 16. A request
//     (n, align) needs a payload of round_up(max(n, 1), 16) bytes at an address that is a
//     multiple of max(align, 16). It *fits* a free block [b, b + s) when some such payload
//     address p has p - 16 - b == 0 or >= 32 (a gap in front becomes a free block of its own)
//     and p + payload <= b + s. A tail left over that is shorter than 32 bytes stays in the
//     block. allocate throws out_of_memory iff no free block fits.
//   Cost: O(1) list lookups with two bitmap scans (TLSF "good fit": the class searched is
//   rounded up so that any block found fits), no system call; only when that finds nothing does
//   an exact scan of the one boundary class (or, for align > 16, all classes) decide, so the
//   rule above holds exactly. Uncontended allocate + deallocate: ~70 ns for the pair on a
//   2-vCPU VM, half of it the two lock/unlock pairs (bench-arena: 1.4x faster than
//   Boost.Interprocess's managed_shared_memory, ~9x slower than glibc's thread-cached malloc).
//
// Crash consistency. The allocator's bookkeeping is guarded by a core RobustMutex that lives in
//   the arena. Every store the allocator makes to shared bookkeeping goes through an undo log in
//   the arena: (word offset, old value) is written and the log length bumped *before* the word
//   changes; clearing the length is the commit. A process that dies holding the lock leaves the
//   lock owner_dead; the next locker replays the log backwards (restoring the state before the
//   interrupted call), clears it, and calls make_consistent(). Replay is idempotent, so a
//   recoverer that dies too is recovered by the next one. By induction the bookkeeping is always
//   the state after some complete sequence of calls. Only program order matters for a dying
//   thread's stores (compiler fences keep it); the kernel's robust-futex death handling orders
//   them before the next owner's acquire.
//   The directory: each entry's transitions (free -> constructing -> ready -> destroying ->
//   free) are single atomic stores, and an entry's actor holds the entry's own RobustMutex for
//   as long as the entry is constructing or destroying. Waiters block on that mutex (kernel futex
//   wait, no polling); if the actor dies, the kernel hands the mutex to a waiter with owner_dead,
//   and the waiter frees the half-built object's memory and frees the name. A name is never
//   wedged by a dead constructor (nor by a dead destroyer). The object's offset is published
//   into its entry in the allocation's own logged step, so a death never loses track of it.
//   Details: alloc/src/directory.cpp.
//
// Directory lookups: under the directory lock, a probe of slot hash % capacity in each page
//   (where names are placed when that slot is free), then a scan of the pages' 8-byte hash
//   hints. ~45 ns for a hit among 100 names (Boost's rbtree find: ~67 ns). Keep the reference a
//   lookup returns rather than looking a name up per operation.
//
// Trust. from_fd refuses anything that is not an intact arena, and every offset read from the
//   arena is bounds-checked before it is followed, so a damaged arena (a bug in a peer, a bad
//   image) yields Error(bad_arena), not a wild access; check() walks everything. A peer that can
//   write the arena is still trusted in one respect, as with any robust mutex in shared memory
//   (pthread's included): the links of a lock held by this thread live in the arena, and a peer
//   that deliberately overwrites them while it is held can crash this thread's next unlock.
//
// Waiting strategy. Allocator and directory locks: RobustMutex (one CAS uncontended; a bounded
//   spin then FUTEX_WAIT). Waiting for a name under construction: blocking lock of the entry's
//   RobustMutex, which sleeps in the kernel until the constructor finishes or dies.
//
// Memory ordering. Lock acquire/release order all bookkeeping. An entry becomes ready with a
//   release store after the constructor returned; finders read the state with an acquire load,
//   so a found object is fully constructed. Objects you share need their own synchronisation
//   for later changes. used() is a relaxed snapshot.
//
// Limits. Names are 1..63 bytes (kMaxName), any bytes. Alignment: a power of two up to 4096
//   (kMaxAlign: the arena's base is page aligned). Heap size up to 2^47 bytes. The memfd is not
//   pre-faulted: memory is committed as pages are first touched. Every process sharing an arena
//   must use the same RobustMutex mode (MULTIPROC_LOCK_FALLBACK); from_fd checks it. Type
//   fingerprints hash the compiler's spelling of the type: share named objects of types like
//   `unsigned long` only between processes built by the same compiler.
#pragma once

#include <multiproc/error.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <string_view>
#include <type_traits>
#include <utility>

namespace multiproc {

class Arena;

namespace detail {

/// FNV-1a, 64-bit: the arena's header checksum, name hashes and type fingerprints.
constexpr std::uint64_t fnv1a(std::string_view s, std::uint64_t h = 14695981039346656037ull) noexcept {
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

/// The compiler's spelling of T ("Point", "std::atomic<int>"), from __PRETTY_FUNCTION__.
/// gcc and clang spell some types differently ("long unsigned int" / "unsigned long"):
/// processes sharing named objects of such types should be built by the same compiler.
template <class T>
constexpr std::string_view type_name() noexcept {
  std::string_view f = __PRETTY_FUNCTION__;
  const std::size_t start = f.find("T = ");
  if (start == std::string_view::npos) return f;
  f.remove_prefix(start + 4);
  std::size_t end = f.find(';');
  if (end == std::string_view::npos) end = f.rfind(']');
  return f.substr(0, end);
}

/// What the directory records about an object's type.
struct TypeTag {
  std::uint64_t fingerprint;  // fnv1a(type_name<T>())
  std::uint64_t size;
  std::uint64_t align;
  std::string_view name;
};
template <class T>
inline constexpr TypeTag type_tag_v{fnv1a(type_name<T>()), sizeof(T), alignof(T), type_name<T>()};

/// A type that allocated arena memory of its own (a queue's slots) gives it back here;
/// Arena::destroy calls it before the destructor.
template <class T>
concept ArenaReleasable = requires(T& t, Arena& a) { t.arena_release(a); };

/// Testing hook (the fuzzer): bounds every wait for an arena lock or a busy name; past the limit
/// the call throws Error(errc::timeout). Negative (the default): wait as long as it takes.
void set_arena_wait_limit(std::chrono::nanoseconds limit) noexcept;

}  // namespace detail

class Arena {
 public:
  static constexpr std::size_t kMaxAlign = 4096;   // largest alignment allocate/make accept
  static constexpr std::size_t kMaxName = 63;      // longest name, in bytes
  static constexpr std::size_t kBlockOverhead = 16;  // header bytes per allocated block

  /// A new arena whose heap holds at least `bytes` (size() >= bytes; rounded up to pages).
  /// `label` names the memfd (/proc/PID/fd shows "memfd:label"). Throws Error for a size
  /// above 2^47 (out_of_memory) or a failing memfd_create/ftruncate/mmap (the errno).
  static Arena create(std::size_t bytes, std::string_view label = "multiproc");

  /// Maps the arena behind `fd` (which stays the caller's: it is dup()ed). Validates that it is
  /// a memfd sealed against growing and shrinking, its size, the header's magic, version,
  /// checksum and bounds, and that its locks were made in this process's lock mode. Anything
  /// else throws Error(bad_arena) naming the reason, e.g.
  ///   "Arena::from_fd: fd 7 is not a multiproc arena (bad magic)".
  static Arena from_fd(int fd);

  Arena(Arena&& other) noexcept;
  Arena& operator=(Arena&& other) noexcept;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  /// Unmaps this process's mapping and closes its fd. The arena and its objects live on in
  /// every other process (and fd) that has it.
  ~Arena();

  int fd() const noexcept { return fd_; }
  /// Heap bytes (what allocations share; the header is not counted).
  std::size_t size() const noexcept { return heap_bytes_; }
  /// Heap bytes in allocated blocks, block headers and directory pages included. A relaxed
  /// snapshot: other processes may be allocating.
  std::size_t used() const noexcept;

  // ---- named objects -------------------------------------------------------------------
  // A T whose constructor takes `Arena&` first gets this arena: make<Queue<Job>>("jobs", 1024)
  // calls Queue<Job>(arena, 1024). T must be an object type aligned to at most kMaxAlign that
  // stores no pointers into the arena (offsets or offset_ptr instead).

  /// Constructs a T named `name`. Throws Error(name_exists) if the name is taken (ready or
  /// being built), Error(out_of_memory), std::errc::invalid_argument for a bad name, and
  /// whatever T's constructor throws (then nothing is left behind).
  template <class T, class... A>
  T& make(std::string_view name, A&&... args) {
    return *static_cast<T*>(named<T>(name, NameMode::make, std::forward<A>(args)...));
  }

  /// The T named `name`, or nullptr. Blocks while another process is constructing or destroying
  /// it. Throws Error(bad_arena) if the name holds another type.
  template <class T>
  T* find(std::string_view name) {
    return static_cast<T*>(named_impl(name, detail::type_tag_v<T>, NameMode::find, nullptr, nullptr));
  }

  /// find, else make. Racing callers in any number of processes get the same object, which is
  /// constructed once; all of them return only once it is fully constructed.
  template <class T, class... A>
  T& find_or_make(std::string_view name, A&&... args) {
    return *static_cast<T*>(named<T>(name, NameMode::find_or_make, std::forward<A>(args)...));
  }

  /// A T without a name (reach it through an offset or offset_ptr). Error(out_of_memory).
  template <class T, class... A>
  T& make_anonymous(A&&... args) {
    static_assert_object<T>();
    void* p = allocate(sizeof(T), alignof(T));
    try {
      construct_in<T>(p, std::forward<A>(args)...);
    } catch (...) {
      deallocate(p);
      throw;
    }
    return *std::launder(static_cast<T*>(p));
  }

  /// Destroys an object made by make/find_or_make/make_anonymous and frees its memory; a named
  /// one's name becomes free. Calls object.arena_release(*this) first if T has it. Throws
  /// Error(bad_arena) if `object` is not such an object of this arena or was named with
  /// another type (anonymous objects carry no type record: destroy them as the type made).
  /// Destroying an object others still use is the caller's bug, as with delete.
  template <class T>
  void destroy(T& object) {
    const DestroyTicket ticket = begin_destroy(std::addressof(object), detail::type_tag_v<T>);
    if constexpr (detail::ArenaReleasable<T>) {
      try {
        object.arena_release(*this);
      } catch (...) {
        cancel_destroy(ticket);
        throw;
      }
    }
    std::destroy_at(std::addressof(object));
    end_destroy(ticket);
  }

  // ---- raw memory -----------------------------------------------------------------------

  /// `bytes` of arena memory aligned to `align` (a power of two <= kMaxAlign, else
  /// std::errc::invalid_argument). Error(out_of_memory) iff no free block fits (see the top of
  /// this file). Never makes a system call; blocks only while another thread holds the lock.
  void* allocate(std::size_t bytes, std::size_t align = alignof(std::max_align_t));

  /// Frees a block from allocate (nullptr: no-op). Validates first: a pointer that is not the
  /// start of a live anonymous block of this mapping (a foreign pointer, an interior pointer, a
  /// double free noticed as such, a named object's memory) changes nothing and is counted in
  /// stats().invalid_deallocations. (Not std::abort: a stray pointer from one process must not
  /// kill the process, and it must not corrupt a heap other processes depend on either.)
  void deallocate(void* p) noexcept;

  // ---- offsets: how objects in the arena refer to each other -----------------------------
  // An offset is a distance from the arena's first byte; it means the same in every mapping.
  // Offset 0 is the header, never an object: use 0 as "null".

  /// This mapping's first byte.
  void* base() const noexcept { return base_; }
  /// Bytes mapped (header + heap).
  std::size_t mapped_size() const noexcept { return mapped_; }
  /// Whether p points into this mapping.
  bool contains(const void* p) const noexcept {
    const auto* c = static_cast<const std::byte*>(p);
    return c >= base_ && c < base_ + mapped_;
  }
  /// The offset of p, which must point into this mapping (else std::errc::invalid_argument).
  std::uint64_t offset_of(const void* p) const {
    if (!contains(p)) bad_pointer(p);
    return static_cast<std::uint64_t>(static_cast<const std::byte*>(p) - base_);
  }
  /// The object at `offset` in this mapping. Throws std::errc::invalid_argument unless
  /// [offset, offset + sizeof(T)) lies inside the mapping. Does not check what lives there.
  template <class T = void>
  T* at(std::uint64_t offset) const {
    constexpr std::size_t n = std::is_void_v<T> ? 1 : sizeof(std::conditional_t<std::is_void_v<T>, char, T>);
    if (offset > mapped_ || mapped_ - offset < n) bad_offset(offset);
    return reinterpret_cast<T*>(base_ + offset);
  }

  // ---- diagnostics ----------------------------------------------------------------------
  struct Stats {
    std::size_t heap_bytes = 0;             // size()
    std::size_t used_bytes = 0;             // used()
    std::size_t free_bytes = 0;             // in free blocks (headers included)
    std::size_t free_blocks = 0;
    std::size_t largest_free_block = 0;     // a block of s bytes holds payloads up to s - 16
    std::size_t allocated_blocks = 0;       // directory pages included
    std::size_t named_objects = 0;          // ready names
    std::size_t invalid_deallocations = 0;  // refused deallocate calls, all processes
    std::size_t lock_recoveries = 0;        // allocator calls of dead processes rolled back
    std::size_t reclaimed_names = 0;        // names freed after their constructor/destroyer died
  };
  /// A consistent snapshot (takes the locks, walks the heap).
  Stats stats() const;

  /// Walks every block, free list, bitmap and directory page and checks they agree (sizes,
  /// boundary tags, coalescing, list links, used() and named objects' blocks). Throws
  /// Error(bad_arena) naming the first inconsistency. O(blocks); for tests and debugging.
  void check() const;

 private:
  enum class NameMode : std::uint8_t { make, find, find_or_make };
  using Construct = void (*)(void* ctx, void* storage);
  struct DestroyTicket {
    std::uint64_t entry;  // offset of the directory entry (0: an anonymous object)
    std::uint64_t block;  // payload offset
  };

  Arena(int fd, std::byte* base, std::size_t mapped, std::size_t heap_bytes) noexcept
      : fd_(fd), base_(base), mapped_(mapped), heap_bytes_(heap_bytes) {}

  template <class T>
  static constexpr void static_assert_object() {
    static_assert(std::is_object_v<T> && !std::is_array_v<T>, "arena objects are complete, non-array object types");
    static_assert(alignof(T) <= kMaxAlign, "arena objects are aligned to at most 4096 bytes (the arena's page alignment)");
  }

  template <class T, class... A>
  void construct_in(void* storage, A&&... args) {
    if constexpr (std::is_constructible_v<T, Arena&, A&&...>) {
      ::new (storage) T(*this, std::forward<A>(args)...);
    } else {
      static_assert(std::is_constructible_v<T, A&&...>, "T is constructible neither from (Arena&, args...) nor from (args...)");
      ::new (storage) T(std::forward<A>(args)...);
    }
  }

  template <class T, class... A>
  void* named(std::string_view name, NameMode mode, A&&... args) {
    static_assert_object<T>();
    auto construct = [&](void* storage) { construct_in<T>(storage, std::forward<A>(args)...); };
    using C = decltype(construct);
    return named_impl(name, detail::type_tag_v<T>, mode, [](void* ctx, void* storage) { (*static_cast<C*>(ctx))(storage); },
                      &construct);
  }

  // directory.cpp
  void* named_impl(std::string_view name, const detail::TypeTag& type, NameMode mode, Construct fn, void* ctx);
  DestroyTicket begin_destroy(void* object, const detail::TypeTag& type);
  void cancel_destroy(const DestroyTicket& ticket) noexcept;
  void end_destroy(const DestroyTicket& ticket) noexcept;

  [[noreturn]] void bad_pointer(const void* p) const;
  [[noreturn]] void bad_offset(std::uint64_t offset) const;

  int fd_ = -1;
  std::byte* base_ = nullptr;
  std::size_t mapped_ = 0;
  std::size_t heap_bytes_ = 0;
};

}  // namespace multiproc
