#include <multiproc/unix_socket.hpp>

#include <multiproc/deadline.hpp>
#include <multiproc/fd.hpp>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

namespace multiproc {

static_assert(EAGAIN == EWOULDBLOCK, "Linux: one errno for a would-block socket");

// ---- creating -----------------------------------------------------------------------------------

int unix_socketpair(UniqueFd& a, UniqueFd& b) noexcept {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return -errno;
  a.reset(sv[0]);
  b.reset(sv[1]);
  return 0;
}

int unix_socketpair_oneway(UniqueFd& recv_end, UniqueFd& send_end) noexcept {
  UniqueFd r, s;
  if (const int e = unix_socketpair(r, s); e != 0) return e;
  // Cannot fail on a connected AF_UNIX stream socket we own.
  (void)::shutdown(r.get(), SHUT_WR);
  (void)::shutdown(s.get(), SHUT_RD);
  recv_end = std::move(r);
  send_end = std::move(s);
  return 0;
}

int unix_socket() noexcept {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  return fd >= 0 ? fd : -errno;
}

int unix_shutdown(int fd, int how) noexcept { return ::shutdown(fd, how) == 0 ? 0 : -errno; }

// ---- addresses ----------------------------------------------------------------------------------

int UnixAddress::parse(std::string_view address, UnixAddress& out) noexcept {
  out = UnixAddress{};
  out.addr.sun_family = AF_UNIX;
  const bool abstract = !address.empty() && address.front() == '@';
  const std::string_view name = abstract ? address.substr(1) : address;
  // Abstract names use sun_path[1..]; paths need their terminating NUL.
  if (name.empty()) return -EINVAL;
  if (name.size() > max_name()) return -ENAMETOOLONG;
  if (abstract) {
    out.abstract = true;
    std::memcpy(out.addr.sun_path + 1, name.data(), name.size());
    out.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  } else {
    std::memcpy(out.addr.sun_path, name.data(), name.size());
    out.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + 1);
  }
  return 0;
}

// ---- listening and connecting -------------------------------------------------------------------

namespace {

const sockaddr* sa(const UnixAddress& a) noexcept { return reinterpret_cast<const sockaddr*>(&a.addr); }

/// Is there a live listener at this filesystem socket? (A stale file from a crashed process
/// refuses connections.) When it cannot tell, it says yes: the file is then left alone.
bool someone_listens(const UnixAddress& a) noexcept {
  const UniqueFd probe(unix_socket());
  if (!probe) return true;
  const int r = ::connect(probe.get(), sa(a), a.len);
  return r == 0 || errno != ECONNREFUSED;
}

}  // namespace

int unix_bind(int fd, const UnixAddress& a) noexcept {
  if (::bind(fd, sa(a), a.len) == 0) return 0;
  if (errno != EADDRINUSE || a.abstract) return -errno;
  struct stat st{};
  if (::lstat(a.path(), &st) != 0 || !S_ISSOCK(st.st_mode) || someone_listens(a)) return -EADDRINUSE;
  (void)::unlink(a.path());  // stale: its listener is gone
  return ::bind(fd, sa(a), a.len) == 0 ? 0 : -errno;
}

int unix_listen(int fd, int backlog) noexcept {
  if (::listen(fd, backlog) != 0) return -errno;
  const int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) return -errno;
  return 0;
}

int unix_unlink(const char* path) noexcept { return ::unlink(path) == 0 ? 0 : -errno; }

int unix_peer_credentials(int fd, ucred& out) noexcept {
  socklen_t len = sizeof out;
  return ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &out, &len) == 0 ? 0 : -errno;
}

int unix_accept(int fd, ucred* peer) noexcept {
  for (;;) {
    const int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return -errno;
    }
    if (peer != nullptr) {
      if (const int e = unix_peer_credentials(c, *peer); e != 0) {
        close_fd(c);
        return e;
      }
    }
    return c;
  }
}

int unix_connect(int fd, const UnixAddress& a) noexcept {
  if (::connect(fd, sa(a), a.len) == 0) return 0;
  int err = errno;
  if (err == EINTR || err == EINPROGRESS) {
    // The connection proceeds on its own: wait for it, then read its outcome.
    socklen_t len = sizeof err;
    if (poll_one(fd, POLLOUT, Deadline::never()) < 0 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
      err = errno;
  }
  return -err;
}

// ---- sending and receiving ----------------------------------------------------------------------

UnixSendMsg::UnixSendMsg(std::span<const iovec> iov, std::span<const int> fds) noexcept {
  // sendmsg does not write through msg_iov; msghdr just is not const-correct.
  msg_.msg_iov = const_cast<iovec*>(iov.data());
  msg_.msg_iovlen = std::min<std::size_t>(iov.size(), IOV_MAX);
  if (!fds.empty() && fds.size() <= kMaxPassedFds) {
    const std::size_t bytes = sizeof(int) * fds.size();
    std::memset(control_, 0, CMSG_SPACE(bytes));
    msg_.msg_control = control_;
    msg_.msg_controllen = CMSG_SPACE(bytes);
    cmsghdr* c = CMSG_FIRSTHDR(&msg_);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(bytes);
    std::memcpy(CMSG_DATA(c), fds.data(), bytes);
  }
}

ssize_t unix_send(int fd, std::span<const iovec> iov, std::span<const int> fds, int flags) noexcept {
  if (fds.size() > kMaxPassedFds) return -EINVAL;
  flags |= MSG_NOSIGNAL;
  for (;;) {
    ssize_t r;
    if (fds.empty() && iov.size() == 1) {
      r = ::send(fd, iov[0].iov_base, iov[0].iov_len, flags);
    } else {
      UnixSendMsg m(iov, fds);
      r = ::sendmsg(fd, m.get(), flags);
    }
    if (r >= 0) return r;
    if (errno != EINTR) return -errno;
  }
}

UnixRecvMsg::UnixRecvMsg(std::span<const iovec> iov) noexcept {
  std::memset(control_, 0, sizeof control_);
  msg_.msg_iov = const_cast<iovec*>(iov.data());  // the kernel writes through the iovecs, not to them
  msg_.msg_iovlen = std::min<std::size_t>(iov.size(), IOV_MAX);
  msg_.msg_control = control_;
  msg_.msg_controllen = sizeof control_;
}

UnixRecvMsg::UnixRecvMsg(void* buf, std::size_t len) noexcept : one_{buf, len} {
  std::memset(control_, 0, sizeof control_);
  msg_.msg_iov = &one_;
  msg_.msg_iovlen = 1;
  msg_.msg_control = control_;
  msg_.msg_controllen = sizeof control_;
}

void UnixRecvMsg::finish(std::size_t bytes, UnixRecvResult& out) noexcept {
  out.bytes = bytes;
  if ((msg_.msg_flags & MSG_CTRUNC) != 0) out.fds_truncated = true;
  if ((msg_.msg_flags & MSG_TRUNC) != 0) out.data_truncated = true;
  if (msg_.msg_control == nullptr || msg_.msg_controllen < sizeof(cmsghdr)) return;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg_); c != nullptr; c = CMSG_NXTHDR(&msg_, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0)) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (static_cast<std::size_t>(out.nfds) < kMaxPassedFds) {
        out.fds[out.nfds++] = fd;
      } else {
        close_fd(fd);  // more than this call has room for: never leak it
        out.fds_truncated = true;
      }
    }
  }
}

int unix_recv(int fd, std::span<const iovec> iov, UnixRecvResult& out, int flags) noexcept {
  flags |= MSG_CMSG_CLOEXEC;
  for (;;) {
    UnixRecvMsg m(iov);
    const ssize_t r = ::recvmsg(fd, m.get(), flags);
    if (r >= 0) {
      m.finish(static_cast<std::size_t>(r), out);
      return 0;
    }
    if (errno != EINTR) return -errno;
  }
}

}  // namespace multiproc
