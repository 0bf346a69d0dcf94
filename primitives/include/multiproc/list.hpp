// multiproc/list.hpp — List<T>: a fixed-capacity array list in shared memory under one robust
// lock (what Python's Manager().list() is for).
//
// What it guarantees
//   * Every call is atomic: it takes the list's lock (a core RobustMutex), does its work on the
//     elements, and releases it. Element reads return copies (T is trivially copyable).
//   * Capacity is exact: `capacity` elements fit; push_back beyond throws Error(out_of_memory).
//     Indexing outside [0, size()) throws Error(std::errc::result_out_of_range).
//   * A process killed inside any call leaves the list usable, every element either as before
//     the call or as the call leaves it:
//       push_back writes the element past the end, then publishes it by storing size+1;
//       pop_back is one store of size-1;
//       set(i, v) first writes v and i to a one-element redo log and marks it active (release),
//       then copies v into place, then clears the mark. The next locker of a lock whose holder
//       died (owner_dead) replays an active log (idempotent), then calls make_consistent().
//   * A corrupted header (magic, check word) or size above capacity is Error(bad_arena), never
//     an access outside the list's own memory.
//
// Waiting strategy: the RobustMutex's (a short spin, then FUTEX_WAIT). size() is a relaxed
// snapshot without the lock. for_each copies the elements under the lock and calls fn on the
// copy after releasing it, so fn may use the list.
//
// Layout: the List object (128 bytes, standard layout, no pointers) holds the geometry, a check
// word, the lock, size and the log's index; the storage it points to by self-relative offset is
// [log element][capacity elements], each element rounded to alignof(T), 64-byte aligned.
#pragma once

#include <multiproc/arena.hpp>
#include <multiproc/error.hpp>
#include <multiproc/robust_mutex.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <type_traits>
#include <vector>

namespace multiproc {

namespace detail {

/// The untyped part of List: geometry, validation, the lock and its repair.
class ListCore {
 public:
  ListCore(const ListCore&) = delete;
  ListCore& operator=(const ListCore&) = delete;

  std::size_t capacity() const noexcept { return capacity_; }
  /// A snapshot of the number of elements (no lock). A corrupted image reads as 0.
  std::size_t size() const noexcept {
    if (magic_ != kMagic || check_ != checksum()) return 0;
    const std::uint64_t s = size_.load(std::memory_order_relaxed);
    return static_cast<std::size_t>(s < capacity_ ? s : capacity_);
  }
  static std::size_t storage_bytes_for(std::size_t elem_size, std::size_t capacity);

 protected:
  ListCore(std::size_t elem_size, std::size_t capacity);
  ~ListCore() = default;

  void attach(void* storage, std::size_t bytes);
  std::size_t own_storage_bytes() const noexcept { return static_cast<std::size_t>(storage_bytes_); }
  void* storage_address() const noexcept;

  /// Holds the lock (repaired if its last holder died) and a validated view of the storage.
  class Guard {
   public:
    Guard(const ListCore& list, std::size_t elem_size) : list_(list) {
      base_ = list.lock(elem_size);
    }
    ~Guard() { list_.mutex_.unlock(); }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    std::byte* element(std::size_t i) const noexcept { return base_ + (i + 1) * list_.elem_size_; }
    std::byte* log() const noexcept { return base_; }

   private:
    const ListCore& list_;
    std::byte* base_;
  };

  /// Locks, repairs, validates size; returns the storage base. Throws Error(bad_arena) or
  /// Error(not_recoverable).
  std::byte* lock(std::size_t elem_size) const;
  /// Size under the lock (validated by lock()).
  std::uint64_t locked_size() const noexcept { return size_.load(std::memory_order_relaxed); }
  void publish_size(std::uint64_t n) const noexcept {
    // release: pairs with nothing that needs it today (readers take the lock); kept so that a
    // lock-free size() observer who sees n also sees the element that made it n.
    size_.store(n, std::memory_order_release);
  }
  void set_logged(const Guard& g, std::size_t i, const void* value) const noexcept;

  [[noreturn]] void full() const;
  [[noreturn]] void out_of_range(const char* op, std::size_t i, std::size_t size) const;

 private:
  static constexpr std::uint64_t kMagic = 0x3130'5453'494c'504dull;  // "MPLIST01"
  std::uint64_t checksum() const noexcept;
  [[noreturn]] void bad(const char* why) const;

  // Immutable after attach(); covered by check_.
  std::uint64_t magic_ = 0;
  std::uint64_t elem_size_ = 0;   // sizeof(T) rounded up to alignof(T)
  std::uint64_t capacity_ = 0;
  std::int64_t storage_offset_ = 0;  // storage address minus this object's address
  std::uint64_t storage_bytes_ = 0;
  std::uint64_t check_ = 0;
  // Shared state, written under the lock.
  mutable std::atomic<std::uint64_t> size_{0};
  mutable std::atomic<std::uint32_t> log_active_{0};
  [[maybe_unused]] std::uint32_t reserved_ = 0;
  mutable std::uint64_t log_index_ = 0;
  [[maybe_unused]] std::uint64_t reserved1_ = 0;
  mutable RobustMutex mutex_;
};

}  // namespace detail

/// A fixed-capacity list of trivially copyable T shared by processes; see the top of this file.
template <class T>
  requires std::is_trivially_copyable_v<T>
class List : private detail::ListCore {
  static constexpr std::size_t kElem = (sizeof(T) + alignof(T) - 1) / alignof(T) * alignof(T);
  static_assert(alignof(T) <= 64, "List<T>: T's alignment must be at most 64");

 public:
  using value_type = T;

  /// A List of `capacity` elements whose storage is allocated in `arena` (Arena::make passes it).
  List(Arena& arena, std::size_t capacity) : ListCore(kElem, capacity) {
    void* storage = arena.allocate(own_storage_bytes(), 64);
    attach(storage, own_storage_bytes());
  }
  /// A List over `storage` (storage_bytes(capacity) bytes, 64-byte aligned, in the same
  /// mapping as the List object), for MAP_SHARED memory outside an Arena.
  List(void* storage, std::size_t bytes, std::size_t capacity) : ListCore(kElem, capacity) { attach(storage, bytes); }
  static std::size_t storage_bytes(std::size_t capacity) { return storage_bytes_for(kElem, capacity); }
  /// Called by Arena::destroy: gives the storage back to the arena.
  void arena_release(Arena& arena) noexcept { arena.deallocate(storage_address()); }

  /// Appends v. Throws Error(out_of_memory) when size() == capacity().
  void push_back(const T& v) {
    const Guard g(*this, kElem);
    const std::uint64_t n = locked_size();
    if (n >= capacity()) full();
    std::memcpy(g.element(n), &v, sizeof(T));
    publish_size(n + 1);
  }

  /// Removes and returns the last element; nullopt when empty.
  std::optional<T> pop_back() {
    const Guard g(*this, kElem);
    const std::uint64_t n = locked_size();
    if (n == 0) return std::nullopt;
    T v;
    std::memcpy(static_cast<void*>(&v), g.element(n - 1), sizeof(T));
    publish_size(n - 1);
    return v;
  }

  /// A copy of element i. Throws Error(std::errc::result_out_of_range) unless i < size().
  T operator[](std::size_t i) const {
    const Guard g(*this, kElem);
    const std::uint64_t n = locked_size();
    if (i >= n) out_of_range("List::operator[]", i, n);
    T v;
    std::memcpy(static_cast<void*>(&v), g.element(i), sizeof(T));
    return v;
  }

  /// Replaces element i (atomically: a process killed inside leaves the old or the new value).
  /// Throws Error(std::errc::result_out_of_range) unless i < size().
  void set(std::size_t i, const T& v) {
    const Guard g(*this, kElem);
    const std::uint64_t n = locked_size();
    if (i >= n) out_of_range("List::set", i, n);
    set_logged(g, i, &v);
  }

  /// Calls fn(const T&) on each element of a copy taken under the lock, in order; the lock
  /// is not held while fn runs.
  template <class F>
  void for_each(F fn) const {
    static_assert(std::is_invocable_v<F&, const T&>, "List::for_each: fn must be callable as fn(const T&)");
    for (const T& v : snapshot()) fn(v);
  }

  /// All elements, copied under the lock.
  std::vector<T> snapshot() const {
    std::vector<T> out;
    const Guard g(*this, kElem);  // validates size against capacity
    const std::uint64_t n = locked_size();
    out.resize(static_cast<std::size_t>(n));
    for (std::size_t i = 0; i < n; ++i) std::memcpy(static_cast<void*>(&out[i]), g.element(i), sizeof(T));
    return out;
  }

  using ListCore::capacity;
  using ListCore::size;
  bool empty() const noexcept { return size() == 0; }
};

}  // namespace multiproc
