// multiproc/offset_ptr.hpp — a self-relative pointer for linked structures in shared memory.
//
// An offset_ptr<T> stores the distance from its own address to the target, so a structure
// built in an Arena (or any MAP_SHARED memory) stays valid in every process, whatever address
// each one maps it at, as long as the pointer and its target are in the same mapping.
//
// Guarantees and limits
//   * 8 bytes, standard layout; `get()` is one add. Null is stored as 1 (the byte right after
//     the pointer's own first byte, which can never be a meaningful target).
//   * Copying re-bases: `b = a` makes b point where a points, from b's own address. So it is NOT
//     trivially copyable: memcpy'ing an offset_ptr to another address changes its target (one
//     reason Queue<T> refuses it). Copy it by assignment, or store a plain arena offset
//     (Arena::offset_of / Arena::at) in messages.
//   * Not atomic: publish a structure with your own synchronisation (a Lock, a release store of
//     an index) like any other shared data. For a lock-free link use
//     std::atomic<std::int64_t> holding a self-relative distance, or an arena offset.
//   * Both ends must live in the same mapping: an offset_ptr in one arena cannot point into
//     another arena or into process-private memory (the result would be meaningless in peers).
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace multiproc {

template <class T>
class offset_ptr {
 public:
  using element_type = T;
  using difference_type = std::ptrdiff_t;

  offset_ptr() noexcept = default;
  offset_ptr(std::nullptr_t) noexcept {}
  offset_ptr(T* p) noexcept { set(p); }  // NOLINT: implicit like a raw pointer
  offset_ptr(const offset_ptr& other) noexcept { set(other.get()); }
  template <class U>
    requires std::is_convertible_v<U*, T*>
  offset_ptr(const offset_ptr<U>& other) noexcept {  // NOLINT
    set(other.get());
  }

  offset_ptr& operator=(const offset_ptr& other) noexcept {
    set(other.get());
    return *this;
  }
  offset_ptr& operator=(T* p) noexcept {
    set(p);
    return *this;
  }
  offset_ptr& operator=(std::nullptr_t) noexcept {
    delta_ = kNull;
    return *this;
  }

  /// The target in this process's mapping (nullptr when null).
  T* get() const noexcept {
    if (delta_ == kNull) return nullptr;
    return reinterpret_cast<T*>(reinterpret_cast<std::uintptr_t>(this) + static_cast<std::uintptr_t>(delta_));
  }
  template <class U = T>
    requires(!std::is_void_v<U>)
  U& operator*() const noexcept {
    return *get();
  }
  T* operator->() const noexcept { return get(); }
  template <class U = T>
    requires(!std::is_void_v<U>)
  U& operator[](std::ptrdiff_t i) const noexcept {
    return get()[i];
  }
  explicit operator bool() const noexcept { return delta_ != kNull; }
  operator T*() const noexcept { return get(); }  // NOLINT: reads like a raw pointer

  /// Pointer arithmetic on the target (T must be an object type).
  offset_ptr& operator+=(std::ptrdiff_t n) noexcept {
    set(get() + n);
    return *this;
  }
  offset_ptr& operator-=(std::ptrdiff_t n) noexcept {
    set(get() - n);
    return *this;
  }
  offset_ptr& operator++() noexcept { return *this += 1; }
  offset_ptr& operator--() noexcept { return *this -= 1; }

  friend bool operator==(const offset_ptr& a, const offset_ptr& b) noexcept { return a.get() == b.get(); }
  friend bool operator==(const offset_ptr& a, std::nullptr_t) noexcept { return !a; }
  friend bool operator==(const offset_ptr& a, const T* b) noexcept { return a.get() == b; }
  friend auto operator<=>(const offset_ptr& a, const offset_ptr& b) noexcept { return a.get() <=> b.get(); }

  /// The stored distance (1 means null). For debugging.
  std::ptrdiff_t raw() const noexcept { return delta_; }

 private:
  static constexpr std::ptrdiff_t kNull = 1;
  void set(T* p) noexcept {
    delta_ = p == nullptr ? kNull
                          : static_cast<std::ptrdiff_t>(reinterpret_cast<std::uintptr_t>(p) -
                                                        reinterpret_cast<std::uintptr_t>(this));
  }

  std::ptrdiff_t delta_ = kNull;
};

static_assert(sizeof(offset_ptr<int>) == 8, "an offset_ptr is one 64-bit distance");
static_assert(std::is_standard_layout_v<offset_ptr<int>>, "an offset_ptr lives in shared memory: standard layout");
static_assert(!std::is_trivially_copyable_v<offset_ptr<int>>, "copying an offset_ptr re-bases it, so it cannot be memcpy'd");

}  // namespace multiproc
