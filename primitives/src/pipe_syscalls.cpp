// The plain-syscall backend: sendmsg/recvmsg on a blocking AF_UNIX stream socket, ppoll for
// timed waits. Used where io_uring is unavailable or MULTIPROC_NO_IO_URING=1.
#include "pipe_io.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <chrono>
#include <cstring>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace multiproc::detail {

void SendScratch::prepare_msg(msghdr& msg, iovec* iov, int n, int pass_fd) noexcept {
  msg = msghdr{};
  msg.msg_iov = iov;
  msg.msg_iovlen = static_cast<std::size_t>(std::min(n, IOV_MAX));
  if (pass_fd >= 0) {
    std::memset(control_, 0, sizeof control_);
    msg.msg_control = control_;
    msg.msg_controllen = sizeof control_;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
  }
}

RecvMsg::RecvMsg(void* buf, std::size_t len) noexcept : v{buf, len}, msg{} {
  std::memset(control, 0, sizeof control);
  msg.msg_iov = &v;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
}

void RecvMsg::finish(std::size_t bytes, RecvResult& out) const noexcept {
  out.bytes = bytes;
  out.eof = bytes == 0;
  if ((msg.msg_flags & MSG_CTRUNC) != 0) out.fds_truncated = true;
  if (msg.msg_control == nullptr || msg.msg_controllen < sizeof(cmsghdr)) return;
  auto& m = const_cast<msghdr&>(msg);  // CMSG_NXTHDR takes a non-const msghdr; nothing is written
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0)) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (out.nfds < kMaxRecvFds) {
        out.fds[out.nfds++] = fd;
      } else {
        ::close(fd);  // more than any message of ours carries: never leak it
        out.fds_truncated = true;
      }
    }
  }
}

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
  for (;;) {
    pollfd p{fd, events, 0};
    const timespec ts = deadline.infinite() ? timespec{} : deadline.remaining_timespec();
    const int r = ::ppoll(&p, 1, deadline.infinite() ? nullptr : &ts, nullptr);
    if (r > 0) return (p.revents & POLLNVAL) != 0 ? -EBADF : 1;
    if (r == 0) {
      if (deadline.expired()) return 0;
      continue;  // woke a hair early by the steady clock: wait out the rest
    }
    if (errno != EINTR) return -errno;
  }
}

namespace {

class SyscallIo final : public PipeIo {
 public:
  std::string_view name() const noexcept override { return "syscalls"; }

  int send_all(int fd, iovec* iov, int n, int pass_fd) const noexcept override {
    SendScratch scratch;
    scratch.gather_small(iov, n, pass_fd);
    while (n > 0) {
      if (pass_fd < 0 && n == 1) {  // no msghdr to import
        const ssize_t r = ::send(fd, iov->iov_base, iov->iov_len, MSG_NOSIGNAL);
        if (r >= 0) {
          advance_iov(iov, n, static_cast<std::size_t>(r));
          continue;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
        const int w = wait_fd(fd, POLLOUT, Deadline::never());
        if (w < 0) return w;
        continue;
      }
      msghdr msg;
      scratch.prepare_msg(msg, iov, n, pass_fd);
      const ssize_t r = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
      if (r < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {  // the user made the socket non-blocking
          const int w = wait_fd(fd, POLLOUT, Deadline::never());
          if (w < 0) return w;
          continue;
        }
        return -errno;
      }
      pass_fd = -1;  // rode with the first byte
      advance_iov(iov, n, static_cast<std::size_t>(r));
    }
    return 0;
  }

  int recv(int fd, void* buf, std::size_t len, bool waitall, const Deadline& deadline,
           RecvResult& out) const noexcept override {
    const bool blocking = deadline.infinite();
    for (;;) {
      RecvMsg m(buf, len);
      const int flags = MSG_CMSG_CLOEXEC | (blocking ? (waitall ? MSG_WAITALL : 0) : MSG_DONTWAIT);
      const ssize_t r = ::recvmsg(fd, &m.msg, flags);
      if (r >= 0) {
        m.finish(static_cast<std::size_t>(r), out);
        return 0;
      }
      if (errno == EINTR) continue;
      if (errno == ECONNRESET) {  // the peer closed with data of ours unread: it is gone
        out.eof = true;
        return 0;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
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
