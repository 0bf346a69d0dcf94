// multiproc/unix_socket.hpp — AF_UNIX stream sockets: pairs, addresses, fd passing, credentials.
//
// The one place the library makes socket system calls; Pipe, Listener and Client (primitives/)
// go through these. Closing and polling are fd.hpp's (close_fd, UniqueFd, poll_one).
//
// Cost model: every call here is the system call(s) it names plus a few stores — noexcept, no
// allocation, no exception; failures come back as -errno (or a struct), so the Connection hot
// path pays nothing beyond the kernel and callers word their own multiproc::Error.
// EINTR is retried inside every call that can block (send, recv, accept; connect waits the
// connection out instead), so no caller sees it. Every descriptor created or received here is
// O_CLOEXEC.
//
// Blocking: the calls block exactly as the underlying socket does (the library's sockets are
// blocking, except a listening socket after unix_listen); pass MSG_DONTWAIT for a try.
// Only unix_connect waits beyond one system call (for a connect the kernel let proceed
// asynchronously); it waits without a deadline, as connect(2) on a blocking socket does.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>

namespace multiproc {

class UniqueFd;

/// File descriptors one unix_send may pass, and one unix_recv accepts (more are closed and
/// flagged). SCM_MAX_FD is 253; the library passes one per message.
inline constexpr std::size_t kMaxPassedFds = 8;

// ---- creating -----------------------------------------------------------------------------------

/// A connected AF_UNIX stream socket pair (SOCK_CLOEXEC), both ends duplex, into `a` and `b`
/// (which are reset only on success). Returns 0 or -errno (EMFILE, ENFILE, ENOMEM).
int unix_socketpair(UniqueFd& a, UniqueFd& b) noexcept;

/// A one-way pair: `recv_end` can only receive (shutdown SHUT_WR), `send_end` only send
/// (SHUT_RD); a send on `recv_end` is -EPIPE. Returns 0 or -errno.
int unix_socketpair_oneway(UniqueFd& recv_end, UniqueFd& send_end) noexcept;

/// A fresh, unconnected AF_UNIX stream socket (SOCK_CLOEXEC): the descriptor, or -errno.
int unix_socket() noexcept;

/// shutdown(2): `how` is SHUT_RD, SHUT_WR or SHUT_RDWR. Returns 0 or -errno.
int unix_shutdown(int fd, int how) noexcept;

// ---- addresses ----------------------------------------------------------------------------------

/// An AF_UNIX address: a filesystem path ("/run/x.sock") or, with a leading '@', a name in
/// Linux's abstract namespace ("@x": no file, no permissions, gone with its last socket).
struct UnixAddress {
  sockaddr_un addr{};
  socklen_t len = 0;      // bytes of `addr` that count (abstract names are not NUL-terminated)
  bool abstract = false;  // "@name"

  /// Parses `address` into `out`. Returns 0, -EINVAL when the name is empty, -ENAMETOOLONG when
  /// it is longer than max_name() bytes.
  static int parse(std::string_view address, UnixAddress& out) noexcept;
  /// The longest name (without the '@') an address may have: 107 bytes.
  static constexpr std::size_t max_name() noexcept { return sizeof(sockaddr_un::sun_path) - 1; }
  /// The filesystem path (NUL-terminated), or nullptr for an abstract name.
  const char* path() const noexcept { return abstract ? nullptr : addr.sun_path; }
};

// ---- listening and connecting -------------------------------------------------------------------

/// Binds `fd` to `a`. A filesystem path already taken by a socket file that nobody listens on
/// any more (a crashed listener's leftover: connecting to it is refused) is removed and the bind
/// retried; a live listener, or a file that is not a socket, is -EADDRINUSE and left alone.
/// Returns 0 or -errno.
int unix_bind(int fd, const UnixAddress& a) noexcept;

/// listen(2) with `backlog`, then makes `fd` non-blocking, so an accept after a poll never
/// blocks (the connection may have gone, or gone to another process sharing the listener).
/// Returns 0 or -errno.
int unix_listen(int fd, int backlog) noexcept;

/// Removes the socket file at `path` (unlink(2)); 0 or -errno. The caller decides whose it is.
int unix_unlink(const char* path) noexcept;

/// The credentials the peer of a connected socket had when it connected or listened
/// (SO_PEERCRED): pid, uid and gid as the kernel recorded them, not as the peer claims.
/// Returns 0 or -errno.
int unix_peer_credentials(int fd, ucred& out) noexcept;

/// Accepts one connection on the listening socket `fd` (accept4, SOCK_CLOEXEC; a connection
/// aborted before it was taken is skipped). With `peer`, also reads its credentials; if that
/// fails the connection is closed and the error returned. Returns the connected descriptor,
/// -EAGAIN when none is pending on a non-blocking listener (poll_one(fd, POLLIN, deadline)
/// waits for one), or -errno. Blocks on a blocking listener.
int unix_accept(int fd, ucred* peer = nullptr) noexcept;

/// Connects `fd` to `a`. A connect the kernel lets complete asynchronously (EINPROGRESS, or
/// EINTR after the request went out) is waited for and its outcome read (SO_ERROR). Returns 0,
/// -ECONNREFUSED (nobody listens: a stale file, or a full backlog on a non-blocking socket),
/// -ENOENT (no such path) or another -errno.
int unix_connect(int fd, const UnixAddress& a) noexcept;

// ---- sending and receiving ----------------------------------------------------------------------

/// One sendmsg(2)'s message header with `fds` as SCM_RIGHTS control data, built in place (the
/// msghdr points into this object: it is neither copied nor moved). Used by unix_send, and by
/// callers that hand the msghdr to another submitter (io_uring's IORING_OP_SENDMSG).
class UnixSendMsg {
 public:
  /// Sends iov[0..min(size, IOV_MAX)); `fds` (at most kMaxPassedFds; more are not attached:
  /// check before) ride with the first byte.
  UnixSendMsg(std::span<const iovec> iov, std::span<const int> fds) noexcept;
  UnixSendMsg(const UnixSendMsg&) = delete;
  UnixSendMsg& operator=(const UnixSendMsg&) = delete;

  msghdr* get() noexcept { return &msg_; }

 private:
  alignas(cmsghdr) char control_[CMSG_SPACE(sizeof(int) * kMaxPassedFds)];
  msghdr msg_{};
};

/// Sends as much of iov[0..) as the socket takes in one call, with `fds` as SCM_RIGHTS on the
/// first byte, MSG_NOSIGNAL | `flags` (a gone peer is -EPIPE or -ECONNRESET, never SIGPIPE).
/// One piece and no fds goes out as send(2), which skips importing a msghdr. Returns the bytes
/// sent (> 0 unless iov is empty; fewer than asked on a short send: the fds went with the first
/// byte), -EAGAIN when a non-blocking send finds no room, -EINVAL for more than kMaxPassedFds,
/// or -errno. Blocks until some room opens on a blocking socket.
ssize_t unix_send(int fd, std::span<const iovec> iov, std::span<const int> fds = {}, int flags = 0) noexcept;

/// What one receive delivered.
struct UnixRecvResult {
  std::size_t bytes = 0;        // bytes received; 0 (with iov non-empty): the peer closed
  int nfds = 0;                 // descriptors received (O_CLOEXEC), in fds[0..nfds): the caller's
  bool fds_truncated = false;   // descriptors were lost: MSG_CTRUNC, or more than kMaxPassedFds
                                // (those beyond were closed here, never leaked)
  bool data_truncated = false;  // MSG_TRUNC: a datagram's tail was dropped (never on a stream)
  int fds[kMaxPassedFds];
};

/// One recvmsg(2)'s message header with room for kMaxPassedFds descriptors, built in place
/// (neither copied nor moved). Used by unix_recv, and by callers that hand the msghdr to another
/// submitter (io_uring's IORING_OP_RECVMSG); pass MSG_CMSG_CLOEXEC there too.
class UnixRecvMsg {
 public:
  explicit UnixRecvMsg(std::span<const iovec> iov) noexcept;
  UnixRecvMsg(void* buf, std::size_t len) noexcept;
  UnixRecvMsg(const UnixRecvMsg&) = delete;
  UnixRecvMsg& operator=(const UnixRecvMsg&) = delete;

  msghdr* get() noexcept { return &msg_; }
  /// Records a completed receive of `bytes` into `out`: the count, the descriptors that came
  /// (any beyond kMaxPassedFds closed) and the truncation flags.
  void finish(std::size_t bytes, UnixRecvResult& out) noexcept;

 private:
  alignas(cmsghdr) char control_[CMSG_SPACE(sizeof(int) * kMaxPassedFds)];
  iovec one_{};
  msghdr msg_{};
};

/// One recvmsg(2) into iov[0..) with MSG_CMSG_CLOEXEC | `flags` (MSG_DONTWAIT for a try,
/// MSG_WAITALL to wait for all of it — a passed fd, a signal or the end of the stream still
/// cut it short). Fills `out` (which should start default-constructed) and returns 0, or -errno:
/// -EAGAIN when a try finds nothing, -ECONNRESET when the peer closed with data unread.
/// Blocks until at least one byte, the end of the stream or an error on a blocking socket.
int unix_recv(int fd, std::span<const iovec> iov, UnixRecvResult& out, int flags = 0) noexcept;

}  // namespace multiproc
