// The plain-syscall backend: core's unix_send/unix_recv (sendmsg/recvmsg) on a blocking AF_UNIX
// stream socket, poll_one (ppoll) for timed waits. Used where io_uring is unavailable or
// MULTIPROC_NO_IO_URING=1. Makes no system call of its own.
#include "pipe_io.hpp"

#include <multiproc/fd.hpp>
#include <multiproc/unix_socket.hpp>

#include <cerrno>
#include <cstring>
#include <poll.h>

namespace multiproc::detail {

void SendScratch::gather_small(iovec*& iov, int& n, int pass_fd) noexcept {
  if (pass_fd >= 0 || n <= 1) return;
  std::size_t total = 0;
  for (int i = 0; i < n; ++i) total += iov[i].iov_len;
  if (total > kSmallSend) return;
  char* p = small_;
  for (int i = 0; i < n; ++i) {
    std::memcpy(p, iov[i].iov_base, iov[i].iov_len);
    p += iov[i].iov_len;
  }
  one_ = {small_, total};
  iov = &one_;
  n = 1;
}

void advance_iov(iovec*& iov, int& n, std::size_t done) noexcept {
  while (n > 0 && done >= iov->iov_len) {
    done -= iov->iov_len;
    ++iov;
    --n;
  }
  if (n > 0) {
    iov->iov_base = static_cast<char*>(iov->iov_base) + done;
    iov->iov_len -= done;
  }
  while (n > 0 && iov->iov_len == 0) {
    ++iov;
    --n;
  }
}

int wait_fd(int fd, short events, const Deadline& deadline) noexcept {
  const short r = poll_one(fd, events, deadline);  // retries EINTR and early wake-ups itself
  if (r < 0) return -errno;
  if (r == 0) return 0;
  return (r & POLLNVAL) != 0 ? -EBADF : 1;
}

namespace {

class SyscallIo final : public PipeIo {
 public:
  std::string_view name() const noexcept override { return "syscalls"; }

  int send_all(int fd, iovec* iov, int n, int pass_fd) const noexcept override {
    SendScratch scratch;
    scratch.gather_small(iov, n, pass_fd);
    while (n > 0) {
      // One piece and no fd goes out as send(2): no msghdr to import.
      const ssize_t r = unix_send(fd, std::span<const iovec>(iov, static_cast<std::size_t>(n)), fds_of(pass_fd));
      if (r < 0) {
        if (r != -EAGAIN) return static_cast<int>(r);
        // The user made the socket non-blocking: wait for room.
        const int w = wait_fd(fd, POLLOUT, Deadline::never());
        if (w < 0) return w;
        continue;
      }
      pass_fd = -1;  // rode with the first byte
      advance_iov(iov, n, static_cast<std::size_t>(r));
    }
    return 0;
  }

  int recv(int fd, void* buf, std::size_t len, bool waitall, const Deadline& deadline,
           RecvResult& out) const noexcept override {
    const bool blocking = deadline.infinite();
    const iovec v{buf, len};
    for (;;) {
      const int flags = blocking ? (waitall ? MSG_WAITALL : 0) : MSG_DONTWAIT;
      const int e = unix_recv(fd, std::span<const iovec>(&v, 1), out, flags);
      if (e == 0) {
        out.eof = out.bytes == 0;
        return 0;
      }
      if (e == -ECONNRESET) {  // the peer closed with data of ours unread: it is gone
        out.eof = true;
        return 0;
      }
      if (e != -EAGAIN) return e;
      if (!blocking && deadline.expired()) {
        out.timed_out = true;
        return 0;
      }
      const int w = wait_fd(fd, POLLIN, deadline);
      if (w < 0) return w;
      if (w == 0) {
        out.timed_out = true;
        return 0;
      }
    }
  }
};

}  // namespace

const PipeIo& syscall_io() noexcept {
  static const SyscallIo io;
  return io;
}

}  // namespace multiproc::detail
