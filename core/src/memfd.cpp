#include <multiproc/memfd.hpp>

#include <multiproc/error.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

namespace multiproc {

static_assert(memfd_seal::seal == F_SEAL_SEAL && memfd_seal::shrink == F_SEAL_SHRINK &&
                  memfd_seal::grow == F_SEAL_GROW && memfd_seal::write == F_SEAL_WRITE &&
                  memfd_seal::future_write == F_SEAL_FUTURE_WRITE,
              "memfd_seal bits are the kernel's F_SEAL_* values, passed to fcntl unchanged");

namespace {

const char* kind_of(mode_t m) {
  if (S_ISFIFO(m)) return "a pipe";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISDIR(m)) return "a directory";
  return "not a regular file";
}

}  // namespace

UniqueFd create_sealed_memfd(std::string_view name, std::uint64_t bytes, int seals, std::string_view who) {
  const std::string n(name);
  const std::string w(who);
  UniqueFd fd(::memfd_create(n.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) detail::throw_errno(errno, w + ": memfd_create(\"" + n + "\")");
  if (::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0)
    detail::throw_errno(errno, w + ": sizing the memfd to " + std::to_string(bytes) + " bytes");
  if (seals != 0 && ::fcntl(fd.get(), F_ADD_SEALS, seals) != 0) detail::throw_errno(errno, w + ": sealing the memfd");
  return fd;
}

int memfd_seals(int fd) noexcept { return ::fcntl(fd, F_GET_SEALS); }

std::string why_not_memfd(int fd) {
  if (!fd_is_open(fd)) return "not an open file descriptor";
  struct stat st {};
  if (::fstat(fd, &st) != 0) return std::string("fstat failed: ") + std::strerror(errno);
  if (!S_ISREG(st.st_mode)) return std::string("not a memfd but ") + kind_of(st.st_mode);
  if (memfd_seals(fd) < 0) return "not a memfd: the file cannot carry seals";
  char path[64], target[256];
  std::snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  const ssize_t n = ::readlink(path, target, sizeof target - 1);
  if (n > 0) {  // without /proc, the checks above still stand
    target[n] = '\0';
    if (std::strncmp(target, "/memfd:", 7) != 0) return std::string("not a memfd but ") + target;
  }
  return {};
}

std::int64_t file_size(int fd) noexcept {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return -1;
  return static_cast<std::int64_t>(st.st_size);
}

SharedMapping SharedMapping::map(int fd, std::size_t bytes, std::string_view who) {
  SharedMapping m = try_map(fd, bytes);
  if (!m) detail::throw_errno(errno, std::string(who) + ": mapping " + std::to_string(bytes) + " bytes");
  return m;
}

SharedMapping SharedMapping::try_map(int fd, std::size_t bytes) noexcept {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return {};
  return SharedMapping(static_cast<std::byte*>(p), bytes);
}

void SharedMapping::reset() noexcept {
  if (data_ != nullptr) (void)::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

}  // namespace multiproc
