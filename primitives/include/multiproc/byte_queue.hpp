// multiproc/byte_queue.hpp — ByteQueue: a bounded MPMC queue of variable-length byte messages
// in shared memory (included by <multiproc/queue.hpp>; include either).
//
// What it guarantees
//   * Everything Queue<T> guarantees (same ring, same blocking, timeouts, close() and
//     survival of processes killed mid-operation; see queue.hpp), for messages of 0 to
//     max_message() bytes. capacity() counts messages.
//   * put of more than max_message() bytes throws Error(message_too_large) before touching the
//     ring.
//   * Nothing read from shared memory is trusted: the ring's geometry is checked against its
//     check word on every call, every cursor index against the capacity, every message's length
//     against max_message() and against its own check field. A ring another process scribbled on
//     gives Error(bad_message) (the slot holding a bad message is recycled, so the queue goes on
//     working) or, for a try_ call, possibly "nothing there" — never a read or write outside the
//     ring, and never an endless loop (scans are bounded).
//   * get allocates the result before it claims the message, so a std::bad_alloc loses nothing.
//
// Layout: the 256-byte ring control block of queue.hpp, plus capacity slots of
//   slot_stride(max_message) = round_up(8 + 8 + max_message, 64) bytes from the arena:
//   [state word u64][length u32][length ^ kLengthCheck u32][max_message bytes].
#pragma once

#include <multiproc/queue.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace multiproc {

class ByteQueue {
 public:
  /// Largest max_message: lengths are stored in 32 bits.
  static constexpr std::size_t kMaxMessageLimit = 0xFFFF'FFFFu - 64;

  /// Bytes per slot for messages of up to `max_message` bytes.
  static constexpr std::size_t slot_stride(std::size_t max_message) noexcept {
    return (16 + max_message + detail::kCacheLine - 1) / detail::kCacheLine * detail::kCacheLine;
  }
  /// Bytes of slot storage for the storage constructor.
  static constexpr std::size_t storage_bytes(std::size_t capacity, std::size_t max_message) noexcept {
    return capacity * slot_stride(max_message);
  }

  /// A queue of at most `capacity` messages of at most `max_message` bytes each, its slots
  /// allocated from `arena` (the arena this object lives in: make it with arena.make).
  /// Error(invalid_argument) for capacity 0 or above 2^32 - 1 or max_message above
  /// kMaxMessageLimit; Error(out_of_memory) when the arena cannot hold the slots.
  ByteQueue(Arena& arena, std::size_t capacity, std::size_t max_message);
  /// The same over caller storage (storage_bytes(capacity, max_message) bytes, 64-aligned, in
  /// the same shared mapping as this object, outliving it).
  ByteQueue(std::span<std::byte> storage, std::size_t capacity, std::size_t max_message);
  ByteQueue(const ByteQueue&) = delete;
  ByteQueue& operator=(const ByteQueue&) = delete;

  /// Puts a copy of `message`, blocking while full. Throws Error(message_too_large), Closed.
  void put(std::span<const std::byte> message);
  /// Puts it if there is room now; false if full. Throws as put.
  bool try_put(std::span<const std::byte> message);
  template <class Rep, class Period>
  bool try_put_for(std::span<const std::byte> message, const std::chrono::duration<Rep, Period>& timeout) {
    return put_until(message, Deadline::after(timeout));
  }
  template <class Clock, class Duration>
  bool try_put_until(std::span<const std::byte> message, const std::chrono::time_point<Clock, Duration>& deadline) {
    return put_until(message, Deadline::at(deadline));
  }

  /// The oldest message, blocking while empty. Throws Closed once closed and drained,
  /// Error(bad_message) for a corrupt ring.
  std::vector<std::byte> get();
  /// The oldest message if there is one now, else nothing (also when closed and drained).
  std::optional<std::vector<std::byte>> try_get();
  template <class Rep, class Period>
  std::optional<std::vector<std::byte>> try_get_for(const std::chrono::duration<Rep, Period>& timeout) {
    return get_until(Deadline::after(timeout));
  }
  template <class Clock, class Duration>
  std::optional<std::vector<std::byte>> try_get_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    return get_until(Deadline::at(deadline));
  }

  /// Snapshots, as Queue's.
  std::size_t size() const noexcept { return ring_.size(ring_.stride()); }
  bool empty() const noexcept { return size() == 0; }
  bool full() const noexcept { return size() >= capacity(); }
  std::size_t capacity() const noexcept { return ring_.capacity(); }
  std::size_t max_message() const noexcept { return ring_.payload_bytes() - 8; }

  void close() noexcept { ring_.close(); }
  bool closed() const noexcept { return ring_.closed(); }
  std::uint64_t recovered_slots() const noexcept { return ring_.recovered(); }

  /// For Arena::destroy: gives the slots back to the arena.
  void arena_release(Arena& arena) noexcept { ring_.release_to(arena); }
  /// The shared control block (tests, the fuzzer, diagnostics).
  detail::Ring& ring() noexcept { return ring_; }

 private:
  void init(void* slots, std::size_t capacity, std::size_t max_message, std::uint32_t flags);
  bool put_impl(std::span<const std::byte> message, const Deadline* deadline, const char* op);
  detail::Ring::Result get_impl(std::vector<std::byte>& out, const Deadline* deadline, const char* op);
  bool put_until(std::span<const std::byte> message, const Deadline& deadline);
  std::optional<std::vector<std::byte>> get_until(const Deadline& deadline);

  detail::Ring ring_;
};

static_assert(std::is_standard_layout_v<ByteQueue>, "a ByteQueue lives in shared memory: standard layout");
static_assert(sizeof(ByteQueue) == sizeof(detail::Ring), "a ByteQueue is its ring's control block and nothing else");

}  // namespace multiproc
