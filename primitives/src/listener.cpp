// Listener and Client: AF_UNIX stream sockets at a filesystem path or an abstract "@name", with
// a same-user check on both sides (SO_PEERCRED). The abstract namespace has no permissions —
// anyone may bind or connect to "@name" — so the uid check is what keeps other users out: the
// listener drops a client of another uid (telling it why in a reject frame), and a client
// refuses a listening socket that another uid created.
// The socket calls are core's (multiproc/unix_socket.hpp); this file words their errors.
#include <multiproc/fd.hpp>
#include <multiproc/ids.hpp>
#include <multiproc/pipe.hpp>
#include <multiproc/unix_socket.hpp>

#include "frame.hpp"
#include "pipe_io.hpp"

#include <cerrno>
#include <poll.h>
#include <unistd.h>

namespace multiproc {
namespace {

std::string str(const std::string& op, const std::string& what) { return op + ": " + what; }

UnixAddress parse_address(std::string_view address, const std::string& op) {
  UnixAddress a;
  if (const int e = UnixAddress::parse(address, a); e != 0)
    detail::throw_errno(-e, str(op, "address \"" + std::string(address) + "\" is empty or longer than " +
                                        std::to_string(UnixAddress::max_name()) + " bytes"));
  return a;
}

int make_socket(const std::string& op) {
  const int fd = unix_socket();
  if (fd < 0) detail::throw_errno(-fd, str(op, "socket failed"));
  return fd;
}

ucred peer_credentials(int fd, const std::string& op) {
  ucred cred{};
  if (const int e = unix_peer_credentials(fd, cred); e != 0) {
    close_fd(fd);
    detail::throw_errno(-e, str(op, "getsockopt(SO_PEERCRED) failed"));
  }
  return cred;
}

}  // namespace

Listener::Listener(std::string_view address, int backlog, Backend backend) : address_(address), backend_(backend) {
  const std::string op = "Listener(" + address_ + ")";
  const UnixAddress a = parse_address(address, op);
  fd_ = make_socket(op);
  // A stale socket file (its listener gone) is replaced; a live listener's is not.
  if (const int e = unix_bind(fd_, a); e != 0) {
    close_fd(std::exchange(fd_, -1));
    detail::throw_errno(-e, str(op, e == -EADDRINUSE ? "bind failed: another listener is there" : "bind failed"));
  }
  if (!a.abstract) {
    unlink_path_ = a.path();
    owner_pid_ = this_pid();
  }
  // Non-blocking: a connection that poll() announced may be gone (or taken by another process
  // sharing this listener) by the time accept4 runs; accept must not then block past a deadline.
  if (const int e = unix_listen(fd_, backlog); e != 0) {
    close();
    detail::throw_errno(-e, str(op, "listen failed"));
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
  close_fd(std::exchange(fd_, -1));
  // Only the process that bound it removes the file: a fork()ed child closing its inherited
  // copy must not pull the socket out from under its parent.
  if (!unlink_path_.empty() && owner_pid_ == this_pid()) (void)unix_unlink(unlink_path_.c_str());
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
  const uid_t me = this_euid();
  for (;;) {
    const int c = unix_accept(fd_);  // retries EINTR and ECONNABORTED itself
    if (c < 0) {
      if (c != -EAGAIN) detail::throw_errno(-c, str(op, "accept4 failed"));
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
      (void)unix_send(c, iov, {}, MSG_DONTWAIT);  // MSG_NOSIGNAL: always
      close_fd(c);
      ++refused_;
      continue;
    }
    return detail::adopt_socket(c, backend_, true, true, op.c_str());
  }
}

Connection Client(std::string_view address, Backend backend) {
  const std::string op = "Client(" + std::string(address) + ")";
  const UnixAddress a = parse_address(address, op);
  const int fd = make_socket(op);
  if (const int e = unix_connect(fd, a); e != 0) {  // waits out a connect that proceeds on its own
    close_fd(fd);
    detail::throw_errno(-e, str(op, e == -ECONNREFUSED || e == -ENOENT ? "nobody listens there" : "connect failed"));
  }
  const ucred peer = peer_credentials(fd, op);
  if (peer.uid != this_euid()) {
    close_fd(fd);
    throw Error(errc::permission_denied,
                str(op, "the listening socket belongs to uid " + std::to_string(peer.uid) + " (pid " +
                            std::to_string(peer.pid) + "), not to this process's uid " +
                            std::to_string(this_euid()) + "; refusing to talk to another user"));
  }
  return detail::adopt_socket(fd, backend, true, true, op.c_str());
}

}  // namespace multiproc
