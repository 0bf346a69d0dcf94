// The ring's slow paths: waiting, liveness checks and recovery of dead claimants, close, size,
// JoinableQueue accounting. The fast paths are inline in queue.hpp.
#include <multiproc/queue.hpp>

#include <multiproc/pidfd.hpp>

#include <algorithm>
#include <thread>
#include <new>
#include <string>

namespace multiproc::detail {

namespace {

using clock = std::chrono::steady_clock;

std::uint64_t mix(std::uint64_t h, std::uint64_t v) noexcept {
  h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  return h * 0xFF51AFD7ED558CCDull;
}

Error invalid(const std::string& what) { return Error(std::make_error_code(std::errc::invalid_argument), what); }

// Yields before parking, after the pause-spin (see Ring::await). Measured on 2 vCPUs, 2P2C
// unpinned: 0 -> 2 M items/s (a FUTEX_WAKE per item), 16 -> 14 M/s, 64 -> 14 M/s.
constexpr int kYieldRounds = 16;
constexpr auto kLongYield = std::chrono::microseconds(30);
constexpr int kYieldBackoff = 64;

Deadline earliest(const Deadline& d, clock::time_point t) noexcept {
  return d.time_point() <= t ? d : Deadline::at(t);
}

}  // namespace

std::size_t Ring::checked_bytes(std::size_t capacity, std::size_t stride, const char* who) {
  if (capacity == 0) throw invalid(std::string(who) + ": capacity must be at least 1");
  if (capacity > kMaxCapacity)
    throw invalid(std::string(who) + ": capacity " + std::to_string(capacity) + " exceeds the limit of 2^32 - 1");
  if (stride != 0 && capacity > SIZE_MAX / stride)
    throw invalid(std::string(who) + ": capacity " + std::to_string(capacity) + " slots of " + std::to_string(stride) +
                  " bytes overflow the address space");
  return capacity * stride;
}

void Ring::check_storage(std::span<std::byte> storage, std::size_t bytes, const char* who) {
  if (storage.size() < bytes)
    throw invalid(std::string(who) + ": storage of " + std::to_string(storage.size()) + " bytes is smaller than the " +
                  std::to_string(bytes) + " the slots need");
  if (reinterpret_cast<std::uintptr_t>(storage.data()) % kCacheLine != 0)
    throw invalid(std::string(who) + ": storage must be aligned to 64 bytes");
}

void Ring::init(void* slots, std::size_t capacity, std::size_t stride, std::size_t payload_offset, std::size_t payload,
                std::uint32_t flags) noexcept {
  slots_off_ = static_cast<std::int64_t>(reinterpret_cast<std::uintptr_t>(slots) - reinterpret_cast<std::uintptr_t>(this));
  stride_ = stride;
  payload_ = payload;
  capacity_ = static_cast<std::uint32_t>(capacity);
  payload_off_ = static_cast<std::uint32_t>(payload_offset);
  flags_ = flags;
  std::uint64_t h = 0x6D70717565756531ull;  // "mpqueue1"
  for (std::uint64_t v : {static_cast<std::uint64_t>(slots_off_), stride_, payload_, std::uint64_t{capacity_},
                          std::uint64_t{payload_off_}})
    h = mix(h, v);
  check_ = h;
  for (std::size_t i = 0; i < capacity; ++i) {
    std::byte* slot = static_cast<std::byte*>(slots) + i * stride;
    ::new (static_cast<void*>(slot)) std::atomic<std::uint64_t>(make_state(0, kEmpty));
    // A packed slot's item word is 0 while empty (produce_packed's blind CAS expects it).
    if (flags & kPacked) ::new (static_cast<void*>(slot + 8)) std::atomic<std::uint64_t>(0);
  }
  tail_.store(0, std::memory_order_relaxed);  // relaxed: nobody else can see the ring before construction ends
  head_.store(0, std::memory_order_relaxed);
}

void Ring::check_geometry(const char* op) const {
  std::uint64_t h = 0x6D70717565756531ull;
  for (std::uint64_t v : {static_cast<std::uint64_t>(slots_off_), stride_, payload_, std::uint64_t{capacity_},
                          std::uint64_t{payload_off_}})
    h = mix(h, v);
  if (h != check_ || capacity_ == 0 || payload_off_ < 8 || stride_ < std::uint64_t{payload_off_} + payload_ ||
      stride_ % kCacheLine != 0)
    throw Error(errc::bad_message, std::string(op) + ": the queue's header is corrupted (geometry check failed)");
}

void Ring::throw_corrupt(const char* op, std::uint64_t at) const {
  throw Error(errc::bad_message, std::string(op) + ": the ring is corrupted (cursor index " +
                                     std::to_string(index_of(at)) + " >= capacity " + std::to_string(capacity_) + ")");
}

void Ring::throw_closed(const char* op) {
  throw Closed(std::string(op) + (std::string_view(op).ends_with("put") ? ": the queue is closed"
                                                                           : ": the queue is closed and drained"));
}

void Ring::throw_lost(const char* op) {
  throw Error(errc::bad_message, std::string(op) +
                                     ": this thread's slot was taken over while it held it (the ring was overwritten, "
                                     "or processes in different PID namespaces share the queue)");
}

StuckWatch& Ring::thread_watch() noexcept {
  static thread_local StuckWatch watch;
  return watch;
}

void Ring::unfinished_sub() noexcept {
  // seq_cst RMW then ParkingLot::notify: the Dekker pair join() relies on.
  if (unfinished_.fetch_sub(1, std::memory_order_seq_cst) == 1) join_lot_.notify_all();
}

void Ring::abandon(std::size_t stride, std::uint64_t at, std::uint64_t claimed) noexcept {
  std::uint64_t expected = claimed;
  if (state_at(stride, index_of(at))
          .compare_exchange_strong(expected, make_state(lap_of(at) + 1, kEmpty), std::memory_order_seq_cst)) {
    if (flags_ & kJoinable) unfinished_sub();
  }
  // Getters waiting on this slot must step past it; putters may now use it.
  not_empty_.notify_all();
  not_full_.notify_all();
}

bool Ring::try_recover(std::size_t stride, std::uint64_t at, std::uint64_t seen) {
  if (!process_dead(static_cast<pid_t>(tid_of(seen)))) return false;
  std::uint64_t expected = seen;
  // seq_cst: the recovered slot is handed to the next claimant like any release.
  if (state_at(stride, index_of(at))
          .compare_exchange_strong(expected, make_state(static_cast<std::uint32_t>(seen >> 32) + 1, kEmpty),
                                   std::memory_order_seq_cst)) {
    recovered_.fetch_add(1, std::memory_order_relaxed);  // a statistic; orders nothing
    // The item this claim stood for will never be task_done(): a dead put's was counted, a
    // dead get's was never counted as got.
    if (flags_ & kJoinable) unfinished_sub();
    not_empty_.notify_all();
    not_full_.notify_all();
  }
  return true;  // recovered, by us or by someone faster
}

bool Ring::check_stuck(std::size_t stride, std::uint64_t at, std::uint64_t seen, StuckWatch& watch) {
  const Kind k = kind_of(seen);
  if ((k != kWriting && k != kReading) || tid_of(seen) == 0) return false;  // not a claim (a sealed slot)
  const void* slot = &state_at(stride, index_of(at));
  const auto now = clock::now();
  if (watch.slot != slot || watch.state != seen) {
    watch = StuckWatch{slot, seen, now, now + kStuckBound, kStuckBound};
    return false;
  }
  if (now < watch.next_check) return false;
  if (try_recover(stride, at, seen)) {
    watch = StuckWatch{};
    return true;
  }
  watch.interval = std::min<std::chrono::milliseconds>(watch.interval * 2, kStuckCheckMax);
  watch.next_check = now + watch.interval;
  return false;
}

bool Ring::await(bool producer, std::size_t stride, std::uint64_t at, bool blocked, std::uint64_t seen,
                 const Deadline& deadline, StuckWatch& watch, bool first) {
  ParkingLot& lot = producer ? not_full_ : not_empty_;
  if (!blocked) {
    // The scan budget ran out: a ring moving faster than this thread can scan it (the scan's
    // progress is kept in the hint), or a corrupt one. Pause briefly, then scan on.
    std::this_thread::sleep_for(std::min<clock::duration>(std::chrono::microseconds(200), deadline.remaining()));
    return !deadline.expired();
  }
  std::atomic<std::uint64_t>& st = state_at(stride, index_of(at));
  auto changed = [&] { return st.load(std::memory_order_seq_cst) != seen || closed_.load(std::memory_order_seq_cst) != 0; };
  if (first) {
    // Spin (pause), then give the CPU away a few times before parking: with more processes than
    // CPUs, the process this one waits for is often runnable on this very CPU, and a parked
    // waiter costs every later put/get a FUTEX_WAKE. Bounded: at most kYieldRounds yields.
    // No clock read before this: a queue that is empty for a moment costs only the spin.
    if (spin_until(changed)) return true;
    // A yield that took long and did not help means an unrelated process got this CPU for a
    // slice: parking would have been better (a wake-up preempts it; a yielded waiter waits for
    // the slice to end). Then this thread parks straight away for its next kYieldBackoff waits.
    thread_local int skip_yields = 0;
    if (skip_yields > 0) {
      --skip_yields;
    } else {
      for (int i = 0; i < kYieldRounds && !deadline.expired(); ++i) {
        const auto before = clock::now();
        std::this_thread::yield();
        if (changed()) return true;
        if (clock::now() - before > kLongYield) {
          skip_yields = kYieldBackoff;
          break;
        }
      }
    }
  }
  auto wake = clock::now() + kParkRecheck;
  const Kind k = kind_of(seen);
  if (k == kWriting || k == kReading) {
    // Behind a claim: normally released within a microsecond; watch for a dead claimant.
    if (check_stuck(stride, at, seen, watch)) return true;  // the first call starts the watch
    wake = std::min(wake, watch.next_check);
  }
  lot.wait_until(changed, earliest(deadline, wake), false);
  return !deadline.expired() || changed();
}

std::optional<Ring::Result> Ring::producer_full(std::size_t stride, bool claimable, std::uint64_t at, bool blocked,
                                                std::uint64_t seen, const Deadline* deadline, StuckWatch& watch,
                                                bool& first_wait, const char* op) {
  const bool joinable = flags_ & kJoinable;
  if (!blocked) advance_hint(tail_, at);  // keep the progress of a long scan
  if (deadline == nullptr) {
    if (blocked && claimable) check_stuck(stride, at, seen, thread_watch());
    if (joinable) unfinished_sub();
    return Result::would_block;
  }
  const bool again = await(true, stride, at, blocked, seen, *deadline, watch, first_wait);
  first_wait = false;
  if (closed_.load(std::memory_order_seq_cst)) {
    if (joinable) unfinished_sub();
    throw_closed(op);
  }
  if (!again) {
    if (joinable) unfinished_sub();
    return Result::timed_out;
  }
  return std::nullopt;
}

Ring::Result Ring::produce_packed_slow(std::uint64_t item, const Deadline* deadline, const char* op) {
  // Relaxed: a put that starts after close() returned (happens-after its store) sees it; a
  // racing one is stopped by the seal (see "close/drain" at the top).
  if (closed_.load(std::memory_order_relaxed)) throw_closed(op);
  const bool joinable = flags_ & kJoinable;
  if (joinable) unfinished_.fetch_add(1, std::memory_order_seq_cst);  // as in produce
  StuckWatch local;  // await's; never used here: packed slots are never claimed
  bool first_wait = true;
  std::uint64_t at = tail_.load(std::memory_order_relaxed);  // a hint; see advance_hint
  for (;;) {
    std::size_t budget = scan_budget();
    std::uint64_t seen = 0;
    bool blocked = false;
    for (;;) {
      if (index_of(at) >= capacity_) [[unlikely]] {
        if (joinable) unfinished_sub();
        throw_corrupt(op, at);
      }
      PackedSlot& slot = packed_at(index_of(at));
      const std::uint32_t lap = lap_of(at);
      const std::uint64_t empty = make_state(lap, kEmpty);
      // Blind: an empty slot's item word is 0, so the CAS needs no load before it (one
      // read-for-ownership of the line). A failure loads what the slot holds into {s, it}.
      std::uint64_t s = empty, it = 0;
      bool put = cas16(slot, s, it, make_state(lap, kFull), item);
      if (!put && s == empty) [[unlikely]]
        put = cas16(slot, s, it, make_state(lap, kFull), item);  // a nonzero item word: a scribbled ring
      if (put) {
        advance_hint(tail_, next(at));
        not_empty_.notify_one();  // after a locked RMW: the Dekker store ParkingLot requires
        return Result::done;
      }
      if (is_sealed(s)) {  // a get found the closed queue drained here
        if (joinable) unfinished_sub();
        throw_closed(op);
      }
      if (!producer_step(at, s, lap, budget, blocked, seen)) break;
    }
    if (const std::optional<Result> r =
            producer_full(kPackedStride, false, at, blocked, seen, deadline, local, first_wait, op))
      return *r;
    at = tail_.load(std::memory_order_relaxed);
  }
}

Ring::Result Ring::consume_packed_slow(std::uint64_t& item, const Deadline* deadline, const char* op) {
  StuckWatch local;  // await's; never used here
  bool first_wait = true;
  std::uint64_t at = head_.load(std::memory_order_relaxed);  // a hint; see advance_hint
  for (;;) {
    std::size_t budget = scan_budget();
    std::uint64_t seen = 0;
    bool blocked = false;
    for (;;) {
      if (index_of(at) >= capacity_) [[unlikely]] throw_corrupt(op, at);
      PackedSlot& slot = packed_at(index_of(at));
      const std::uint32_t lap = lap_of(at);
      const std::uint64_t full = make_state(lap, kFull);
      // Relaxed loads: they only pick the CAS's expected words; the CAS checks both at once,
      // so a success takes exactly the item published with `full` (its lap makes it unique).
      // Loading first (not a blind CAS) keeps a consumer on an empty queue from taking the
      // line away from the producer about to fill it.
      std::uint64_t s = slot.state.load(std::memory_order_relaxed);
      if (s == full) {
        std::uint64_t it = slot.item.load(std::memory_order_relaxed);
        if (cas16(slot, s, it, make_state(lap + 1, kEmpty), 0)) {
          advance_hint(head_, next(at));
          not_full_.notify_one();  // after a locked RMW, as in produce_packed
          // seq_cst: task_done's check reads it; the item is ours now, count it as got.
          if (flags_ & kJoinable) got_.fetch_add(1, std::memory_order_seq_cst);
          item = it;
          return Result::done;
        }
        if (s == full) continue;  // a stale item word in our loads (a scribbled ring): again
      }
      const std::int64_t d = phase_diff(s, std::uint64_t{lap} * 4 + kFull);
      if (d < 0 || --budget == 0) {
        blocked = d < 0;
        seen = s;
        break;
      }
      // Ahead: this ticket is consumed. Empty or full in lap L' means L' - 1 was consumed here.
      at = skip(at, static_cast<std::uint32_t>(s >> 32) - 1);
      if ((budget & 15) == 0) {
        const std::uint64_t h = head_.load(std::memory_order_relaxed);
        if (before(at, h)) at = h;
      }
    }
    if (!blocked) {
      advance_hint(head_, at);
    } else if (is_sealed(seen)) {
      return Result::closed;
    } else if (closed_.load(std::memory_order_seq_cst)) {
      // Drained unless a put is about to publish at this very ticket: seal the slot so that
      // none can (its CAS expects `empty`). Lost race: an item arrived, scan again.
      std::uint64_t s = seen, it = 0;
      if (seen != make_state(lap_of(at), kEmpty) ||  // not empty: a scribbled ring, call it drained
          cas16(packed_at(index_of(at)), s, it, sealed(lap_of(at)), 0) || is_sealed(s))
        return Result::closed;
      at = head_.load(std::memory_order_relaxed);
      continue;
    }
    if (deadline == nullptr) return Result::would_block;
    if (!await(false, kPackedStride, at, blocked, seen, *deadline, local, first_wait)) return Result::timed_out;
    first_wait = false;
    at = head_.load(std::memory_order_relaxed);
  }
}

void Ring::close() noexcept {
  closed_.store(1, std::memory_order_seq_cst);
  not_empty_.notify_all();
  not_full_.notify_all();
}

std::size_t Ring::size(std::size_t stride) const noexcept {
  if (capacity_ == 0) return 0;
  // From each hint, step over tickets already taken by that side, to the true cursor.
  auto true_cursor = [&](const std::atomic<std::uint64_t>& hint, bool producer) {
    std::uint64_t at = hint.load(std::memory_order_seq_cst);
    for (std::size_t budget = scan_budget(); budget > 0; --budget) {
      if (index_of(at) >= capacity_) return at;
      const std::uint64_t s = state_at(stride, index_of(at)).load(std::memory_order_seq_cst);
      const std::uint32_t lap = lap_of(at);
      const auto slot_lap = static_cast<std::uint32_t>(s >> 32);
      if (is_sealed(s)) return at;  // closed and drained here: no side moves past it
      if (producer) {
        if (phase_diff(s, std::uint64_t{lap} * 4) <= 0) return at;
        at = skip(at, kind_of(s) == kEmpty ? slot_lap - 1 : slot_lap);
      } else {
        if (phase_diff(s, std::uint64_t{lap} * 4 + kFull) <= 0) return at;
        at = skip(at, kind_of(s) == kReading ? slot_lap : slot_lap - 1);
      }
    }
    return at;
  };
  const std::uint64_t h = true_cursor(head_, false);
  const std::uint64_t t = true_cursor(tail_, true);
  if (index_of(h) >= capacity_ || index_of(t) >= capacity_) return 0;
  const std::int64_t n = static_cast<std::int64_t>(lap_diff(lap_of(t), lap_of(h))) * capacity_ +
                         static_cast<std::int64_t>(index_of(t)) - static_cast<std::int64_t>(index_of(h));
  return n <= 0 ? 0 : std::min<std::size_t>(static_cast<std::size_t>(n), capacity_);
}

void Ring::task_done(const char* op) {
  std::uint64_t got = got_.load(std::memory_order_seq_cst);
  do {
    if (got == 0)
      throw Error(std::make_error_code(std::errc::invalid_argument),
                  std::string(op) + ": called more times than items were got from the queue");
  } while (!got_.compare_exchange_weak(got, got - 1, std::memory_order_seq_cst));
  unfinished_sub();
}

bool Ring::join_until(const Deadline& deadline) {
  auto done = [&] { return unfinished_.load(std::memory_order_seq_cst) == 0; };
  for (bool spin = true;; spin = false) {
    if (join_lot_.wait_until(done, earliest(deadline, clock::now() + kParkRecheck), spin)) return true;
    if (deadline.expired()) return done();
  }
}

bool Ring::test_claim_and_abandon(std::size_t stride, bool as_producer) {
  if (flags_ & kPacked) return false;  // packed slots are never claimed
  std::atomic<std::uint64_t>& cursor = as_producer ? tail_ : head_;
  std::uint64_t at = cursor.load();
  for (std::size_t budget = scan_budget(); budget > 0; --budget) {
    std::atomic<std::uint64_t>& st = state_at(stride, index_of(at));
    const std::uint32_t lap = lap_of(at);
    std::uint64_t want = make_state(lap, as_producer ? kEmpty : kFull);
    if (as_producer && (flags_ & kJoinable)) unfinished_.fetch_add(1);
    if (st.compare_exchange_strong(want, make_state(lap, as_producer ? kWriting : kReading, my_tid()))) {
      advance_hint(cursor, next(at));
      return true;
    }
    if (as_producer && (flags_ & kJoinable)) unfinished_.fetch_sub(1);
    if (phase_diff(want, std::uint64_t{lap} * 4 + (as_producer ? std::uint64_t{0} : std::uint64_t{kFull})) < 0) return false;
    at = next(at);
  }
  return false;
}

}  // namespace multiproc::detail
