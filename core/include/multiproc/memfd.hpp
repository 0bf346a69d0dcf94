// multiproc/memfd.hpp — sealed memfds and their shared mappings.
//
// The one place the library creates, inspects and maps memfds (memfd_create(2), fcntl(2) file
// seals, mmap(2)); the layers above core/ (the Arena) go through these instead of making the
// system calls themselves. Descriptors are owned by UniqueFd (fd.hpp), mappings by SharedMapping.
//
// Seals: a memfd made with MFD_ALLOW_SEALING can be sealed with `memfd_seal::*` bits; once
// `grow | shrink` are on its size is fixed for every process holding it, so a peer that maps it
// can never be cut short (SIGBUS) by a truncation. `seal` forbids adding or removing seals later.
//
// Nothing here blocks; nothing here has a fast path (these run once per arena create/attach).
// Throwing calls throw multiproc::Error whose code() is the system call's errno and whose
// what() is "<who>: <step that failed>: <strerror>"; the noexcept calls return -1 (or an empty
// object) and leave errno set, for callers that report the failure in their own words.
#pragma once

#include <multiproc/fd.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace multiproc {

/// File-seal bits (fcntl(2) F_SEAL_*), combined with `|` into an int. Equal to the kernel's values.
namespace memfd_seal {
inline constexpr int seal = 0x0001;          // no seal can be added or removed any more
inline constexpr int shrink = 0x0002;        // the size cannot decrease
inline constexpr int grow = 0x0004;          // the size cannot increase
inline constexpr int write = 0x0008;         // the contents cannot be written (no writable mapping may exist)
inline constexpr int future_write = 0x0010;  // no new writable mapping or write(2); existing ones stay (5.1+)
}  // namespace memfd_seal

/// Creates a memfd (MFD_CLOEXEC | MFD_ALLOW_SEALING) named `name` (shown as "/memfd:<name>" in
/// /proc; at most 249 bytes, and a NUL ends it early), sizes it to `bytes` zero bytes and adds
/// `seals` (memfd_seal bits; 0 adds none). The result owns the descriptor.
/// Throws Error(errno) "<who>: memfd_create(\"<name>\")", "<who>: sizing the memfd to N bytes"
/// or "<who>: sealing the memfd"; nothing is left open when it throws.
[[nodiscard]] UniqueFd create_sealed_memfd(std::string_view name, std::uint64_t bytes, int seals,
                                           std::string_view who = "create_sealed_memfd");

/// The seals on `fd` (memfd_seal bits), or -1 with errno: EINVAL when the file cannot carry seals
/// (not a memfd or shmem file), EBADF when `fd` is not open. A memfd made without
/// MFD_ALLOW_SEALING reports `memfd_seal::seal`.
int memfd_seals(int fd) noexcept;

/// Why `fd` is not a memfd, in words fit to follow "is not X (" in a message, or "" when it is one:
///   "not an open file descriptor", "fstat failed: <strerror>", "not a memfd but a pipe"
///   (a socket, a character device, a block device, a directory; "not a regular file"),
///   "not a memfd: the file cannot carry seals", "not a memfd but <path>" (its /proc/self/fd link).
/// A memfd is a regular file that can carry seals and whose /proc/self/fd link reads "/memfd:...";
/// without /proc mounted the link check is skipped (the other checks still stand).
std::string why_not_memfd(int fd);

/// True when `fd` is an open memfd (why_not_memfd(fd) is empty).
inline bool is_memfd(int fd) { return why_not_memfd(fd).empty(); }

/// The size of the file behind `fd` in bytes (fstat(2) st_size), or -1 with errno.
std::int64_t file_size(int fd) noexcept;

/// Owns one MAP_SHARED read/write mapping of the first `size()` bytes of a file and unmaps it on
/// destruction, like std::unique_ptr. Movable, not copyable. Empty: data() == nullptr, size() 0.
/// The mapping keeps the file alive on its own: the descriptor may be closed while it is mapped.
/// Touching a page past the file's end raises SIGBUS: map only files sealed against shrinking,
/// or files this process sized itself.
class SharedMapping {
 public:
  SharedMapping() noexcept = default;

  /// Maps `bytes` (> 0) bytes of `fd` from offset 0, PROT_READ | PROT_WRITE, MAP_SHARED.
  /// Throws Error(errno) "<who>: mapping N bytes" (EACCES when `fd` is not open read/write,
  /// ENODEV when it cannot be mapped, EINVAL for 0 bytes, ENOMEM).
  [[nodiscard]] static SharedMapping map(int fd, std::size_t bytes, std::string_view who = "SharedMapping::map");

  /// As map(), but on failure returns an empty mapping and leaves errno set. Never throws.
  [[nodiscard]] static SharedMapping try_map(int fd, std::size_t bytes) noexcept;

  /// Takes ownership of a mapping `release()`d earlier (or made by map/try_map): `data` and
  /// `bytes` exactly as they were. adopt(nullptr, 0) is empty.
  [[nodiscard]] static SharedMapping adopt(std::byte* data, std::size_t bytes) noexcept { return SharedMapping(data, bytes); }

  SharedMapping(SharedMapping&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  SharedMapping& operator=(SharedMapping&& o) noexcept {
    if (this != &o) {
      reset();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  SharedMapping(const SharedMapping&) = delete;
  SharedMapping& operator=(const SharedMapping&) = delete;
  ~SharedMapping() { reset(); }

  std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  explicit operator bool() const noexcept { return data_ != nullptr; }

  /// Gives up ownership without unmapping; the address (nullptr when empty). size() becomes 0,
  /// so read it first when the mapping is to be adopt()ed again.
  std::byte* release() noexcept {
    size_ = 0;
    return std::exchange(data_, nullptr);
  }
  /// Unmaps (if anything is mapped) and becomes empty.
  void reset() noexcept;

 private:
  SharedMapping(std::byte* data, std::size_t bytes) noexcept : data_(data), size_(data ? bytes : 0) {}

  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace multiproc
