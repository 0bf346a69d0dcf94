// pipe_io.hpp (internal) — the two I/O backends under Connection: io_uring and plain syscalls.
//
// A backend moves bytes and fds; framing, buffering and every policy live in pipe.cpp, so the
// two backends share one wire format and one set of rules. Each call completes all the kernel
// work it started before it returns (nothing stays in flight between calls), which is what
// lets one io_uring ring per thread serve every Connection that thread touches, lets a
// Connection move between threads, and keeps the write(2) guarantee: a process may exit right
// after a send.
//
// Errors come back as negative errno values (never exceptions), so callers word the Error.
// The system calls themselves are core's (multiproc/unix_socket.hpp, multiproc/fd.hpp).
#pragma once

#include <multiproc/deadline.hpp>
#include <multiproc/unix_socket.hpp>

#include <cstddef>
#include <string_view>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

namespace multiproc::detail {

/// Received file descriptors beyond this many in one recvmsg are a protocol error (ours sends
/// one fd per message, and the kernel stops a read after the message that carries fds).
inline constexpr int kMaxRecvFds = static_cast<int>(kMaxPassedFds);

/// One receive's outcome: core's (bytes, fds now owned by the caller, truncation) plus what the
/// backend decided about it.
struct RecvResult : UnixRecvResult {
  bool eof = false;        // orderly end of stream (or ECONNRESET: the peer is gone)
  bool timed_out = false;  // the deadline passed first (nothing was received)
};

class PipeIo {
 public:
  virtual ~PipeIo() = default;
  virtual std::string_view name() const noexcept = 0;

  /// Sends every byte of iov[0..n) on the stream socket `fd`, blocking as needed; `pass_fd` (if
  /// >= 0) rides as SCM_RIGHTS with the first byte. MSG_NOSIGNAL: a gone peer is -EPIPE or
  /// -ECONNRESET, never a signal. Returns 0 or -errno. May modify `iov`.
  virtual int send_all(int fd, iovec* iov, int n, int pass_fd) const noexcept = 0;

  /// One receive into buf[0..len): waits until at least one byte (or, with `waitall`, all
  /// `len` bytes — but a received fd, a signal or the end of the stream may cut it short),
  /// the end of the stream, or `deadline`. An expired deadline makes it a non-blocking try.
  /// Returns 0 (see `out`) or -errno.
  virtual int recv(int fd, void* buf, std::size_t len, bool waitall, const Deadline& deadline,
                   RecvResult& out) const noexcept = 0;
};

/// Always available.
const PipeIo& syscall_io() noexcept;

/// Waits until `fd` has one of `events` (POLLIN/POLLOUT; hang-ups and errors count) or
/// `deadline` passes: 1 ready, 0 timed out, -errno. Restarts on EINTR against the same deadline.
int wait_fd(int fd, short events, const Deadline& deadline) noexcept;

/// Sends of at most this many bytes are copied into one contiguous buffer and go out as a plain
/// send (IORING_OP_SEND / send(2)): cheaper than importing a msghdr and an iovec array.
inline constexpr std::size_t kSmallSend = 4096;

/// One send_all's scratch space, the same for both backends (on the caller's stack; msghdrs it
/// fills point into it, so it is neither copied nor moved).
class SendScratch {
 public:
  SendScratch() noexcept = default;
  SendScratch(const SendScratch&) = delete;
  SendScratch& operator=(const SendScratch&) = delete;

  /// Several pieces carrying no fd and at most kSmallSend bytes in all: replaces iov[0..n) by
  /// one contiguous copy (n becomes 1). Otherwise leaves them as they are.
  void gather_small(iovec*& iov, int& n, int pass_fd) noexcept;

 private:
  alignas(64) char small_[kSmallSend];
  iovec one_;
};

/// Drops the first `done` bytes from iov[0..n) (and any emptied entries).
void advance_iov(iovec*& iov, int& n, std::size_t done) noexcept;

/// The io_uring backend, or nullptr where io_uring cannot be set up in this process (probed
/// once per process). A thread whose own ring cannot be created (fd or memory exhaustion) falls
/// back to system calls for its calls; the wire format is the same.
const PipeIo* uring_io() noexcept;

/// `pass_fd` as the span of fds unix_send/UnixSendMsg take: empty when < 0.
inline std::span<const int> fds_of(const int& pass_fd) noexcept {
  return pass_fd >= 0 ? std::span<const int>(&pass_fd, 1) : std::span<const int>();
}

}  // namespace multiproc::detail
