// Internal: the byte layout of an arena's memfd (see the top of multiproc/arena.hpp).
// Shared by alloc/src/*.cpp, the arena_image fuzzer and the corpus generator; not installed.
// Every struct here lives in shared memory: standard layout, offsets only, sizes asserted.
#pragma once

#include <multiproc/arena.hpp>
#include <multiproc/robust_mutex.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace multiproc::detail::layout {

constexpr std::uint64_t chars8(std::string_view s) noexcept {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(static_cast<unsigned char>(s[i])) << (8 * i);
  return v;
}

inline constexpr std::uint64_t kMagic = chars8("MPARENA1");      // little-endian bytes "MPARENA1"
inline constexpr std::uint32_t kVersion = 1;
inline constexpr std::uint64_t kPage = 4096;

// ---- blocks ------------------------------------------------------------------------------
inline constexpr std::uint64_t kGranule = 16;                     // payload alignment and size step
inline constexpr std::uint64_t kBlockHeader = 16;                 // prev_size + size_flags
inline constexpr std::uint64_t kMinBlock = 32;                    // header + two free-list links
inline constexpr std::uint64_t kFree = 1;                         // this block is free
inline constexpr std::uint64_t kPrevFree = 2;                     // the physically previous block is free
inline constexpr std::uint64_t kNamed = 4;                        // directory-owned: deallocate() refuses it
inline constexpr std::uint64_t kFlagMask = kGranule - 1;

/// A block's header. prev_size is the physical predecessor's size (0 for the first block): the
/// boundary tag that finds a free predecessor to coalesce with, and a check that a pointer
/// handed to deallocate really starts a block. The links exist only while the block is free.
struct Block {
  std::uint64_t prev_size;
  std::uint64_t size_flags;  // size (a multiple of 16, >= 32) | kFree | kPrevFree | kNamed
  std::uint64_t next_free;   // offsets of neighbours in this block's free list; 0: none
  std::uint64_t prev_free;
};
static_assert(sizeof(Block) == kMinBlock, "a free block is exactly its header and two links");

// ---- TLSF classes --------------------------------------------------------------------------
// Sizes below 256 map to first-level 0 in 16-byte steps; above, first level fl = log2(size) - 7
// and 16 second-level classes per power of two.
inline constexpr int kSlLog2 = 4;
inline constexpr int kSl = 1 << kSlLog2;
inline constexpr std::uint64_t kSmall = std::uint64_t{kSl} * kGranule;  // 256
inline constexpr int kFl = 41;                                    // covers sizes < 2^48
inline constexpr std::uint64_t kMaxHeap = std::uint64_t{1} << 47;

// ---- header ------------------------------------------------------------------------------
struct Header {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t lock_mode;     // RobustMutex::native() of the creator; every peer must match
  std::uint64_t total_bytes;   // the memfd's size
  std::uint64_t heap_begin;    // == the page-rounded size of Layout
  std::uint64_t heap_end;      // == total_bytes
  std::uint64_t reserved[2];
  std::uint64_t checksum;      // fnv1a of the 56 bytes above
};
static_assert(sizeof(Header) == 64, "the immutable header is one cache line");

struct UndoEntry {
  std::uint64_t offset;     // the word's offset from the arena's first byte
  std::uint64_t old_value;  // what it held before the interrupted call changed it
};

/// Upper bound of logged stores in one allocator call: allocate with a front gap, a tail split
/// and a publish word is 22, deallocate with both neighbours free and a cleared word is 16
/// (counted at place() and free_block() in allocator.cpp). 48 leaves a margin; overflowing it
/// would be a bug in allocator.cpp, which aborts rather than log past the end.
inline constexpr std::uint64_t kLogCapacity = 48;

struct alignas(64) AllocState {
  RobustMutex lock;                  // guards everything below except the two counters
  std::uint64_t used;                // bytes in allocated blocks (read lock-free, relaxed)
  std::uint64_t invalid_frees;       // refused deallocate calls (relaxed fetch_add)
  std::uint64_t log_count;           // undo entries valid; 0 outside a call (the commit)
  std::uint64_t recoveries;         // owner_dead repairs so far (under the lock)
  UndoEntry log[kLogCapacity];
  std::uint64_t fl_bitmap;           // bit fl: some sl list of level fl is non-empty
  std::uint64_t sl_bitmap[kFl];      // bit sl: heads[fl][sl] != 0
  std::uint64_t heads[kFl][kSl];     // first free block of each class (offset; 0: empty)
};

// ---- directory ---------------------------------------------------------------------------
enum EntryState : std::uint32_t { kEntryFree = 0, kEntryConstructing = 1, kEntryReady = 2, kEntryDestroying = 3 };

struct DirEntry {
  RobustMutex mutex;                    //   0: held by the actor while constructing/destroying
  std::atomic<std::uint32_t> state;     //  48: EntryState
  std::uint32_t name_len;               //  52
  std::uint64_t name_hash;              //  56
  std::uint64_t offset;                 //  64: the object's payload offset (0: not allocated)
  std::uint64_t type_hash;              //  72
  std::uint64_t type_size;              //  80
  std::uint32_t type_align;             //  88
  std::int32_t actor_pid;               //  92: who constructs/destroys it (messages only)
  char name[Arena::kMaxName + 1];       //  96
};
static_assert(sizeof(DirEntry) == 160, "a directory entry is 160 bytes");

inline constexpr std::uint64_t kChunkMagic = chars8("MPDIRPG1");
inline constexpr std::uint32_t kFirstChunkEntries = 8;
inline constexpr std::uint32_t kMaxChunkEntries = 64;

/// A directory page: this header, then `capacity` name-hash hints (8 bytes each), then
/// `capacity` DirEntry. The hints let a lookup scan 8 bytes per name instead of 160: hint[i] is
/// the hash written when entry i was last claimed (under the directory lock); a freed entry
/// keeps its stale hint, which is harmless since a hit is confirmed against the entry itself.
struct DirChunk {
  std::uint64_t next;       // offset of the next page; 0: last
  std::uint64_t magic;      // kChunkMagic once initialised
  std::uint64_t capacity;   // entries in this page
  std::uint64_t reserved;
};
static_assert(sizeof(DirChunk) == 32, "a directory page header is 32 bytes");
inline constexpr std::uint64_t hint_offset(std::uint64_t chunk, std::uint64_t i) noexcept {
  return chunk + sizeof(DirChunk) + i * 8;
}
inline constexpr std::uint64_t entry_offset(std::uint64_t chunk, std::uint64_t capacity, std::uint64_t i) noexcept {
  return chunk + sizeof(DirChunk) + capacity * 8 + i * sizeof(DirEntry);
}
inline constexpr std::uint64_t chunk_bytes(std::uint64_t capacity) noexcept { return entry_offset(0, capacity, capacity); }

struct alignas(64) DirState {
  RobustMutex lock;             // guards the page chain and free -> constructing claims
  std::uint64_t first_chunk;    // offset of the first page; 0 until the first name
  std::uint64_t pending_chunk;  // a page allocated but not yet linked (set in the allocation's
                                // own undo-logged step, cleared once linked)
  std::uint64_t reclaimed;      // names freed after their actor died (relaxed fetch_add)
};

struct Layout {
  Header header;
  AllocState alloc;
  DirState dir;
};

inline constexpr std::uint64_t kHeaderBytes = (sizeof(Layout) + kPage - 1) / kPage * kPage;
static_assert(kHeaderBytes == 8192, "header, allocator and directory state fit in two pages");
static_assert(std::is_standard_layout_v<Layout> && std::is_standard_layout_v<DirEntry> && std::is_standard_layout_v<DirChunk>,
              "everything in the arena has standard layout");

inline std::uint64_t header_checksum(const Header& h) noexcept {
  return fnv1a(std::string_view(reinterpret_cast<const char*>(&h), offsetof(Header, checksum)));
}

/// The RobustMutex mode word (byte 40; see robust_mutex.hpp): 1 native, 0 pthread fallback.
/// A mutex made in the other mode than this process's must not be touched.
inline bool mutex_mode_matches(const RobustMutex& m) noexcept {
  std::uint32_t mode;
  std::memcpy(&mode, reinterpret_cast<const std::byte*>(&m) + 40, sizeof mode);
  return mode == (RobustMutex::native() ? 1u : 0u);
}

}  // namespace multiproc::detail::layout
