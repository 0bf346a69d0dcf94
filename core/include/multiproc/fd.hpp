// multiproc/fd.hpp — file descriptors: ownership, and waiting on them against a Deadline.
//
// The one place the library closes, duplicates and polls descriptors; the primitives above
// core/ (Pipe, Process, Arena) go through these instead of making the system calls themselves.
//
// Waiting: poll_until is ppoll(2) on a relative timeout recomputed from one absolute
// CLOCK_MONOTONIC Deadline, so EINTR and early wake-ups never stretch the wait (they are
// retried against the same deadline). Like every timed wait on this machine it may return
// ~50-140 µs after the deadline (timer slack); it never returns before it with a timeout.
#pragma once

#include <multiproc/deadline.hpp>

#include <poll.h>

#include <span>
#include <utility>

namespace multiproc {

/// Closes `fd` (>= 0; -1 is ignored). EINTR is not retried: Linux has released the descriptor
/// by then, and a retry could close one another thread just opened.
void close_fd(int fd) noexcept;

/// True when `fd` is an open descriptor of this process (fcntl F_GETFD).
bool fd_is_open(int fd) noexcept;

/// A new descriptor for the same open file, O_CLOEXEC, >= 0; -1 with errno on failure.
int dup_cloexec(int fd) noexcept;

/// Waits until one of `fds` has an event it asked for (or POLLERR/POLLHUP/POLLNVAL) or
/// `deadline` passes. Returns the number of entries with revents set (> 0), 0 at the deadline,
/// or -1 with errno (never EINTR). A deadline already past polls once without blocking.
int poll_until(std::span<pollfd> fds, const Deadline& deadline) noexcept;

/// Waits for `events` on one descriptor; the revents seen, 0 at the deadline, -1 with errno.
inline short poll_one(int fd, short events, const Deadline& deadline) noexcept {
  pollfd p{fd, events, 0};
  const int r = poll_until(std::span<pollfd>(&p, 1), deadline);
  return r > 0 ? p.revents : static_cast<short>(r);
}

/// Owns one descriptor and closes it on destruction, like std::unique_ptr. Empty: -1.
class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { close_fd(fd_); }

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  /// Gives up ownership without closing; the descriptor, or -1.
  int release() noexcept { return std::exchange(fd_, -1); }
  /// Closes the owned descriptor (if any) and owns `fd` instead.
  void reset(int fd = -1) noexcept { close_fd(std::exchange(fd_, fd)); }

 private:
  int fd_ = -1;
};

}  // namespace multiproc
