// Internal: the arena's allocator — TLSF-style segregated fits, immediate coalescing, every
// bookkeeping store undo-logged under the arena's robust allocator lock. The design argument is
// at the top of multiproc/arena.hpp; the code is allocator.cpp.
#pragma once

#include "arena_layout.hpp"

#include <multiproc/arena.hpp>
#include <multiproc/deadline.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

namespace multiproc::detail {

/// The deadline for one wait on an arena lock or busy name (set_arena_wait_limit).
Deadline arena_wait_deadline() noexcept;

/// Turns a lock outcome other than acquired/owner_dead into the Error to throw.
[[noreturn]] void throw_lock_failure(LockResult r, const char* who, const char* what);

/// A view of one mapping's allocator; cheap to make (three words), no state of its own.
class Heap {
 public:
  /// `mapped`: the mapping's size, which from_fd has checked equals the header's total.
  Heap(std::byte* base, std::uint64_t mapped) noexcept;

  /// Writes a fresh header, allocator and directory state and one free block over the heap.
  static void format(std::byte* base, std::uint64_t total) noexcept;

  /// Allocates and returns the payload offset. `flags`: 0 or layout::kNamed. `publish`, when
  /// not 0, is the offset of a word that receives the payload offset inside the same undo-logged
  /// step, so no crash can leave the block allocated with nobody knowing where (directory pages
  /// and named objects use it). Throws Error(out_of_memory), invalid_argument (alignment),
  /// bad_arena (corrupt bookkeeping; nothing is changed), not_recoverable, timeout.
  std::uint64_t allocate(std::uint64_t bytes, std::uint64_t align, std::uint64_t publish, std::uint64_t flags,
                         const char* who);

  enum class Freed { freed, not_a_block, named, lock_failed, corrupt };
  /// Frees the block whose payload starts at `payload`. A named block is freed only with
  /// `named_ok`. Changes nothing unless the result is `freed`.
  Freed deallocate(std::uint64_t payload, bool named_ok) noexcept;
  /// Frees the block whose payload offset is in the word at `word` (read under the lock, so a
  /// half-finished allocate that published into it has been rolled back or completed first),
  /// and sets that word to 0 in the same logged step. A 0 word: nothing to do (`freed`).
  Freed deallocate_word(std::uint64_t word, bool named_ok) noexcept;

  /// Whether `payload` starts a live block (named or not, as asked). Takes the lock.
  bool is_live(std::uint64_t payload, bool named, const char* who) const;

  /// Takes and releases the lock, so an interrupted call's log is replayed first.
  void settle(const char* who) const;

  std::uint64_t used() const noexcept;
  std::uint64_t heap_begin() const noexcept { return begin_; }
  std::uint64_t heap_end() const noexcept { return end_; }

  struct Walk {
    std::uint64_t free_bytes = 0, free_blocks = 0, largest_free = 0, allocated_blocks = 0, allocated_bytes = 0;
  };
  /// A full consistency walk under the lock; returns an empty string or the first problem.
  std::string check(Walk* out) const;

  void count_invalid_free() noexcept;
  std::uint64_t invalid_frees() const noexcept;
  /// How many times a dead holder's call was rolled back (takes the lock).
  std::uint64_t recoveries() const;

 private:
  friend class HeapTxn;
  std::byte* base_;
  std::uint64_t begin_;
  std::uint64_t end_;
};

}  // namespace multiproc::detail
