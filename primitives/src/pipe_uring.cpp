// The io_uring backend: one small ring per thread, shared by every Connection the thread uses.
//
// Why per thread, not per Connection: every call completes the requests it submits before it
// returns (see pipe_io.hpp), so a ring is idle between calls and any number of connections can
// share it. One ring per thread means one ring fd and three small mappings per thread instead
// of per connection (a Listener may serve thousands), ring setup is paid once per thread rather
// than per connection, and IORING_SETUP_SINGLE_ISSUER holds by construction — a per-connection
// ring would break it (-EEXIST) the first time a connection moved to another thread.
//
// Setup: IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN (6.1+): completions run only
// when this thread waits in io_uring_enter, never as an interrupt of its other work; falling
// back to COOP_TASKRUN (5.19+) and then to no flags. Never SQPOLL: a polling kernel thread per
// ring would burn a CPU. After fork() the child's thread-local ring is the parent's (same fd,
// same shared mappings): the child drops its references and sets up its own on first use.
//
// Each operation is one io_uring_enter that submits and waits:
//   send:  IORING_OP_SENDMSG (header and payload gathered, SCM_RIGHTS when passing an fd),
//          MSG_NOSIGNAL | MSG_WAITALL so the kernel finishes a large send without coming back.
//   recv:  IORING_OP_RECVMSG with room for SCM_RIGHTS; with a finite deadline it is linked to an
//          IORING_OP_LINK_TIMEOUT (IORING_TIMEOUT_ABS, CLOCK_MONOTONIC) — no timer thread, no
//          second system call. Receives never use MSG_WAITALL here: every recvmsg's control data
//          must reach us, or a stray fd could be installed in our table unseen.
//
// Measured and left out: a request/response call submitting the send with the receive linked
// behind it (IOSQE_IO_LINK) halves the io_uring_enter calls of a round trip, but costs ~0.1 µs
// more CPU per trip than two enters (the linked receive is issued from task work and fails once
// before it arms its poll), so it did not pay on the 6.18 kernel here.
//
// Also left out: leaving a coalesced send (pipe.hpp, "Coalescing") in flight while the next
// buffer fills. A send into a socket with room completes during io_uring_submit (the first
// issue is inline), so there is nothing to overlap; into a full socket, the next flush must wait
// for it anyway. It would cost the invariant this file rests on — nothing in flight between
// calls, so one ring per thread serves every connection and a connection may change threads —
// and every delivering flush point would need a wait. Coalesced 64 B streaming reaches ~12x one
// write() per message synchronously (bench/pipe.cpp).
//
// System calls: this file makes none of its own. The ring is driven through liburing (the I/O
// library the backend is built on: io_uring_* set the ring up, queue requests and enter the
// kernel); the message headers it queues are core's (UnixSendMsg/UnixRecvMsg in
// multiproc/unix_socket.hpp, the same the syscall backend sends through), and descriptors are
// closed and polled through multiproc/fd.hpp.
#include "pipe_io.hpp"

#include <multiproc/fd.hpp>
#include <multiproc/ids.hpp>
#include <multiproc/unix_socket.hpp>

#include <liburing.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <poll.h>
#include <sys/socket.h>

static_assert(EAGAIN == EWOULDBLOCK, "Linux: one errno for a would-block socket");

namespace multiproc::detail {
namespace {

constexpr unsigned kRingEntries = 8;  // an operation uses at most 2 SQEs
constexpr std::uint64_t kOpTag = 1;
constexpr std::uint64_t kTimeoutTag = 2;

// The operations this backend needs.
bool ring_supports_ops(io_uring& ring) noexcept {
  io_uring_probe* probe = io_uring_get_probe_ring(&ring);
  if (probe == nullptr) return false;
  const bool ok = io_uring_opcode_supported(probe, IORING_OP_SEND) &&
                  io_uring_opcode_supported(probe, IORING_OP_SENDMSG) &&
                  io_uring_opcode_supported(probe, IORING_OP_RECVMSG) &&
                  io_uring_opcode_supported(probe, IORING_OP_LINK_TIMEOUT);
  io_uring_free_probe(probe);
  return ok;
}

// 0: not probed yet; 1: io_uring works in this process; 2: it does not. Relaxed: the state is
// the whole message (nothing else is published with it), and racing probes agree.
std::atomic<int> g_probe{0};

/// Sets up a ring for this thread: 0 or -errno.
///
/// Fork safety: the ring's mappings are MADV_DONTFORK, and where the kernel allows (5.18+) the
/// ring is reached through a registered index only (IORING_REGISTER_RING_FDS, which also spares
/// every io_uring_enter an fd lookup) and its fd is closed. A fork()ed child then inherits
/// neither mappings nor an fd of the parent's ring — nothing it could write into by mistake,
/// nothing it must clean up — and sets up its own on first use.
int setup_ring(io_uring& ring) noexcept {
  static constexpr unsigned kFlagSets[] = {
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
      IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
      0,
  };
  int r = -EINVAL;
  for (unsigned flags : kFlagSets) {
    io_uring_params p{};
    p.flags = flags;
    r = io_uring_queue_init_params(kRingEntries, &ring, &p);
    if (r != -EINVAL) break;  // EINVAL: the kernel lacks a flag; anything else is final
  }
  if (r != 0) return r;
  if (g_probe.load(std::memory_order_relaxed) == 0)
    g_probe.store(ring_supports_ops(ring) ? 1 : 2, std::memory_order_relaxed);
  if (g_probe.load(std::memory_order_relaxed) != 1) {
    io_uring_queue_exit(&ring);
    return -ENOSYS;
  }
  (void)io_uring_ring_dontfork(&ring);
  if (io_uring_register_ring_fd(&ring) == 1) {
    // liburing now enters through the registered index; nothing we call needs the fd again.
    close_fd(ring.ring_fd);
    ring.ring_fd = -1;
  }
  return 0;
}

struct ThreadRing {
  io_uring ring{};
  pid_t owner = 0;      // the process whose ring this is; 0: none
  pid_t failed_in = 0;  // setup failed in this thread of that process: use syscalls

  ~ThreadRing() { drop(); }

  /// Tears down this process's ring. A ring inherited across fork() is only forgotten: its
  /// mappings were not inherited (MADV_DONTFORK; unmapping their addresses now could hit the
  /// child's own later mappings) and its fd, if the kernel made us keep one, may have been
  /// closed and its number reused by the child.
  void drop() noexcept {
    if (owner != 0 && owner == this_pid()) io_uring_queue_exit(&ring);
    ring = io_uring{};
    owner = 0;
  }

  io_uring* get() noexcept {
    const pid_t me = this_pid();
    if (owner == me) return &ring;
    drop();
    if (failed_in == me) return nullptr;
    if (setup_ring(ring) != 0) {
      ring = io_uring{};
      failed_in = me;
      return nullptr;
    }
    owner = me;
    return &ring;
  }
};

thread_local ThreadRing t_ring;

/// Submits what is queued and reaps exactly `count` completions into res[tag].
/// Returns 0, or -errno when the ring itself failed (the thread then falls back to syscalls).
///
/// `likely_inline`: the operation usually completes during submission (a send into a socket
/// with room), so submit without IORING_ENTER_GETEVENTS and find its CQE already posted; only
/// if it had to wait does a second io_uring_enter sleep for it. Otherwise (a receive, which in
/// a request/response exchange usually waits for the peer) submit and wait in one enter.
int submit_and_reap(io_uring* ring, unsigned count, int (&res)[3], bool likely_inline) noexcept {
  int s;
  do {
    s = likely_inline ? io_uring_submit(ring) : io_uring_submit_and_wait(ring, count);
  } while (s == -EINTR || s == -EAGAIN || s == -EBUSY);  // nothing was submitted: retry
  if (s < 0) {
    t_ring.drop();
    t_ring.failed_in = this_pid();
    return s;
  }
  // The wait may have been cut short by a signal: reap until all are in.
  for (unsigned got = 0; got < count;) {
    io_uring_cqe* cqe = nullptr;
    int w = io_uring_peek_cqe(ring, &cqe);
    if (w != 0) w = io_uring_wait_cqe(ring, &cqe);
    if (w == -EINTR) continue;
    if (w < 0) {
      t_ring.drop();
      t_ring.failed_in = this_pid();
      return w;
    }
    if (cqe->user_data == kOpTag || cqe->user_data == kTimeoutTag) {
      res[cqe->user_data] = cqe->res;
      ++got;
    }
    io_uring_cqe_seen(ring, cqe);
  }
  return 0;
}

class UringIo final : public PipeIo {
 public:
  std::string_view name() const noexcept override { return "io_uring"; }

  int send_all(int fd, iovec* iov, int n, int pass_fd) const noexcept override {
    SendScratch scratch;
    scratch.gather_small(iov, n, pass_fd);
    while (n > 0) {
      io_uring* ring = t_ring.get();
      if (ring == nullptr) return syscall_io().send_all(fd, iov, n, pass_fd);
      io_uring_sqe* sqe = io_uring_get_sqe(ring);
      // Completed before this iteration ends (submit_and_reap), so it may live on the stack.
      UnixSendMsg msg(std::span<const iovec>(iov, static_cast<std::size_t>(n)), fds_of(pass_fd));
      if (pass_fd < 0 && n == 1) {  // no msghdr to import
        io_uring_prep_send(sqe, fd, iov->iov_base, iov->iov_len, MSG_NOSIGNAL | MSG_WAITALL);
      } else {
        io_uring_prep_sendmsg(sqe, fd, msg.get(), MSG_NOSIGNAL | MSG_WAITALL);
      }
      sqe->user_data = kOpTag;
      int res[3] = {0, 0, 0};
      if (submit_and_reap(ring, 1, res, true) < 0) continue;  // ring gone: the syscall path takes over
      const int r = res[kOpTag];
      if (r < 0) {
        if (r == -EINTR) continue;
        if (r == -EAGAIN) {  // the user made the socket non-blocking: io_uring will not wait
          const int w = wait_fd(fd, POLLOUT, Deadline::never());
          if (w < 0) return w;
          continue;
        }
        return r;
      }
      pass_fd = -1;  // rode with the first byte
      advance_iov(iov, n, static_cast<std::size_t>(r));
    }
    return 0;
  }

  int recv(int fd, void* buf, std::size_t len, bool waitall, const Deadline& deadline,
           RecvResult& out) const noexcept override {
    for (;;) {
      io_uring* ring = t_ring.get();
      if (ring == nullptr) return syscall_io().recv(fd, buf, len, waitall, deadline, out);
      const bool try_only = !deadline.infinite() && deadline.expired();
      UnixRecvMsg m(buf, len);
      io_uring_sqe* sqe = io_uring_get_sqe(ring);
      io_uring_prep_recvmsg(sqe, fd, m.get(), MSG_CMSG_CLOEXEC | (try_only ? MSG_DONTWAIT : 0));
      sqe->user_data = kOpTag;
      unsigned count = 1;
      __kernel_timespec ts{};
      if (!deadline.infinite() && !try_only) {
        sqe->flags |= IOSQE_IO_LINK;
        ts.tv_sec = deadline.abs_timespec()->tv_sec;
        ts.tv_nsec = deadline.abs_timespec()->tv_nsec;
        io_uring_sqe* t = io_uring_get_sqe(ring);
        io_uring_prep_link_timeout(t, &ts, IORING_TIMEOUT_ABS);
        t->user_data = kTimeoutTag;
        count = 2;
      }
      int res[3] = {0, 0, 0};
      if (submit_and_reap(ring, count, res, try_only) < 0) continue;  // ring gone: the syscall path takes over
      const int r = res[kOpTag];
      if (r >= 0) {
        m.finish(static_cast<std::size_t>(r), out);
        out.eof = r == 0;
        return 0;
      }
      switch (r) {
        case -EINTR:
          continue;
        case -ECONNRESET:  // the peer closed with data of ours unread: it is gone
          out.eof = true;
          return 0;
        case -ECANCELED:  // the linked timeout fired (nothing was received)
          if (deadline.expired()) {
            out.timed_out = true;
            return 0;
          }
          continue;
        case -EAGAIN:  // == -EWOULDBLOCK on Linux
          if (try_only) {
            out.timed_out = true;
            return 0;
          }
          {  // the user made the socket non-blocking: io_uring will not wait for data
            const int w = wait_fd(fd, POLLIN, deadline);
            if (w < 0) return w;
            if (w == 0) {
              out.timed_out = true;
              return 0;
            }
          }
          continue;
        default:
          return r;
      }
    }
  }
};

}  // namespace

const PipeIo* uring_io() noexcept {
  static const UringIo io;
  if (g_probe.load(std::memory_order_relaxed) == 0) {
    // Probe with this thread's own ring (kept for later use); a failed setup means "no".
    if (t_ring.get() == nullptr) {
      int expected = 0;
      g_probe.compare_exchange_strong(expected, 2, std::memory_order_relaxed);
    }
  }
  return g_probe.load(std::memory_order_relaxed) == 1 ? &io : nullptr;
}

}  // namespace multiproc::detail
