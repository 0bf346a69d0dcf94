// Listener and Client: AF_UNIX stream sockets at a filesystem path or an abstract "@name", with
// a same-user check on both sides (SO_PEERCRED). The abstract namespace has no permissions —
// anyone may bind or connect to "@name" — so the uid check is what keeps other users out: the
// listener drops a client of another uid (telling it why in a reject frame), and a client
// refuses a listening socket that another uid created.
#include <multiproc/ids.hpp>
#include <multiproc/pipe.hpp>

#include "frame.hpp"
#include "pipe_io.hpp"

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace multiproc {
namespace {

std::string str(const std::string& op, const std::string& what) { return op + ": " + what; }

struct Address {
  sockaddr_un addr{};
  socklen_t len = 0;
  bool abstract = false;
  std::string path;  // filesystem sockets
};

Address parse_address(std::string_view address, const std::string& op) {
  Address a;
  a.addr.sun_family = AF_UNIX;
  const bool abstract = !address.empty() && address.front() == '@';
  const std::string_view name = abstract ? address.substr(1) : address;
  // Abstract names use sun_path[1..]; paths need their terminating NUL.
  if (name.empty() || name.size() > sizeof(a.addr.sun_path) - 1)
    detail::throw_errno(name.empty() ? EINVAL : ENAMETOOLONG,
                        str(op, "address \"" + std::string(address) + "\" is empty or longer than " +
                                    std::to_string(sizeof(a.addr.sun_path) - 1) + " bytes"));
  if (abstract) {
    a.abstract = true;
    std::memcpy(a.addr.sun_path + 1, name.data(), name.size());
    a.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  } else {
    std::memcpy(a.addr.sun_path, name.data(), name.size());
    a.path = std::string(name);
    a.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + 1);
  }
  return a;
}

int make_socket(const std::string& op) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) detail::throw_errno(errno, str(op, "socket failed"));
  return fd;
}

ucred peer_credentials(int fd, const std::string& op) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    const int err = errno;
    ::close(fd);
    detail::throw_errno(err, str(op, "getsockopt(SO_PEERCRED) failed"));
  }
  return cred;
}

/// Is there a live listener at this filesystem socket? (A stale file from a crashed process
/// refuses connections.)
bool someone_listens(const Address& a) {
  const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return true;  // cannot tell: do not touch the file
  const int r = ::connect(probe, reinterpret_cast<const sockaddr*>(&a.addr), a.len);
  const int err = errno;
  ::close(probe);
  return r == 0 || err != ECONNREFUSED;
}

}  // namespace

Listener::Listener(std::string_view address, int backlog, Backend backend) : address_(address), backend_(backend) {
  const std::string op = "Listener(" + address_ + ")";
  const Address a = parse_address(address, op);
  fd_ = make_socket(op);
  int r = ::bind(fd_, reinterpret_cast<const sockaddr*>(&a.addr), a.len);
  if (r != 0 && errno == EADDRINUSE && !a.abstract) {
    struct stat st{};
    if (::lstat(a.path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && !someone_listens(a)) {
      ::unlink(a.path.c_str());  // stale: its listener is gone
      r = ::bind(fd_, reinterpret_cast<const sockaddr*>(&a.addr), a.len);
    } else {
      errno = EADDRINUSE;
    }
  }
  if (r != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    detail::throw_errno(err, str(op, err == EADDRINUSE ? "bind failed: another listener is there" : "bind failed"));
  }
  if (!a.abstract) {
    unlink_path_ = a.path;
    owner_pid_ = this_pid();
  }
  // Non-blocking: a connection that poll() announced may be gone (or taken by another process
  // sharing this listener) by the time accept4 runs; accept must not then block past a deadline.
  if (::listen(fd_, backlog) != 0 || ::fcntl(fd_, F_SETFL, O_NONBLOCK) != 0) {
    const int err = errno;
    close();
    detail::throw_errno(err, str(op, "listen failed"));
  }
}

Listener::Listener(Listener&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)),
      address_(std::move(o.address_)),
      unlink_path_(std::exchange(o.unlink_path_, {})),
      owner_pid_(o.owner_pid_),
      backend_(o.backend_),
      refused_(o.refused_) {}

Listener& Listener::operator=(Listener&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::exchange(o.fd_, -1);
    address_ = std::move(o.address_);
    unlink_path_ = std::exchange(o.unlink_path_, {});
    owner_pid_ = o.owner_pid_;
    backend_ = o.backend_;
    refused_ = o.refused_;
  }
  return *this;
}

Listener::~Listener() { close(); }

void Listener::close() noexcept {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  // Only the process that bound it removes the file: a fork()ed child closing its inherited
  // copy must not pull the socket out from under its parent.
  if (!unlink_path_.empty() && owner_pid_ == this_pid()) ::unlink(unlink_path_.c_str());
  unlink_path_.clear();
}

Connection Listener::accept() {
  for (;;) {
    if (std::optional<Connection> c = try_accept_until(Deadline::never())) return std::move(*c);
  }
}

std::optional<Connection> Listener::try_accept() { return try_accept_until(Deadline::after(std::chrono::seconds(0))); }

std::optional<Connection> Listener::try_accept_until(const Deadline& deadline) {
  const std::string op = "Listener(" + address_ + ")::accept";
  if (fd_ < 0) throw Error(errc::closed, str(op, "the listener is closed"));
  const uid_t me = ::geteuid();
  for (;;) {
    const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      const int err = errno;
      if (err == EINTR || err == ECONNABORTED) continue;
      if (err != EAGAIN) detail::throw_errno(err, str(op, "accept4 failed"));
      if (deadline.expired()) return std::nullopt;
      const int w = detail::wait_fd(fd_, POLLIN, deadline);
      if (w < 0) detail::throw_errno(-w, str(op, "poll failed"));
      if (w == 0) return std::nullopt;
      continue;
    }
    const ucred peer = peer_credentials(c, op);
    if (peer.uid != me) {
      // Drop it, telling it why (best effort: a fresh socket's buffer has room for this).
      const std::string reason = "Listener(" + address_ + ") refused the connection: only processes of uid " +
                                 std::to_string(me) + " may connect, and this one (pid " +
                                 std::to_string(peer.pid) + ") runs as uid " + std::to_string(peer.uid);
      const detail::HeaderBytes h =
          detail::encode_header(static_cast<std::uint32_t>(reason.size()), detail::FrameKind::reject);
      iovec iov[2] = {{const_cast<std::byte*>(h.data()), h.size()}, {const_cast<char*>(reason.data()), reason.size()}};
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = 2;
      (void)::sendmsg(c, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
      ::close(c);
      ++refused_;
      continue;
    }
    return detail::adopt_socket(c, backend_, true, true, op.c_str());
  }
}

Connection Client(std::string_view address, Backend backend) {
  const std::string op = "Client(" + std::string(address) + ")";
  const Address a = parse_address(address, op);
  const int fd = make_socket(op);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&a.addr), a.len) != 0) {
    int err = errno;
    if (err == EINTR || err == EINPROGRESS) {
      // The connection proceeds on its own: wait for it, then read its outcome.
      socklen_t len = sizeof err;
      if (detail::wait_fd(fd, POLLOUT, Deadline::never()) < 0 ||
          ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    }
    if (err != 0) {
      ::close(fd);
      detail::throw_errno(err, str(op, err == ECONNREFUSED || err == ENOENT ? "nobody listens there" : "connect failed"));
    }
  }
  const ucred peer = peer_credentials(fd, op);
  if (peer.uid != ::geteuid()) {
    ::close(fd);
    throw Error(errc::permission_denied,
                str(op, "the listening socket belongs to uid " + std::to_string(peer.uid) + " (pid " +
                            std::to_string(peer.pid) + "), not to this process's uid " +
                            std::to_string(::geteuid()) + "; refusing to talk to another user"));
  }
  return detail::adopt_socket(fd, backend, true, true, op.c_str());
}

}  // namespace multiproc
