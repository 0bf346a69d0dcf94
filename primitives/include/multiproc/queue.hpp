// multiproc/queue.hpp — bounded multi-producer multi-consumer queues in shared memory:
// Queue<T>, JoinableQueue<T>, and (from byte_queue.hpp, included at the end) ByteQueue.
//
// What a Queue guarantees
//   * Bounded FIFO of exactly capacity() items, usable from any number of processes and threads
//     at once, each process mapping the arena at its own address (the queue stores a
//     self-relative offset to its slots, never a pointer). Each put takes a ticket, gets take
//     tickets in increasing order, so items of one producer come out in the order it put them.
//   * No lock on the fast path, and no system call unless a waiter is parked. Items of at most
//     8 bytes (x86-64: Queue<T>::packed) sit in packed 16-byte slots: a put or a get is ONE
//     16-byte CAS on the slot (state and item together), a few plain loads and a cursor-hint
//     store — the item appears and disappears atomically, so no slot is ever "claimed" and
//     nothing can wedge. Larger items (and ByteQueue messages) take two CAS per operation on
//     one slot's cache line: claim, copy, publish/release. (Like Vyukov's ring, that path is
//     not lock-free in the strict sense: a get waits behind a put that has claimed its slot
//     and not yet published it — for the ~100 ns of a copy, or until the claimant is found
//     dead, below.)
//   * Blocking only when full (put) or empty (get): spin briefly (pause), then yield the CPU up
//     to 16 times (with more processes than CPUs the peer we wait for is often runnable right
//     here; parking instead would cost it a FUTEX_WAKE per item: 2P2C on 2 vCPUs went from
//     2 M to 14 M items/s; a yield that took > 30 µs without helping — an unrelated process got
//     the CPU — turns yielding off for the thread's next 64 waits, since a parked waiter is woken
//     sooner than a yielded one gets its CPU back), then park on a futex word (core ParkingLot: one for "not empty", one
//     for "not full", each with a sleeper count). A parked waiter uses no CPU until notified
//     (and wakes on its own every kParkRecheck to re-check, ~0.3 ms of CPU per parked second).
//     try_x never blocks; try_x_for / try_x_until give up at one absolute steady-clock deadline.
//   * close(): every parked put/get wakes at once. put (and try_put) after close throws Closed;
//     get drains what is in, then throws Closed; try_get on a closed, drained queue returns
//     nothing. A put racing with close either completes before getters can see "drained", or
//     throws Closed: no item appears after a get has thrown Closed.
//   * size/empty/full are snapshots: exact when no operation is in flight (a slot skipped after
//     a dead producer or an aborted put counts until a get steps past it), otherwise a value
//     between what the queue held at the start and at the end of the call.
//
// A process may die at any instruction (SIGKILL) — the queue keeps working for the others:
//   * An item whose put returned is never lost and never delivered twice.
//   * Packed slots: a death falls before or after a put's or get's single CAS, so there is no
//     half-done operation to detect: a dead producer's item is in or not (its put had not
//     returned), a dead consumer's item is lost only if it died after its CAS, before get
//     returned. The claim/recovery machinery below is for claimed (larger) slots.
//   * A half-written item is never delivered: a producer that dies between claiming a slot and
//     publishing it leaves the slot marked `writing` with its thread id; the slot is skipped.
//   * A consumer that dies between claiming an item and returning it loses that one item
//     (at most one item per dead consumer thread), and its slot is recycled.
//   * Detection: a waiter blocked behind a claimed slot (a put waiting for room, a get waiting for
//     an item) spins, then parks with a timeout; once the same claim has been in place for
//     kStuckBound (2 ms) it checks the claimant's liveness (process_dead(tid): kill(tid, 0) and
//     /proc/TID/stat, which also catches an unreaped zombie), then again with doubling intervals
//     up to kStuckCheckMax (64 ms). A dead claimant's slot is reclaimed with one CAS. Measured
//     delay from the waiter meeting a dead claim to recovery: 2.1 ms (tests/queue). A waiter that parked
//     on an empty/full queue before the claimant died finds it at its next wake-up: the next
//     put/get notification, or at the latest its periodic re-check (kParkRecheck, 100 ms), which
//     also covers a notifier killed between publishing and waking.
//   * Liveness is judged by thread id. A false "alive" (the TID already reused by a new thread)
//     only delays recovery; a false "dead" cannot happen while all users share one PID
//     namespace (a requirement: processes in different PID namespaces must not share a queue).
//   * Limit: a process killed while *parked* (not mid-operation: nothing of the ring is held)
//     leaves the core ParkingLot's sleeper count one too high, so from then on every put (or
//     get) notifying that lot makes a FUTEX_WAKE system call that finds nobody (~1-2 µs).
//
// Design: why neither Vyukov's nor rigtorp's ring as they are (claimed slots, then packed ones)
//   Both give each slot a sequence ("turn") word and two cursors, and both are excellent
//   in-process queues. Vyukov's bounded MPMC claims a slot by CAS on the *cursor* (enqueue_pos),
//   then writes the item and stores the slot's sequence. Rigtorp's claims by fetch_add on the
//   cursor (a ticket), then waits for the slot's turn. In shared memory with processes that can
//   die, both have the same flaw: between claiming and publishing, the only trace of the claim is
//   a cursor value — nothing says *who* holds the slot, so a death there wedges every later
//   consumer, and nobody can tell a dead claimant from a slow one. Rigtorp's fetch_add makes it
//   worse: a ticket is an obligation taken *before* waiting, so a put that times out, is closed,
//   or dies while blocked on a full queue leaves a hole that the matching get waits on forever.
//   So this ring keeps Vyukov's shape (claim only a slot that is ready, never wait while holding
//   a claim — which is what makes timeouts, close and death simple) but moves the claim onto the
//   slot itself: one CAS on the slot's state word both claims it and records the claimant's TID.
//   The cursors become hints (plain stores, "next ticket is probably here"); the slot states
//   alone decide, so a stale or even regressed hint costs a few extra slot reads, never
//   correctness. The cost over a bare Vyukov ring is one more locked instruction per operation
//   (publish and release are CAS instead of plain stores), which we need anyway as the store-load
//   fence that lets notify skip the FUTEX_WAKE when nobody sleeps.
//   Tickets are encoded (lap << 32 | index), as rigtorp's turn/index but without his division:
//   advancing is "index + 1, or next lap at capacity", so capacity is exactly what was asked
//   (Vyukov needs a power of two) and no operation divides. Slots are padded to whole cache
//   lines (as rigtorp does) so producers and consumers on neighbouring slots do not false-share;
//   the two cursors and the read-mostly header each have their own line.
//   Packed slots (items of at most 8 bytes, x86-64). A ring's per-message cost is cache-line
//   transfers, not instructions (bench-queue: 1P1C runs at a fraction of one line transfer per
//   message). So for small items this ring makes the slot both the claim record and the item:
//   {state word, item word} changed by one cmpxchg16b, which is claim, copy and publish (or
//   claim, copy and release) at once. Per operation that is one locked instruction — what
//   Vyukov's ring pays on its cursor — with nothing else written but our own side's cursor
//   hint; nothing is ever held, so death needs no detection and timeouts/close stay simple.
//   Slots are NOT padded here: four share a line, and when producer and consumer are more
//   than a line apart a transfer carries four messages (padded to 64 B measured ~0.85x of
//   this). A consumer loads the state first and CASes only an item that is there (a CAS on
//   an empty slot would take the line away from the producer about to fill it); a producer
//   CASes blind, as an empty slot's item word is always 0. The one-try fast paths are
//   inline; scanning, waiting and close are out of line.
//
// Slot state word (64 bits): lap (32) | kind (2) | claimant TID (30; 0 unless claimed).
//   empty(L) -> writing(L, tid) -> full(L) -> reading(L, tid) -> empty(L+1)      (normal life)
//   empty(L) -> full(L) -> empty(L+1)                                    (packed, item word along)
//   empty(L) -> sealed(L) = writing(L, tid 0)   a get found the closed queue drained (packed)
//   writing(L, tid) -> empty(L+1)   put aborted by close(), or the writer is dead: skipped
//   reading(L, tid) -> empty(L+1)   the reader is dead: its item is lost, the slot recycled
//   Every transition is a CAS from the exact expected word, so exactly one party makes each, and
//   the phase (lap * 4 + kind) only moves forward (compared modulo 2^34).
//
// Memory ordering
//   * claim CAS (producer: empty -> writing): seq_cst — it must precede the producer's seq_cst
//     load of `closed` in the single total order (the close/drain argument below) and acquire the
//     previous reader's release of the slot. (Consumer: full -> reading): acquire, pairing with
//     the publish, so the item's bytes are visible.
//   * publish CAS (writing -> full) and release CAS (reading -> empty(L+1)): seq_cst. Release
//     semantics order the item's bytes (put) and our reads of them (get) before the slot changes
//     hands; seq_cst makes the RMW the Dekker store that ParkingLot::notify's sleeper-count load
//     requires (a parked waiter is then never missed).
//   * close/drain: close is a seq_cst store of `closed`. A producer loads `closed` (seq_cst) after
//     its claim and aborts if set; a consumer that sees an empty slot loads `closed` and then the
//     slot again (both seq_cst) before declaring the queue drained. In the total order either the
//     claim precedes the close (and the consumer's second slot load sees it) or the producer sees
//     the close: no item is published after a get threw Closed.
//     Packed slots cannot do that (claim and publish are one CAS), so the consumer that finds
//     the closed queue drained at an empty slot *seals* it with a CAS (empty(L) -> sealed(L)).
//     A put's CAS expects empty(L) and fails on the seal (it throws Closed), and no put can
//     land beyond the seal (a producer only moves past a ticket it saw taken). Either the put's
//     CAS wins and the sealing CAS fails (the consumer then gets the item), or the seal wins.
//   * packed slots: cmpxchg16b is a locked instruction — a full barrier in the single total
//     order of locked instructions (x86-TSO), i.e. a seq_cst RMW for every argument above: it
//     releases the item and acquires the previous lap's release, and it is the Dekker store
//     before notify's sleeper-count load. The consumer's loads of state and item before it are
//     relaxed: they only guess the CAS's expected words; the CAS compares both at once, and the
//     lap in the state word makes {full(L), item} unique, so a success took exactly that item.
//     The compiler sees "memory" clobbers; TSan is told acquire+release (it cannot see asm).
//   * cursors: relaxed. They are hints; all synchronisation goes through slot states.
//
// Size and layout (all shared, standard layout, no pointers): a Queue is 256 bytes, 64-aligned
//   (read-mostly header, producer cursor, consumer cursor, JoinableQueue counters: one cache line
//   each); its slots are capacity * slot_stride bytes from Arena::allocate, slot_stride = 16
//   when packed (sizeof(T) <= 8 on x86-64), else round_up(max(8, alignof(T)) + sizeof(T), 64).
//
// Benchmarks (bench-queue: real processes, 1P1C pinned to two CPUs, 8-byte items, capacity
//   1024; a 2-vCPU KVM guest shared with other engineers, so: ratios within one run, runs started
//   only when the machine was idle, figures from the runs whose cache-line round trip was quiet)
//   * 1P1C 8 B: Queue 54-78 M msgs/s = 8.7-12.8x Boost message_queue (5.9-6.5 M/s pinned;
//     8.2-12 M/s at best unpinned, where the 8.3 M comes from), 1.0-1.7x a bare Vyukov
//     ring, 0.95-1.33x a bare ring of the same packed layout doing nothing but its two
//     cmpxchg16b (the ceiling of this design; that bare ring is bimodal, once 3.5 M/s),
//     ~1.5x the claimed-slot ring this replaced (46-49 M/s). Padded 16-byte slots (one a line)
//     measured ~0.85x of packed ones.
//   * 1P1C 64 B (claimed slots): 2.2-2.4x Boost, 0.80-0.85x Vyukov. 2P2C 8 B unpinned (four
//     processes on two CPUs): 6.2-12.9x Boost (its mutex serialises; ours scales), 0.5-1.3x a
//     busy-spinning Vyukov ring. Parked hand-off: 0.97-1.45x (median 1.07x) a raw futex
//     wake-up (~55 µs when the guest is idle: waking a halted vCPU dominates).
//   * Why not 20x Boost (>= 122 M/s, 8 ns a message) here: a line transfer between the two
//     CPUs is 62-81 ns (half the measured line round trip), and the per-message bound is the
//     locked instruction, not the transfer: a bare plain-store SPSC ring of the same 16-byte
//     slots moves 180-310 M/s (48-51x Boost), while the same ring with one cmpxchg16b per side
//     (PackedCas) stays at 52-88 M/s, and Vyukov's (one lock cmpxchg per side on its cursor) at
//     42-65. A locked RMW drains the store buffer and holds the line exclusively, so two of
//     them per message (one per side) serialise on the slot's line; any MPMC ring that claims
//     with an RMW — every one of them — lives under the PackedCas line. Getting past it needs
//     fast paths without locked instructions: a side owned by one process at a time (a lease,
//     taken over from a dead or idle owner) publishing with plain stores, and the Dekker fence
//     of the sleeper check moved to the waiter (membarrier), as asymmetric-fence designs do.
#pragma once

#include <multiproc/arena.hpp>
#include <multiproc/deadline.hpp>
#include <multiproc/error.hpp>
#include <multiproc/ids.hpp>
#include <multiproc/park.hpp>

#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>

namespace multiproc {

class Arena;

namespace detail {

inline constexpr std::size_t kCacheLine = 64;

/// How long a claimed slot must stay unchanged before a waiter checks its claimant's liveness.
inline constexpr std::chrono::milliseconds kStuckBound{2};
/// Longest interval between two liveness checks of one (live but stalled) claimant.
inline constexpr std::chrono::milliseconds kStuckCheckMax{64};
/// Longest a parked waiter sleeps before re-checking on its own (covers a killed notifier).
inline constexpr std::chrono::milliseconds kParkRecheck{100};

/// What a waiter remembers about the claimed slot it is stuck behind (per operation; try_x
/// calls keep one per thread so that polling callers recover dead claims too).
struct StuckWatch {
  const void* slot = nullptr;
  std::uint64_t state = 0;
  std::chrono::steady_clock::time_point since{};
  std::chrono::steady_clock::time_point next_check{};
  std::chrono::milliseconds interval{0};
};

#if defined(__x86_64__)
/// Whether this target has packed slots (a 16-byte compare-and-swap: x86-64's cmpxchg16b).
inline constexpr bool kHasPackedSlots = true;
#else
inline constexpr bool kHasPackedSlots = false;
#endif

/// A packed slot: the state word and an item of at most 8 bytes, changed together by one
/// 16-byte CAS. Four to a cache line.
struct alignas(16) PackedSlot {
  std::atomic<std::uint64_t> state;
  std::atomic<std::uint64_t> item;  // 0 whenever the slot is not full
};
static_assert(sizeof(PackedSlot) == 16 && std::is_standard_layout_v<PackedSlot>,
              "a packed slot is a state word and an item word, nothing else");
inline constexpr std::size_t kPackedStride = sizeof(PackedSlot);

#if defined(__SANITIZE_THREAD__)
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#endif

/// Compares both words of `slot` with {state, item} and, if equal, replaces them with
/// {new_state, new_item}, as one atomic step; else loads them into {state, item}. A locked
/// instruction: a full barrier, ordered in the single total order of all locked instructions
/// (x86-TSO), so it is a seq_cst RMW for every purpose of this file. Only where
/// kHasPackedSlots.
inline bool cas16(PackedSlot& slot, std::uint64_t& state, std::uint64_t& item, std::uint64_t new_state,
                  std::uint64_t new_item) noexcept {
#if defined(__x86_64__)
  struct alignas(16) Words {
    std::uint64_t w[2];
  };
#if defined(__SANITIZE_THREAD__)
  __tsan_release(&slot);  // TSan does not see inside asm: tell it this is an acquire-release RMW
#endif
  bool ok;
  asm volatile("lock cmpxchg16b %1"
               : "=@ccz"(ok), "+m"(*reinterpret_cast<Words*>(&slot)), "+a"(state), "+d"(item)
               : "b"(new_state), "c"(new_item)
               : "memory");
#if defined(__SANITIZE_THREAD__)
  __tsan_acquire(&slot);
#endif
  return ok;
#else
  (void)slot, (void)state, (void)item, (void)new_state, (void)new_item;
  __builtin_trap();  // never called: Queue<T> uses packed slots only where kHasPackedSlots
#endif
}

/// The shared control block and algorithm of one ring of slots. Queue<T>, JoinableQueue<T> and
/// ByteQueue are thin typed fronts; the fast paths below are inline templates (the slot stride
/// is a constant for Queue<T>), the waiting and recovery slow paths are in queue.cpp.
class alignas(kCacheLine) Ring {
 public:
  enum Kind : std::uint64_t { kEmpty = 0, kWriting = 1, kFull = 2, kReading = 3 };
  static constexpr unsigned kKindShift = 30;
  static constexpr std::uint64_t kTidMask = (std::uint64_t{1} << kKindShift) - 1;
  static constexpr std::uint32_t kJoinable = 1;      // flags_: JoinableQueue accounting on
  static constexpr std::uint32_t kOwnsArena = 2;     // flags_: slots came from Arena::allocate
  static constexpr std::uint32_t kPacked = 4;        // flags_: PackedSlot slots (produce_packed)
  static constexpr std::size_t kMaxCapacity = 0xFFFF'FFFFu;

  /// What an attempt ended with (the caller turns it into the API's bool/optional/exception).
  enum class Result { done, would_block, timed_out, closed };

  Ring() noexcept = default;
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  /// Lays out `capacity` slots of `stride` bytes at `slots` (64-aligned, in the same mapping as
  /// this control block), each an 8-byte state word then `payload` item bytes at
  /// `payload_offset`, all empty, and records `flags`.
  void init(void* slots, std::size_t capacity, std::size_t stride, std::size_t payload_offset, std::size_t payload,
            std::uint32_t flags) noexcept;
  /// Throws Error(invalid_argument) unless 1 <= capacity <= kMaxCapacity and the slot array
  /// size fits a size_t. `who` names the constructor in the message.
  static std::size_t checked_bytes(std::size_t capacity, std::size_t stride, const char* who);
  /// Allocates the slot array from `arena` (64-aligned). Error(out_of_memory).
  static void* allocate_slots(Arena& arena, std::size_t bytes) { return arena.allocate(bytes, kCacheLine); }
  /// Gives the slot array back to `arena` if it came from it (Arena::destroy calls this).
  void release_to(Arena& arena) noexcept {
    if (flags_ & kOwnsArena) arena.deallocate(slots());
    flags_ &= ~kOwnsArena;
  }
  /// Throws Error(invalid_argument) unless `storage` holds `bytes`, 64-aligned.
  static void check_storage(std::span<std::byte> storage, std::size_t bytes, const char* who);

  // ---- ticket / state encoding ---------------------------------------------------------
  static constexpr std::uint32_t lap_of(std::uint64_t ticket) noexcept { return static_cast<std::uint32_t>(ticket >> 32); }
  static constexpr std::uint32_t index_of(std::uint64_t ticket) noexcept { return static_cast<std::uint32_t>(ticket); }
  static constexpr std::uint64_t ticket(std::uint32_t lap, std::uint32_t index) noexcept {
    return (std::uint64_t{lap} << 32) | index;
  }
  static constexpr std::uint64_t make_state(std::uint32_t lap, Kind k, std::uint64_t tid = 0) noexcept {
    return (std::uint64_t{lap} << 32) | (std::uint64_t{k} << kKindShift) | (tid & kTidMask);
  }
  static constexpr Kind kind_of(std::uint64_t state) noexcept { return static_cast<Kind>((state >> kKindShift) & 3u); }
  static constexpr std::uint32_t tid_of(std::uint64_t state) noexcept { return static_cast<std::uint32_t>(state & kTidMask); }
  /// Phase (lap * 4 + kind) of `state` minus `want`, as a signed distance modulo 2^34.
  static constexpr std::int64_t phase_diff(std::uint64_t state, std::uint64_t want_phase) noexcept {
    return static_cast<std::int64_t>(((state >> kKindShift) - want_phase) << kKindShift) >> kKindShift;
  }
  static constexpr std::int32_t lap_diff(std::uint32_t a, std::uint32_t b) noexcept {
    return static_cast<std::int32_t>(a - b);
  }
  /// Whether ticket a comes before ticket b (laps compared modulo 2^32).
  static constexpr bool before(std::uint64_t a, std::uint64_t b) noexcept {
    const std::int32_t d = lap_diff(lap_of(a), lap_of(b));
    return d != 0 ? d < 0 : index_of(a) < index_of(b);
  }
  std::uint64_t next(std::uint64_t t) const noexcept {
    return index_of(t) + 1 < capacity_ ? t + 1 : ticket(lap_of(t) + 1, 0);
  }

  // ---- the two operations ----------------------------------------------------------------

  /// Puts one item: `fill(std::byte* payload)` writes it into the claimed slot (must not throw).
  /// `deadline` nullptr: never block. Throws Closed (closed), Error(bad_message) (corrupt ring).
  template <std::size_t kStride, class Fill>
  Result produce(std::size_t stride, const Deadline* deadline, Fill&& fill, const char* op);

  /// Gets one item. With kPeeks, `peek(const std::byte* payload)` runs before the claim on an
  /// item that is there (may throw: nothing is claimed yet); `drain(const std::byte* payload)` after it (it
  /// may throw only Error(bad_message), after which the slot is recycled and the item dropped).
  template <std::size_t kStride, bool kPeeks, class Peek, class Drain>
  Result consume(std::size_t stride, const Deadline* deadline, Peek&& peek, Drain&& drain, const char* op);

  /// produce/consume on a ring of PackedSlot (kPacked): the item is one 8-byte word, put and
  /// got by a single cas16 each, so no slot is ever claimed. Same results and throws.
  Result produce_packed(std::uint64_t item, const Deadline* deadline, const char* op);
  Result consume_packed(std::uint64_t& item, const Deadline* deadline, const char* op);
  Result produce_packed_slow(std::uint64_t item, const Deadline* deadline, const char* op);
  Result consume_packed_slow(std::uint64_t& item, const Deadline* deadline, const char* op);
  /// A packed slot sealed by a get that found the closed queue drained (see "close/drain").
  static constexpr std::uint64_t sealed(std::uint32_t lap) noexcept { return make_state(lap, kWriting, 0); }
  static constexpr bool is_sealed(std::uint64_t state) noexcept {
    return kind_of(state) == kWriting && tid_of(state) == 0;
  }

  void close() noexcept;
  bool closed() const noexcept { return closed_.load(std::memory_order_seq_cst) != 0; }
  std::size_t capacity() const noexcept { return capacity_; }
  std::size_t size(std::size_t stride) const noexcept;
  std::size_t payload_bytes() const noexcept { return payload_; }
  std::size_t stride() const noexcept { return stride_; }
  /// Slots recovered from dead claimants so far (a snapshot; for diagnostics and tests).
  std::uint64_t recovered() const noexcept { return recovered_.load(std::memory_order_relaxed); }

  // ---- JoinableQueue accounting ------------------------------------------------------------
  void task_done(const char* op);
  bool join_until(const Deadline& deadline);
  std::uint64_t unfinished() const noexcept { return unfinished_.load(std::memory_order_seq_cst); }

  /// Validates the header of a ByteQueue ring against its check word; Error(bad_message) if not.
  void check_geometry(const char* op) const;

  // ---- test hooks (tests/queue, fuzz/byte_queue) ------------------------------------------
  /// Claims the next free slot as a producer (or the next item as a consumer) and leaves it
  /// claimed, exactly as a process killed right after its claim CAS would. False if none.
  bool test_claim_and_abandon(std::size_t stride, bool as_producer);
  /// The raw state word of slot `index`.
  std::uint64_t test_state(std::size_t stride, std::size_t index) const noexcept { return state_at(stride, index).load(); }
  /// Overwrites the mutable shared words (what another process may scribble on).
  void test_set_cursors(std::uint64_t tail, std::uint64_t head, bool closed) noexcept {
    tail_.store(tail);
    head_.store(head);
    closed_.store(closed ? 1 : 0);
  }
  /// Clears `closed` as seen by a put that loaded it just before close(): such a put must
  /// still not land after a get declared the queue drained.
  void test_unsee_close() noexcept { closed_.store(0); }
  /// The slot array (all capacity * stride bytes).
  std::span<std::byte> test_slots() noexcept { return {slots(), std::size_t{capacity_} * stride_}; }

 private:
  std::byte* slots() const noexcept {
    return reinterpret_cast<std::byte*>(const_cast<Ring*>(this)) + slots_off_;
  }
  std::atomic<std::uint64_t>& state_at(std::size_t stride, std::size_t index) const noexcept {
    return *reinterpret_cast<std::atomic<std::uint64_t>*>(slots() + index * stride);
  }
  PackedSlot& packed_at(std::size_t index) const noexcept {
    return *reinterpret_cast<PackedSlot*>(slots() + index * kPackedStride);
  }
  std::byte* payload_at(std::size_t stride, std::size_t index) const noexcept {
    return slots() + index * stride + payload_off_;
  }
  static std::uint32_t my_tid() noexcept { return static_cast<std::uint32_t>(this_tid()) & kTidMask; }

  /// Moves a cursor hint forward to `t` (never back, except in a rare store race, which only
  /// costs a later scan a few steps). Relaxed: a hint orders nothing.
  [[gnu::always_inline]] static void advance_hint(std::atomic<std::uint64_t>& hint, std::uint64_t t) noexcept {
    if (before(hint.load(std::memory_order_relaxed), t)) hint.store(t, std::memory_order_relaxed);
  }
  /// Where a scanner that found `state` in the slot of ticket `at` (lap L) should look next.
  /// `done_lap`: the latest lap of that slot known finished for this side; jump past it when it
  /// is ahead of L (a hint many laps stale), else step one ticket.
  std::uint64_t skip(std::uint64_t at, std::uint32_t done_lap) const noexcept {
    return lap_diff(done_lap, lap_of(at)) > 0 ? next(ticket(done_lap, index_of(at))) : next(at);
  }
  /// One step of a producer's scan past ticket `at` of lap `lap`, whose slot was not this lap's
  /// empty one but in state `s`. False: stop here (`blocked` when the slot is behind — full or
  /// claimed from an earlier lap — else the budget ran out; `seen` = s). True: `at` is the next
  /// ticket to try.
  [[gnu::always_inline]] bool producer_step(std::uint64_t& at, std::uint64_t s, std::uint32_t lap, std::size_t& budget,
                                            bool& blocked, std::uint64_t& seen) const noexcept {
    const std::int64_t d = phase_diff(s, std::uint64_t{lap} * 4);
    if (d < 0 || --budget == 0) {
      blocked = d < 0;
      seen = s;
      return false;
    }
    // Ahead: this ticket is taken. The latest lap known claimed here: an empty slot's previous
    // lap, else its own.
    at = skip(at, kind_of(s) == kEmpty ? static_cast<std::uint32_t>(s >> 32) - 1 : static_cast<std::uint32_t>(s >> 32));
    if ((budget & 15) == 0) {
      const std::uint64_t h = tail_.load(std::memory_order_relaxed);  // a hint; see advance_hint
      if (before(at, h)) at = h;
    }
    return true;
  }
  std::size_t scan_budget() const noexcept { return 2 * static_cast<std::size_t>(capacity_) + 64; }

  // queue.cpp: slow paths
  // `blocked`: the scan stopped at slot `at` in state `seen`; false: its budget ran out.
  bool await(bool producer, std::size_t stride, std::uint64_t at, bool blocked, std::uint64_t seen,
             const Deadline& deadline, StuckWatch& watch, bool first);
  // A producer's scan found the ring full. Returns what the put returns (would_block without a
  // deadline, timed_out at it), or nullopt to scan again; throws Closed. `claimable`: slots can
  // be held by a claimant (not packed), so a stuck one is checked.
  std::optional<Result> producer_full(std::size_t stride, bool claimable, std::uint64_t at, bool blocked,
                                      std::uint64_t seen, const Deadline* deadline, StuckWatch& watch,
                                      bool& first_wait, const char* op);
  bool check_stuck(std::size_t stride, std::uint64_t at, std::uint64_t seen, StuckWatch& watch);
  bool try_recover(std::size_t stride, std::uint64_t at, std::uint64_t seen);
  void abandon(std::size_t stride, std::uint64_t at, std::uint64_t claimed) noexcept;
  void unfinished_sub() noexcept;
  static StuckWatch& thread_watch() noexcept;
  [[noreturn]] void throw_corrupt(const char* op, std::uint64_t at) const;
  [[noreturn]] static void throw_lost(const char* op);

 public:
  [[noreturn]] static void throw_closed(const char* op);

 private:

  // ---- line 0: read-mostly header (geometry, flags, close flag, the two parking lots)
  std::int64_t slots_off_ = 0;         // slots = this + slots_off_ (self-relative: any mapping)
  std::uint64_t stride_ = 0;           // bytes per slot
  std::uint64_t payload_ = 0;          // item bytes per slot (sizeof(T), or ByteQueue's max)
  std::uint32_t capacity_ = 0;         // slots; tickets' index is < capacity_
  std::uint32_t payload_off_ = 0;      // offset of the item in a slot (after the state word)
  std::uint32_t flags_ = 0;            // kJoinable | kOwnsArena
  std::atomic<std::uint32_t> closed_{0};
  std::uint64_t check_ = 0;            // hash of the geometry above (ByteQueue validates it)
  ParkingLot not_empty_;               // consumers park here
  ParkingLot not_full_;                // producers park here
  // ---- line 1: producers' cursor
  alignas(kCacheLine) std::atomic<std::uint64_t> tail_{0};
  // ---- line 2: consumers' cursor
  alignas(kCacheLine) std::atomic<std::uint64_t> head_{0};
  // ---- line 3: JoinableQueue counters and diagnostics (cold)
  alignas(kCacheLine) std::atomic<std::uint64_t> unfinished_{0};  // puts begun - task_done calls
  std::atomic<std::uint64_t> got_{0};                             // items got - task_done calls
  std::atomic<std::uint64_t> recovered_{0};
  ParkingLot join_lot_;
};

static_assert(sizeof(Ring) == 4 * kCacheLine, "a ring's control block is four cache lines: header, tail, head, join");
static_assert(std::is_standard_layout_v<Ring>, "a ring lives in shared memory: standard layout");
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "slot states are lock-free 64-bit atomics");

// ---- fast paths -------------------------------------------------------------------------------

template <std::size_t kStride, class Fill>
Ring::Result Ring::produce(std::size_t stride_rt, const Deadline* deadline, Fill&& fill, const char* op) {
  const std::size_t stride = kStride ? kStride : stride_rt;
  // Relaxed: an early exit only; the authoritative check is the seq_cst load after the claim.
  if (closed_.load(std::memory_order_relaxed)) throw_closed(op);
  const bool joinable = flags_ & kJoinable;
  // seq_cst like every counter a waiter (join) reads; counted before the claim so a getter's
  // task_done can never see the item before its put is counted.
  if (joinable) unfinished_.fetch_add(1, std::memory_order_seq_cst);
  StuckWatch local;
  bool first_wait = true;
  std::uint64_t at = tail_.load(std::memory_order_relaxed);  // a hint; see advance_hint
  for (;;) {
    std::size_t budget = scan_budget();
    std::uint64_t seen = 0;
    bool blocked = false;  // stopped at an obstacle (else: the scan budget ran out)
    for (;;) {
      if (index_of(at) >= capacity_) [[unlikely]] {
        if (joinable) unfinished_sub();
        throw_corrupt(op, at);
      }
      std::atomic<std::uint64_t>& st = state_at(stride, index_of(at));
      const std::uint32_t lap = lap_of(at);
      std::uint64_t s = make_state(lap, kEmpty);
      if (st.compare_exchange_strong(s, make_state(lap, kWriting, my_tid()), std::memory_order_seq_cst,
                                     std::memory_order_relaxed)) {  // failure: s only steers the scan
        advance_hint(tail_, next(at));
        if (closed_.load(std::memory_order_seq_cst)) {
          abandon(stride, at, make_state(lap, kWriting, my_tid()));
          throw_closed(op);
        }
        fill(payload_at(stride, index_of(at)));
        std::uint64_t w = make_state(lap, kWriting, my_tid());
        if (!st.compare_exchange_strong(w, make_state(lap, kFull), std::memory_order_seq_cst)) [[unlikely]]
          throw_lost(op);
        not_empty_.notify_one();
        return Result::done;
      }
      if (!producer_step(at, s, lap, budget, blocked, seen)) break;
    }
    // Full (or behind a claimed slot, or the scan budget ran out on a corrupt ring).
    if (const std::optional<Result> r = producer_full(stride, true, at, blocked, seen, deadline, local, first_wait, op))
      return *r;
    at = tail_.load(std::memory_order_relaxed);
  }
}

template <std::size_t kStride, bool kPeeks, class Peek, class Drain>
Ring::Result Ring::consume(std::size_t stride_rt, const Deadline* deadline, Peek&& peek, Drain&& drain, const char* op) {
  const std::size_t stride = kStride ? kStride : stride_rt;
  StuckWatch local;
  bool first_wait = true;
  std::uint64_t at = head_.load(std::memory_order_relaxed);  // a hint; see advance_hint
  for (;;) {
    std::size_t budget = scan_budget();
    std::uint64_t seen = 0;
    bool blocked = false;  // stopped at an obstacle (else: the scan budget ran out)
    for (;;) {
      if (index_of(at) >= capacity_) [[unlikely]] throw_corrupt(op, at);
      std::atomic<std::uint64_t>& st = state_at(stride, index_of(at));
      const std::uint32_t lap = lap_of(at);
      const std::uint64_t full = make_state(lap, kFull);
      const std::uint64_t mine = make_state(lap, kReading, my_tid());
      std::uint64_t s = full;
      bool claimed;
      // Acquire on success: pairs with the publish CAS, so peek and drain read a complete item.
      // Relaxed on failure: s then only steers the scan.
      if constexpr (kPeeks) {
        s = st.load(std::memory_order_acquire);
        claimed = s == full && (peek(static_cast<const std::byte*>(payload_at(stride, index_of(at)))),
                                st.compare_exchange_strong(s, mine, std::memory_order_acquire, std::memory_order_relaxed));
      } else {
        // No peek: claim optimistically, one read-for-ownership of the slot's line instead of a
        // shared read and then an upgrade.
        claimed = st.compare_exchange_strong(s, mine, std::memory_order_acquire, std::memory_order_relaxed);
      }
      if (claimed) {
        advance_hint(head_, next(at));
        try {
          drain(static_cast<const std::byte*>(payload_at(stride, index_of(at))));
        } catch (...) {
          abandon(stride, at, mine);  // a corrupt item: recycle the slot, drop the item
          throw;
        }
        std::uint64_t r = mine;
        if (!st.compare_exchange_strong(r, make_state(lap + 1, kEmpty), std::memory_order_seq_cst)) [[unlikely]]
          throw_lost(op);
        not_full_.notify_one();
        // seq_cst: task_done's check reads it; the item is ours now, count it as got.
        if (flags_ & kJoinable) got_.fetch_add(1, std::memory_order_seq_cst);
        return Result::done;
      }
      // Not claimed: s is what the slot holds (never `full`: a lost race shows the winner's claim).
      const std::int64_t d = phase_diff(s, std::uint64_t{lap} * 4 + kFull);
      if (d < 0 || --budget == 0) {
        blocked = d < 0;
        seen = s;
        break;
      }
      // Ahead: this ticket is consumed. The latest lap known consumed here: a reading slot's
      // own lap, else the previous one.
      at = skip(at, kind_of(s) == kReading ? static_cast<std::uint32_t>(s >> 32) : static_cast<std::uint32_t>(s >> 32) - 1);
      if ((budget & 15) == 0) {
        const std::uint64_t h = head_.load(std::memory_order_relaxed);
        if (before(at, h)) at = h;
      }
    }
    if (!blocked) {
      advance_hint(head_, at);  // keep the progress of a long scan
    } else if (closed_.load(std::memory_order_seq_cst)) {
      // Drained unless a put claimed this very ticket before the close (it publishes or aborts
      // soon): re-read the slot after seeing `closed` (see "close/drain" at the top).
      const std::uint64_t now = state_at(stride, index_of(at)).load(std::memory_order_seq_cst);
      const bool writer_in_flight = kind_of(now) == kWriting && static_cast<std::uint32_t>(now >> 32) == lap_of(at);
      if (now == seen && !writer_in_flight) return Result::closed;
      if (now != seen) {
        at = head_.load(std::memory_order_relaxed);
        continue;
      }
    }
    if (deadline == nullptr) {
      if (blocked) check_stuck(stride, at, seen, thread_watch());
      return Result::would_block;
    }
    if (!await(false, stride, at, blocked, seen, *deadline, local, first_wait)) return Result::timed_out;
    first_wait = false;
    at = head_.load(std::memory_order_relaxed);
  }
}

inline Ring::Result Ring::produce_packed(std::uint64_t item, const Deadline* deadline, const char* op) {
  // Fast path, inline: one CAS at the hinted ticket. Anything else (full, a lost race, a
  // stale hint, closed, JoinableQueue accounting) goes the whole way in produce_packed_slow.
  // Relaxed loads: closed_ is re-checked there; the hint orders nothing (see advance_hint).
  if (!closed_.load(std::memory_order_relaxed) && !(flags_ & kJoinable)) [[likely]] {
    const std::uint64_t at = tail_.load(std::memory_order_relaxed);
    if (index_of(at) < capacity_) [[likely]] {
      std::uint64_t s = make_state(lap_of(at), kEmpty), it = 0;
      if (cas16(packed_at(index_of(at)), s, it, make_state(lap_of(at), kFull), item)) {
        advance_hint(tail_, next(at));
        not_empty_.notify_one();  // after a locked RMW: the Dekker store ParkingLot requires
        return Result::done;
      }
    }
  }
  return produce_packed_slow(item, deadline, op);
}

inline Ring::Result Ring::consume_packed(std::uint64_t& item, const Deadline* deadline, const char* op) {
  // Fast path, inline: the item at the hinted ticket, if it is there (see consume_packed_slow).
  const std::uint64_t at = head_.load(std::memory_order_relaxed);
  if (index_of(at) < capacity_) [[likely]] {
    PackedSlot& slot = packed_at(index_of(at));
    std::uint64_t s = slot.state.load(std::memory_order_relaxed);
    if (s == make_state(lap_of(at), kFull)) {
      std::uint64_t it = slot.item.load(std::memory_order_relaxed);
      if (cas16(slot, s, it, make_state(lap_of(at) + 1, kEmpty), 0)) {
        advance_hint(head_, next(at));
        not_full_.notify_one();
        // seq_cst: task_done's check reads it; the item is ours now, count it as got.
        if (flags_ & kJoinable) got_.fetch_add(1, std::memory_order_seq_cst);
        item = it;
        return Result::done;
      }
    }
  }
  return consume_packed_slow(item, deadline, op);
}

/// Tag for the constructors that turn on JoinableQueue's accounting.
struct JoinableTag {};

}  // namespace detail

/// A bounded MPMC queue of trivially copyable T in shared memory. Make it in an Arena
/// (`arena.make<Queue<Job>>("jobs", 1024)`), or in any MAP_SHARED mapping with the storage
/// constructor. Items are copied in and out with memcpy.
template <class T>
  requires std::is_trivially_copyable_v<T>
class Queue {
  static_assert(alignof(T) <= detail::kCacheLine, "items are aligned to at most a cache line (64 bytes)");
  static_assert(!std::is_pointer_v<T>,
                "a pointer means nothing in another process: queue an offset (Arena::offset_of) instead");

 public:
  using value_type = T;
  /// Items of at most 8 bytes go in packed slots (16 bytes: state word and item, put and got
  /// by one 16-byte CAS) where the target has a 16-byte CAS (x86-64).
  static constexpr bool packed = detail::kHasPackedSlots && sizeof(T) <= 8 && alignof(T) <= 8;
  /// Offset of the item in a slot: after the 8-byte state word, at T's alignment.
  static constexpr std::size_t item_offset = alignof(T) > 8 ? alignof(T) : 8;
  /// Bytes per slot: 16 when packed, else state word and item rounded up to whole cache lines.
  static constexpr std::size_t slot_stride =
      packed ? detail::kPackedStride
             : (item_offset + sizeof(T) + detail::kCacheLine - 1) / detail::kCacheLine * detail::kCacheLine;

  /// A queue holding at most `capacity` items, its slots allocated from `arena` (which must be
  /// the arena this Queue object lives in: make it with arena.make). Throws Error
  /// (invalid_argument) for a capacity of 0 or above 2^32 - 1, Error(out_of_memory) when the
  /// arena cannot hold capacity * slot_stride bytes.
  Queue(Arena& arena, std::size_t capacity) : Queue(arena, capacity, 0u) {}

  /// A queue whose slots are `storage`: at least storage_bytes(capacity) bytes, 64-aligned, in
  /// the same shared mapping as this object, outliving it. Error(invalid_argument) otherwise.
  Queue(std::span<std::byte> storage, std::size_t capacity) : Queue(storage, capacity, 0u) {}

  /// Bytes of slot storage a queue of `capacity` items needs.
  static constexpr std::size_t storage_bytes(std::size_t capacity) noexcept { return capacity * slot_stride; }

  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;

  /// Puts `item`, blocking while the queue is full. Throws Closed if the queue is closed
  /// (before or while waiting).
  void put(const T& item) { put_impl(item, &kNever); }
  /// Puts `item` if there is room now; false if full (Python's put_nowait). Throws Closed.
  bool try_put(const T& item) { return put_impl(item, nullptr); }
  /// Puts `item`, waiting for room until `timeout` has passed; false then. Throws Closed.
  template <class Rep, class Period>
  bool try_put_for(const T& item, const std::chrono::duration<Rep, Period>& timeout) {
    const Deadline d = Deadline::after(timeout);
    return put_impl(item, &d);
  }
  /// Puts `item`, waiting for room until `deadline`; false then. Throws Closed.
  template <class Clock, class Duration>
  bool try_put_until(const T& item, const std::chrono::time_point<Clock, Duration>& deadline) {
    const Deadline d = Deadline::at(deadline);
    return put_impl(item, &d);
  }

  /// Takes the oldest item, blocking while the queue is empty. Throws Closed once the queue is
  /// closed and drained.
  T get() {
    Raw out;
    if (get_impl(out, &kNever) != detail::Ring::Result::done) detail::Ring::throw_closed("Queue::get");
    return std::bit_cast<T>(out);
  }
  /// The oldest item if there is one now (also after close, until drained), else nothing.
  std::optional<T> try_get() { return try_get_impl(nullptr); }
  /// The oldest item, waiting until `timeout` has passed; nothing then — or at once, when the
  /// queue is closed and drained.
  template <class Rep, class Period>
  std::optional<T> try_get_for(const std::chrono::duration<Rep, Period>& timeout) {
    const Deadline d = Deadline::after(timeout);
    return try_get_impl(&d);
  }
  /// The oldest item, waiting until `deadline`; as try_get_for.
  template <class Clock, class Duration>
  std::optional<T> try_get_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    const Deadline d = Deadline::at(deadline);
    return try_get_impl(&d);
  }

  /// Snapshot of the number of items: exact when no operation is in flight (a slot skipped
  /// after a dead producer or a put aborted by close counts until a get passes it).
  std::size_t size() const noexcept { return ring_.size(slot_stride); }
  bool empty() const noexcept { return size() == 0; }
  bool full() const noexcept { return size() >= capacity(); }
  /// The capacity asked for at construction, exactly.
  std::size_t capacity() const noexcept { return ring_.capacity(); }

  /// Closes the queue and wakes every waiter. Idempotent; never throws.
  void close() noexcept { ring_.close(); }
  bool closed() const noexcept { return ring_.closed(); }

  /// Slots recovered from processes that died holding them (snapshot; diagnostics).
  std::uint64_t recovered_slots() const noexcept { return ring_.recovered(); }

  /// For Arena::destroy: gives the slots back to the arena.
  void arena_release(Arena& arena) noexcept { ring_.release_to(arena); }

  /// The shared control block (tests and diagnostics).
  detail::Ring& ring() noexcept { return ring_; }

 protected:
  Queue(Arena& arena, std::size_t capacity, detail::JoinableTag) : Queue(arena, capacity, detail::Ring::kJoinable) {}
  Queue(std::span<std::byte> storage, std::size_t capacity, detail::JoinableTag)
      : Queue(storage, capacity, detail::Ring::kJoinable) {}

  detail::Ring ring_;

 private:
  static constexpr Deadline kNever = Deadline::never();

  Queue(Arena& arena, std::size_t capacity, std::uint32_t flags) {
    const std::size_t bytes = detail::Ring::checked_bytes(capacity, slot_stride, "Queue::Queue");
    ring_.init(detail::Ring::allocate_slots(arena, bytes), capacity, slot_stride, item_offset, sizeof(T),
               flags | detail::Ring::kOwnsArena | (packed ? detail::Ring::kPacked : 0u));
  }
  Queue(std::span<std::byte> storage, std::size_t capacity, std::uint32_t flags) {
    const std::size_t bytes = detail::Ring::checked_bytes(capacity, slot_stride, "Queue::Queue");
    detail::Ring::check_storage(storage, bytes, "Queue::Queue");
    ring_.init(storage.data(), capacity, slot_stride, item_offset, sizeof(T),
               flags | (packed ? detail::Ring::kPacked : 0u));
  }

  bool put_impl(const T& item, const Deadline* d) {
    if constexpr (packed) {
      std::uint64_t word = 0;
      std::memcpy(&word, &item, sizeof(T));
      return ring_.produce_packed(word, d, "Queue::put") == detail::Ring::Result::done;
    } else {
      return ring_.template produce<slot_stride>(
                 slot_stride, d, [&item](std::byte* p) noexcept { std::memcpy(p, &item, sizeof(T)); },
                 "Queue::put") == detail::Ring::Result::done;
    }
  }
  // The item's bytes: T need not be default-constructible, only trivially copyable.
  struct Raw {
    alignas(T) std::byte bytes[sizeof(T)];
  };
  static_assert(sizeof(Raw) == sizeof(T));

  detail::Ring::Result get_impl(Raw& out, const Deadline* d) {
    if constexpr (packed) {
      std::uint64_t word = 0;
      const detail::Ring::Result r = ring_.consume_packed(word, d, "Queue::get");
      if (r == detail::Ring::Result::done) std::memcpy(out.bytes, &word, sizeof(T));
      return r;
    } else {
      return ring_.template consume<slot_stride, false>(
          slot_stride, d, [](const std::byte*) noexcept {},
          [&out](const std::byte* p) noexcept { std::memcpy(out.bytes, p, sizeof(T)); }, "Queue::get");
    }
  }
  std::optional<T> try_get_impl(const Deadline* d) {
    Raw out;
    if (get_impl(out, d) == detail::Ring::Result::done) return std::bit_cast<T>(out);
    return std::nullopt;
  }
};

/// A Queue that also counts unfinished tasks, as Python's JoinableQueue: every put adds one,
/// every task_done() removes one, join() waits for zero. The count lives in the queue's shared
/// control block, so join() in one process sees task_done() in another. Adds no data members.
///
/// Death: an item lost with a dead consumer (see Queue) and a put abandoned by a dead producer
/// are subtracted when their slot is recovered. A consumer killed after get() returned but before
/// its task_done(), or a producer killed between counting its put and claiming a slot, leaves the
/// count too high for good (as in Python): prefer join_for/join_until where workers can die.
template <class T>
class JoinableQueue : public Queue<T> {
 public:
  JoinableQueue(Arena& arena, std::size_t capacity) : Queue<T>(arena, capacity, detail::JoinableTag{}) {}
  JoinableQueue(std::span<std::byte> storage, std::size_t capacity)
      : Queue<T>(storage, capacity, detail::JoinableTag{}) {}

  /// Marks one item got from this queue as processed. Throws Error(invalid_argument) when called
  /// more times than items were got (from any process).
  void task_done() { this->ring_.task_done("JoinableQueue::task_done"); }

  /// Blocks until every item put has been got and marked task_done().
  void join() { this->ring_.join_until(Deadline::never()); }
  /// As join(), giving up after `timeout`: false then.
  template <class R, class P>
  bool join_for(const std::chrono::duration<R, P>& timeout) {
    return this->ring_.join_until(Deadline::after(timeout));
  }
  template <class Clock, class Duration>
  bool join_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    return this->ring_.join_until(Deadline::at(deadline));
  }

  /// Snapshot of the unfinished-task count.
  std::size_t unfinished_tasks() const noexcept {
    return static_cast<std::size_t>(this->ring_.unfinished());
  }
};

static_assert(std::is_standard_layout_v<Queue<long>> && std::is_standard_layout_v<JoinableQueue<long>>,
              "queues live in shared memory: standard layout");
static_assert(sizeof(JoinableQueue<long>) == sizeof(Queue<long>), "a JoinableQueue is a Queue plus nothing");

}  // namespace multiproc

#include <multiproc/byte_queue.hpp>
