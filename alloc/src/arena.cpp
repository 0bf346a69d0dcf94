// Arena: making the memfd, validating a foreign one, the mapping's lifetime, raw allocation.
// The allocator is allocator.cpp; the name directory is directory.cpp.
#include "heap.hpp"

#include <multiproc/arena.hpp>
#include <multiproc/error.hpp>
#include <multiproc/fd.hpp>
#include <multiproc/memfd.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

namespace multiproc {

using namespace detail::layout;

namespace {

constexpr int kSeals = memfd_seal::grow | memfd_seal::shrink | memfd_seal::seal;

[[noreturn]] void not_an_arena(int fd, const std::string& why) {
  throw Error(errc::bad_arena, "Arena::from_fd: fd " + std::to_string(fd) + " is not a multiproc arena (" + why + ")");
}

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

Arena Arena::create(std::size_t bytes, std::string_view label) {
  if (bytes > kMaxHeap)
    throw Error(errc::out_of_memory, "Arena::create: " + std::to_string(bytes) +
                                         " bytes is more than an arena's heap can hold (2^47 bytes)");
  const std::uint64_t heap = std::max<std::uint64_t>((bytes + kPage - 1) / kPage * kPage, kPage);
  const std::uint64_t total = kHeaderBytes + heap;
  const std::string name(label.substr(0, 200));  // memfd names are at most 249 bytes
  UniqueFd memfd = create_sealed_memfd(name, total, kSeals, "Arena::create");
  SharedMapping map = SharedMapping::map(memfd.get(), total, "Arena::create");
  detail::Heap::format(map.data(), total);
  Arena a(memfd.release(), map.release(), total, heap);
  return a;
}

Arena Arena::from_fd(int fd) {
  if (const std::string why = why_not_memfd(fd); !why.empty()) not_an_arena(fd, why);
  const int seals = memfd_seals(fd);
  if (seals < 0) not_an_arena(fd, "not a memfd: the file cannot carry seals");
  if ((seals & kSeals) != kSeals)
    not_an_arena(fd, "the memfd is not sealed against growing, shrinking and resealing (seals " + hex(seals) + ")");
  if (seals & (memfd_seal::write | memfd_seal::future_write)) not_an_arena(fd, "the memfd is sealed against writing");
  // Size again, now that it can no longer change.
  const std::int64_t file_bytes = file_size(fd);
  if (file_bytes < 0) not_an_arena(fd, std::string("fstat failed: ") + std::strerror(errno));
  const auto size = static_cast<std::uint64_t>(file_bytes);
  if (size < kHeaderBytes + kPage)
    not_an_arena(fd, "truncated: " + std::to_string(size) + " bytes, less than a header and one heap page (" +
                         std::to_string(kHeaderBytes + kPage) + ")");
  if (size % kPage != 0) not_an_arena(fd, std::to_string(size) + " bytes is not a whole number of pages");

  UniqueFd own(dup_cloexec(fd));
  if (!own) detail::throw_errno(errno, "Arena::from_fd: dup of fd " + std::to_string(fd));
  SharedMapping map = SharedMapping::try_map(own.get(), size);
  if (!map) not_an_arena(fd, std::string("it cannot be mapped: ") + std::strerror(errno));

  const auto& l = *reinterpret_cast<const Layout*>(map.data());
  const Header& h = l.header;
  if (h.magic != kMagic) not_an_arena(fd, "bad magic");
  if (h.version != kVersion)
    not_an_arena(fd, "layout version " + std::to_string(h.version) + "; this library reads version " +
                         std::to_string(kVersion));
  if (h.checksum != header_checksum(h)) not_an_arena(fd, "header checksum mismatch");
  if (h.total_bytes != size)
    not_an_arena(fd, "the header says " + std::to_string(h.total_bytes) + " bytes; the memfd has " + std::to_string(size));
  if (h.heap_begin != kHeaderBytes || h.heap_end != size) not_an_arena(fd, "heap bounds do not match the layout");
  const std::uint32_t mode = RobustMutex::native() ? 1 : 0;
  if (h.lock_mode != mode || !mutex_mode_matches(l.alloc.lock) || !mutex_mode_matches(l.dir.lock))
    not_an_arena(fd, std::string("its locks were made in the ") + (h.lock_mode ? "native" : "pthread fallback") +
                         " lock mode; this process uses the " + (mode ? "native" : "pthread fallback") +
                         " mode (MULTIPROC_LOCK_FALLBACK differs)");
  if (l.alloc.log_count > kLogCapacity) not_an_arena(fd, "the allocator's undo log length is out of range");
  for (const std::uint64_t c : {l.dir.first_chunk, l.dir.pending_chunk})
    if (c != 0 && (c < h.heap_begin + kBlockHeader || c % kGranule != 0 || c >= size))
      not_an_arena(fd, "a directory page offset outside the heap");
  // The allocator's lists and the directory's pages are checked as they are followed (every
  // offset is bounds-checked before use), so a peer's later scribbles are caught too.
  const std::uint64_t heap_bytes = h.heap_end - h.heap_begin;
  Arena a(own.release(), map.release(), size, heap_bytes);
  return a;
}

Arena::Arena(Arena&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      base_(std::exchange(other.base_, nullptr)),
      mapped_(std::exchange(other.mapped_, 0)),
      heap_bytes_(std::exchange(other.heap_bytes_, 0)) {}

Arena& Arena::operator=(Arena&& other) noexcept {
  if (this != &other) {
    Arena old(std::move(*this));  // unmapped and closed at the end of this scope
    fd_ = std::exchange(other.fd_, -1);
    base_ = std::exchange(other.base_, nullptr);
    mapped_ = std::exchange(other.mapped_, 0);
    heap_bytes_ = std::exchange(other.heap_bytes_, 0);
  }
  return *this;
}

Arena::~Arena() {
  const UniqueFd close_last(fd_);
  const SharedMapping unmap_first = SharedMapping::adopt(base_, mapped_);
}

std::size_t Arena::used() const noexcept { return base_ == nullptr ? 0 : detail::Heap(base_, mapped_).used(); }

void* Arena::allocate(std::size_t bytes, std::size_t align) {
  return base_ + detail::Heap(base_, mapped_).allocate(bytes, align, 0, 0, "Arena::allocate");
}

void Arena::deallocate(void* p) noexcept {
  if (p == nullptr) return;
  detail::Heap heap(base_, mapped_);
  if (!contains(p) || heap.deallocate(offset_of(p), false) != detail::Heap::Freed::freed) heap.count_invalid_free();
}

void Arena::bad_pointer(const void* p) const {
  throw Error(std::make_error_code(std::errc::invalid_argument),
              "Arena::offset_of: " + hex(reinterpret_cast<std::uintptr_t>(p)) + " is not inside this arena's mapping [" +
                  hex(reinterpret_cast<std::uintptr_t>(base_)) + ", +" + std::to_string(mapped_) + ")");
}

void Arena::bad_offset(std::uint64_t offset) const {
  throw Error(std::make_error_code(std::errc::invalid_argument),
              "Arena::at: offset " + std::to_string(offset) + " is outside this arena's " + std::to_string(mapped_) +
                  " mapped bytes");
}

}  // namespace multiproc
