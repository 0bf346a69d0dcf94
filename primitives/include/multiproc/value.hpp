// multiproc/value.hpp — Value<T> and Array<T>: a shared scalar or struct and a shared array,
// each with a Lock for compound updates (Python's multiprocessing.Value / Array).
//
// Value<T>
//   * load/store/exchange (and fetch_add/fetch_sub for arithmetic T) are each atomic.
//     When std::atomic_ref<T> is always lock-free (every scalar up to 8 bytes on x86-64), they
//     are single lock-free instructions (a CAS loop for floating fetch_add) on the value in
//     place. Otherwise (a struct, long double) the value is double-buffered behind an internal
//     robust mutex: writers fill the inactive copy and flip an index, so a process killed in the
//     middle of a store leaves the previous value intact and nobody ever sees a torn value; the
//     internal mutex repairs itself (nothing to repair: the active copy is whole).
//   * get_lock() is for compound updates, Python's `with v.get_lock(): v.value += 1`:
//       { std::scoped_lock g(v.get_lock()); v.store(v.load() * 2 + 1); }
//     load/store never take get_lock() themselves, so they may be called under it.
//   * Memory ordering: the operations take a std::memory_order like std::atomic, default
//     seq_cst; the locked path is always sequentially consistent.
//
// Array<T>
//   * n elements allocated in the Arena (Arena::allocate), reached through a self-relative
//     offset_ptr: valid in every process whatever address it maps the arena at. The Array
//     object must itself live in that arena (arena.make<Array<T>>("name", n, fill)); the
//     constructor checks it. Arena::destroy frees the elements too (arena_release).
//   * span()/operator[] give plain T&: synchronise with get_lock() (or std::atomic_ref).
//
// T must be trivially copyable and standard layout (bytes that mean the same in every process,
// no constructors to run in a peer); it must not hold pointers (use offsets).
//
// Layout (all standard layout, no pointers):
//   Value<T>, lock-free T:   a 48-byte Lock, then T at its atomic_ref alignment
//                            (Value<int>, Value<double>, Value<long>: 56 bytes)
//   Value<T>, otherwise:     Lock, internal 48-byte RobustMutex, an index, two copies of T
//                            (Value<long double>: 144 bytes)
//   Array<T>:                Lock, offset_ptr to the elements, size: 64 bytes
#pragma once

#include <multiproc/arena.hpp>
#include <multiproc/error.hpp>
#include <multiproc/lock.hpp>
#include <multiproc/offset_ptr.hpp>
#include <multiproc/robust_mutex.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <type_traits>

namespace multiproc {

template <class T>
concept shareable_value = std::is_trivially_copyable_v<T> && std::is_standard_layout_v<T>;

namespace detail {

/// Takes a Value's internal mutex. Its holders never leave the value half-written (double
/// buffering), so an owner death needs no repair; not recoverable cannot happen (every
/// owner_dead is made consistent before unlock), but is reported rather than ignored.
class ValueGuard {
 public:
  explicit ValueGuard(RobustMutex& m) : m_(m) {
    const LockResult r = m_.lock();
    if (r == LockResult::owner_dead) {
      m_.make_consistent();
    } else if (r != LockResult::acquired) [[unlikely]] {
      throw_lock_result(r, "Value: internal lock");
    }
  }
  ~ValueGuard() { m_.unlock(); }
  ValueGuard(const ValueGuard&) = delete;
  ValueGuard& operator=(const ValueGuard&) = delete;

 private:
  RobustMutex& m_;
};

template <class T, bool LockFree = std::atomic_ref<T>::is_always_lock_free>
class ValueCell;

// Lock-free: the value in place, accessed through std::atomic_ref.
template <class T>
class ValueCell<T, true> {
 public:
  explicit ValueCell(T v) noexcept : v_(v) {}
  T load(std::memory_order o) const noexcept { return ref().load(o); }
  void store(T v, std::memory_order o) noexcept { ref().store(v, o); }
  T exchange(T v, std::memory_order o) noexcept { return ref().exchange(v, o); }
  T fetch_add(T v, std::memory_order o) noexcept { return ref().fetch_add(v, o); }
  T fetch_sub(T v, std::memory_order o) noexcept { return ref().fetch_sub(v, o); }

 private:
  std::atomic_ref<T> ref() const noexcept { return std::atomic_ref<T>(v_); }
  alignas(std::atomic_ref<T>::required_alignment) mutable T v_;
};

// Locked and double-buffered: a store writes the inactive copy, then flips `active_`.
template <class T>
class ValueCell<T, false> {
 public:
  explicit ValueCell(T v) noexcept : slots_{v, v} {}
  T load(std::memory_order) const {
    ValueGuard g(m_);
    return slots_[active()];
  }
  void store(T v, std::memory_order) {
    ValueGuard g(m_);
    publish(v);
  }
  T exchange(T v, std::memory_order) {
    ValueGuard g(m_);
    const T old = slots_[active()];
    publish(v);
    return old;
  }
  T fetch_add(T v, std::memory_order) {
    ValueGuard g(m_);
    const T old = slots_[active()];
    publish(static_cast<T>(old + v));
    return old;
  }
  T fetch_sub(T v, std::memory_order) {
    ValueGuard g(m_);
    const T old = slots_[active()];
    publish(static_cast<T>(old - v));
    return old;
  }

 private:
  // relaxed: active_ is read and written only under m_, whose acquire/release order it; it is
  // atomic so that a killed writer can never leave it torn.
  std::uint32_t active() const noexcept { return active_.load(std::memory_order_relaxed); }
  void publish(const T& v) noexcept {
    const std::uint32_t next = active() ^ 1u;
    slots_[next] = v;
    // The copy is complete before the flip, in program order: a writer killed in between leaves
    // the old copy active. Only this thread's order matters (a dead thread's stores are seen
    // by the next owner through the kernel's robust-futex hand-over), so a compiler fence.
    std::atomic_signal_fence(std::memory_order_seq_cst);
    active_.store(next, std::memory_order_relaxed);
  }

  mutable RobustMutex m_;
  std::atomic<std::uint32_t> active_{0};
  T slots_[2];
};

}  // namespace detail

template <shareable_value T>
class Value {
 public:
  /// True when load/store/fetch_* are lock-free instructions (std::atomic_ref<T> always
  /// lock-free); false when they take the internal lock.
  static constexpr bool is_lock_free = std::atomic_ref<T>::is_always_lock_free;

  explicit Value(T initial = {}) noexcept : cell_(initial) {
    static_assert(std::is_standard_layout_v<Value>, "a Value lives in shared memory: standard layout");
  }
  Value(const Value&) = delete;
  Value& operator=(const Value&) = delete;

  T load(std::memory_order order = std::memory_order_seq_cst) const { return cell_.load(order); }
  void store(T v, std::memory_order order = std::memory_order_seq_cst) { cell_.store(v, order); }
  T exchange(T v, std::memory_order order = std::memory_order_seq_cst) { return cell_.exchange(v, order); }

  /// Adds `v`; returns the value before. Arithmetic T other than bool; integers wrap like
  /// std::atomic (two's complement), floating types follow IEEE arithmetic.
  T fetch_add(T v, std::memory_order order = std::memory_order_seq_cst)
    requires(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>)
  {
    return cell_.fetch_add(v, order);
  }
  T fetch_sub(T v, std::memory_order order = std::memory_order_seq_cst)
    requires(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>)
  {
    return cell_.fetch_sub(v, order);
  }

  /// The lock for compound updates (load/store do not take it).
  Lock& get_lock() noexcept { return lock_; }

 private:
  Lock lock_;
  detail::ValueCell<T> cell_;
};

template <shareable_value T>
class Array {
 public:
  /// `n` elements equal to `fill`, allocated in `arena`, which must also hold this Array
  /// (construct it with arena.make / make_anonymous). Throws Error(out_of_memory) when the
  /// arena cannot hold them, Error(bad_arena) when this Array lies outside `arena`.
  Array(Arena& arena, std::size_t n, T fill = {}) : size_(n) {
    static_assert(std::is_standard_layout_v<Array>, "an Array lives in shared memory: standard layout");
    if (!arena.contains(this))
      throw Error(errc::bad_arena,
                  "Array: the Array must live in the arena that holds its elements (use arena.make<Array<T>>)");
    if (n > std::numeric_limits<std::size_t>::max() / sizeof(T))
      throw Error(errc::out_of_memory, "Array: " + std::to_string(n) + " elements do not fit in memory");
    if (n == 0) return;
    T* p = static_cast<T*>(arena.allocate(n * sizeof(T), alignof(T)));
    std::uninitialized_fill_n(p, n, fill);
    data_ = p;
  }
  Array(const Array&) = delete;
  Array& operator=(const Array&) = delete;

  std::span<T> span() noexcept { return {data(), size()}; }
  std::span<const T> span() const noexcept { return {data(), size()}; }
  /// Element `i` (< size(), unchecked, like std::span).
  T& operator[](std::size_t i) noexcept { return data()[i]; }
  const T& operator[](std::size_t i) const noexcept { return data()[i]; }
  T* data() noexcept { return data_.get(); }
  const T* data() const noexcept { return data_.get(); }
  T* begin() noexcept { return data(); }
  T* end() noexcept { return data() + size(); }
  std::size_t size() const noexcept { return static_cast<std::size_t>(size_); }

  /// The lock for updates that must be seen whole.
  Lock& get_lock() noexcept { return lock_; }

  /// Called by Arena::destroy: frees the elements.
  void arena_release(Arena& arena) noexcept {
    arena.deallocate(data_.get());
    data_ = nullptr;
    size_ = 0;
  }

 private:
  Lock lock_;
  offset_ptr<T> data_;
  std::uint64_t size_;
};

static_assert(sizeof(Value<int>) == 56 && sizeof(Value<double>) == 56 && sizeof(Value<long>) == 56,
              "a lock-free Value is its 48-byte Lock plus the value, 8-byte aligned");
static_assert(!Value<long double>::is_lock_free && sizeof(Value<long double>) == 144,
              "a locked Value: Lock, internal mutex, index and two 16-byte copies");
static_assert(sizeof(Array<double>) == 64, "an Array is its Lock, an offset_ptr and a size: 64 bytes");

}  // namespace multiproc
