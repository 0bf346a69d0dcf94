#include <multiproc/fd.hpp>

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

namespace multiproc {

void close_fd(int fd) noexcept {
  if (fd >= 0) (void)::close(fd);
}

bool fd_is_open(int fd) noexcept { return fd >= 0 && ::fcntl(fd, F_GETFD) != -1; }

int dup_cloexec(int fd) noexcept { return ::fcntl(fd, F_DUPFD_CLOEXEC, 0); }

int poll_until(std::span<pollfd> fds, const Deadline& deadline) noexcept {
  for (;;) {
    timespec rel{};
    const timespec* tp = nullptr;
    if (!deadline.infinite()) {
      rel = deadline.remaining_timespec();  // zero once the deadline has passed: one look
      tp = &rel;
    }
    const int rc = ::ppoll(fds.data(), fds.size(), tp, nullptr);
    if (rc > 0) return rc;
    if (rc == 0) {
      if (deadline.infinite() || deadline.expired()) return 0;
      continue;  // the kernel rounded the timeout down: wait out the remainder
    }
    if (errno != EINTR) return -1;
  }
}

}  // namespace multiproc
