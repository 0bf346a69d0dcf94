// Connection: framing, read-ahead, send coalescing, fd bookkeeping and every policy over the two
// I/O backends (pipe_io.hpp). See pipe.hpp for the guarantees and frame.hpp for the wire format.
//
// Registries (one mutex, g_registry_mutex, fork-safe through pthread_atfork): fd -> Impl, so
// wait() sees read-ahead messages and flushes coalesced sends; and the set of coalescing Impls,
// flushed by the exit handler (std::atexit) and at the end of a Process child.
#include <multiproc/pipe.hpp>

#include "frame.hpp"
#include "pipe_io.hpp"

#include <multiproc/fd.hpp>
#include <multiproc/ids.hpp>
#include <multiproc/unix_socket.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <deque>
#include <mutex>
#include <poll.h>
#include <pthread.h>
#include <unordered_map>
#include <unordered_set>

namespace multiproc {

using detail::FrameDecoder;
using detail::FrameKind;
using detail::Head;
using detail::kHeaderSize;

namespace {

/// An fd received with the stream bytes [begin, end): the kernel hands over a message's fds with
/// the first read that touches the message, and stops that read right after it, so the fd
/// message's header starts inside that window.
struct ReceivedFd {
  int fd;
  std::uint64_t begin, end;
};

std::string str(const char* op, const std::string& what) { return std::string(op) + ": " + what; }

// Coalescing (pipe.hpp): the send buffer's size, how many messages it holds before it goes out,
// and the largest frame copied into it (a larger one rides behind it in the same gathered send).
// 32 messages: bench-pipe's 64 B stream (a ratio to one write() per message) measured ~7.5x at
// 16 per send, ~12.6x at 32, ~12.7x at 64 and no better at 128: past 32 the receiver's per-message
// work dominates, and a smaller batch keeps what a crash can lose small.
constexpr std::size_t kCoalesceBytes = 64 * 1024;
constexpr std::size_t kCoalesceMessages = 32;
constexpr std::size_t kCoalesceCopyMax = 16 * 1024;
static_assert(kCoalesceCopyMax <= kCoalesceBytes, "a copied frame always fits an empty buffer");

}  // namespace

struct Connection::Impl {
  int fd = -1;
  bool can_recv = true;
  bool can_send = true;
  bool eof = false;  // the peer's end of stream has been read
  // The last message was too large for the read-ahead buffer (its payload went straight to the
  // caller). While that holds, a header is read alone: the next large payload then goes straight
  // to its destination too, instead of its first 64 KiB being copied through the buffer.
  bool expect_large = false;
  const detail::PipeIo* io;
  std::size_t max_message = default_max_message_size;
  FrameDecoder in{default_max_message_size};
  std::deque<ReceivedFd> fds;  // received, not yet taken, in stream order
  std::vector<std::byte> stage;   // send_bytes_many: small messages copied together
  std::vector<iovec> iovs;        // send_bytes_many: the gathered send
  // Coalescing: framed messages not yet sent, out[0, out_bytes), buffered by process out_pid
  // (a fork()ed child's copy is the parent's to send: the child drops it).
  bool coalescing = false;
  std::unique_ptr<std::byte[]> out;  // kCoalesceBytes once coalescing was turned on
  std::size_t out_bytes = 0;
  std::size_t out_messages = 0;
  pid_t out_pid = 0;

  Impl(int f, const detail::PipeIo* backend, bool recv_ok, bool send_ok);
  ~Impl() { close(); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  void close() noexcept;

  // Receiving.
  bool ready_without_io() const noexcept;
  bool read_more(const char* op, const Deadline& deadline, std::size_t want, std::size_t at_most = SIZE_MAX);
  void take_fds(const char* op, detail::RecvResult& r, std::uint64_t begin);
  Head next_head(const char* op);
  Head checked(const char* op, Head h);
  void take_payload(const char* op, Head h, std::byte* dst);
  void read_direct(const char* op, std::byte* dst, std::size_t n, std::size_t total);
  void refuse_non_data(const char* op, const Head& h);
  [[noreturn]] void at_eof(const char* op);
  [[noreturn]] void fail_bad(const char* op, const std::string& why);
  [[noreturn]] void fail_refused(const char* op, const Head& h);

  // Sending.
  void check_size(const char* op, std::size_t n) const;
  void send_iov(const char* op, iovec* iov, int n, int pass_fd, std::size_t dropped = 0);
  void coalesce(const char* op, std::span<const std::byte> message);
  bool buffered_here() noexcept;
  void flush(const char* op, iovec* more = nullptr, int n_more = 0);
  int try_flush() noexcept;
  template <class Get>
  void send_gathered(const char* op, std::size_t count, Get&& message);
};

// ---- the fd registry: lets wait() see messages a Connection has already read ahead ----------

namespace {

std::mutex g_registry_mutex;
std::unordered_map<int, Connection::Impl*>* g_registry = nullptr;  // guarded by g_registry_mutex
// Connections with coalescing on, for the exit flush; guarded by g_registry_mutex; never freed.
std::unordered_set<Connection::Impl*>* g_coalescing = nullptr;

void registry_lock() { g_registry_mutex.lock(); }
void registry_unlock() { g_registry_mutex.unlock(); }

void registry_set(int fd, Connection::Impl* impl) {
  static std::once_flag once;
  // A fork() while another thread holds the mutex must not leave the child's copy locked.
  std::call_once(once, [] { ::pthread_atfork(&registry_lock, &registry_unlock, &registry_unlock); });
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  if (g_registry == nullptr) g_registry = new std::unordered_map<int, Connection::Impl*>();  // never freed:
  if (impl != nullptr) {                                                                 // outlives statics
    (*g_registry)[fd] = impl;
  } else {
    g_registry->erase(fd);
  }
}

void coalescing_set(Connection::Impl* impl, bool on) {
  static std::once_flag once;
  // Registered once per program image (a fork()ed child inherits the registration).
  std::call_once(once, [] { std::atexit([] { detail::flush_connections(); }); });
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  if (g_coalescing == nullptr) g_coalescing = new std::unordered_set<Connection::Impl*>();
  if (on) {
    g_coalescing->insert(impl);
  } else {
    g_coalescing->erase(impl);
  }
}

const detail::PipeIo* select_io(Backend backend, const char* op) {
  switch (backend) {
    case Backend::syscalls:
      return &detail::syscall_io();
    case Backend::io_uring:
      if (const detail::PipeIo* io = detail::uring_io()) return io;
      throw Error(errc::not_supported, str(op, "io_uring is not available in this process"));
    case Backend::automatic:
      break;
  }
  const char* off = std::getenv("MULTIPROC_NO_IO_URING");
  if (off != nullptr && off[0] != '\0' && std::strcmp(off, "0") != 0) return &detail::syscall_io();
  if (const detail::PipeIo* io = detail::uring_io()) return io;
  return &detail::syscall_io();
}

}  // namespace

Connection::Impl::Impl(int f, const detail::PipeIo* backend, bool recv_ok, bool send_ok)
    : fd(f), can_recv(recv_ok), can_send(send_ok), io(backend) {
  registry_set(fd, this);
}

void Connection::Impl::close() noexcept {
  if (fd >= 0) {
    if (out_bytes != 0) (void)try_flush();  // nothing to report it to: dropped (pipe.hpp)
    if (coalescing) coalescing_set(this, false);
    coalescing = false;
    out_bytes = out_messages = 0;
    out.reset();
    registry_set(fd, nullptr);
    close_fd(fd);
    fd = -1;
  }
  for (const ReceivedFd& r : fds) close_fd(r.fd);
  fds.clear();
  in.reset();
  stage = {};
  iovs = {};
}

// ---- receiving --------------------------------------------------------------------------------

bool Connection::Impl::ready_without_io() const noexcept {
  const Head h = in.head();
  return h.status == Head::bad || h.whole() || eof;
}

void Connection::Impl::fail_bad(const char* op, const std::string& why) {
  close();
  throw Error(errc::bad_message, str(op, why + "; the connection is closed"));
}

void Connection::Impl::at_eof(const char* op) {
  if (!in.empty()) {
    fail_bad(op, "the peer closed the connection mid-message (" + std::to_string(in.buffered().size()) +
                     " bytes of an unfinished frame)");
  }
  if (!fds.empty()) fail_bad(op, "the peer sent an fd with no message to carry it");
  throw Eof(str(op, "the peer closed the connection and no message is left"));
}

void Connection::Impl::take_fds(const char* op, detail::RecvResult& r, std::uint64_t begin) {
  if (r.nfds == 0 && !r.fds_truncated) return;
  if (r.fds_truncated || r.nfds > 1 || r.bytes == 0) {
    for (int i = 0; i < r.nfds; ++i) close_fd(r.fds[i]);
    fail_bad(op, "the peer sent more fds than messages that carry them (closed them)");
  }
  fds.push_back({r.fds[0], begin, begin + r.bytes});
}

bool Connection::Impl::read_more(const char* op, const Deadline& deadline, std::size_t want, std::size_t at_most) {
  std::span<std::byte> space = in.prepare(want);
  if (space.size() > at_most) space = space.first(at_most);
  const std::uint64_t begin = in.offset() + in.buffered().size();
  detail::RecvResult r;
  const int e = io->recv(fd, space.data(), space.size(), false, deadline, r);
  if (e < 0) {
    close();
    detail::throw_errno(-e, str(op, "recvmsg failed; the connection is closed"));
  }
  if (r.timed_out) return false;
  in.commit(r.bytes);
  take_fds(op, r, begin);
  if (r.eof) eof = true;
  return true;
}

Head Connection::Impl::checked(const char* op, Head h) {
  const std::uint64_t at = in.offset();  // where this frame's header starts in the stream
  if (!fds.empty() && fds.front().end <= at)
    fail_bad(op, "the peer sent an fd with no message to carry it (closed it)");
  if (h.kind == FrameKind::fd && (fds.empty() || fds.front().begin > at))
    fail_bad(op, "an fd message arrived without its fd");
  return h;
}

Head Connection::Impl::next_head(const char* op) {
  for (;;) {
    const Head h = in.head();
    if (h.status == Head::ready) return checked(op, h);
    if (h.status == Head::bad) {
      if (h.length > max_message)
        fail_bad(op, "the peer announced a message of " + std::to_string(h.length) +
                         " bytes, more than max_message_size() = " + std::to_string(max_message));
      fail_bad(op, std::string("malformed stream: ") + h.why);
    }
    if (eof) at_eof(op);
    const std::size_t need = kHeaderSize - in.buffered().size();
    read_more(op, Deadline::never(), need, expect_large ? need : SIZE_MAX);
  }
}

void Connection::Impl::read_direct(const char* op, std::byte* dst, std::size_t n, std::size_t total) {
  while (n > 0) {
    detail::RecvResult r;
    const int e = io->recv(fd, dst, n, true, Deadline::never(), r);
    if (e < 0) {
      close();
      detail::throw_errno(-e, str(op, "recvmsg failed mid-message; the connection is closed"));
    }
    if (r.nfds > 0 || r.fds_truncated) {
      for (int i = 0; i < r.nfds; ++i) close_fd(r.fds[i]);
      fail_bad(op, "the peer sent an fd inside a message's payload (closed it)");
    }
    if (r.eof)
      fail_bad(op, "the peer closed the connection mid-message (" + std::to_string(total - n) + " of " +
                       std::to_string(total) + " payload bytes arrived)");
    in.skip(r.bytes);
    dst += r.bytes;
    n -= r.bytes;
  }
}

void Connection::Impl::take_payload(const char* op, Head h, std::byte* dst) {
  const std::size_t frame = kHeaderSize + h.length;
  if (!h.whole() && frame <= in.chunk()) {
    // Small: keep reading into the buffer; each read may bring the following messages too.
    do {
      if (eof) at_eof(op);
      read_more(op, Deadline::never(), frame - in.buffered().size());
      h = in.head();
    } while (!h.whole());
  }
  const std::size_t have = h.buffered_payload;
  if (have != 0) std::memcpy(dst, in.buffered().data() + kHeaderSize, have);
  in.consume(kHeaderSize + have);
  // Large: the rest goes straight into the caller's memory, no extra copy.
  expect_large = have < h.length;
  if (expect_large) read_direct(op, dst + have, h.length - have, h.length);
}

void Connection::Impl::fail_refused(const char* op, const Head& h) {
  // A Listener refused us; its reason is the payload (small: the listener wrote it).
  std::string reason(h.length, '\0');
  take_payload(op, h, reinterpret_cast<std::byte*>(reason.data()));
  close();
  throw Error(errc::permission_denied, str(op, reason));
}

void Connection::Impl::refuse_non_data(const char* op, const Head& h) {
  if (h.kind == FrameKind::data) return;
  if (h.kind == FrameKind::reject) fail_refused(op, h);
  // An fd where data was expected: close the fd, drop the message, report it.
  close_fd(fds.front().fd);
  fds.pop_front();
  in.consume(kHeaderSize);
  throw Error(errc::bad_message, str(op, "the next message carried an fd (it was closed); receive fds with recv_fd()"));
}

// ---- sending ----------------------------------------------------------------------------------

void Connection::Impl::check_size(const char* op, std::size_t n) const {
  if (n > max_message)
    throw Error(errc::message_too_large, str(op, "a message of " + std::to_string(n) +
                                                     " bytes exceeds max_message_size() = " +
                                                     std::to_string(max_message) + "; nothing was sent"));
}

void Connection::Impl::send_iov(const char* op, iovec* iov, int n, int pass_fd, std::size_t dropped) {
  const int e = io->send_all(fd, iov, n, pass_fd);
  if (e == 0) return;
  if (e == -EPIPE || e == -ECONNRESET) {
    // Refused by a Listener? Its reason may be waiting in our receive buffer: report that.
    if (can_recv) {
      try {
        while (!ready_without_io() && read_more(op, Deadline::after(std::chrono::seconds(0)), 1)) {
        }
      } catch (const Error&) {
        // A malformed or broken stream: the peer is gone either way.
      }
      if (fd >= 0) {
        const Head h = in.head();
        if (h.whole() && h.kind == FrameKind::reject) fail_refused(op, h);
      }
    }
    throw Closed(str(op, dropped == 0 ? std::string("the peer closed the connection")
                                      : "the peer closed the connection; " + std::to_string(dropped) +
                                            " unsent message(s) were dropped"));
  }
  close();  // part of a frame may have gone out: the stream is no longer well-formed
  detail::throw_errno(-e, str(op, "sendmsg failed; the connection is closed"));
}

template <class Get>
void Connection::Impl::send_gathered(const char* op, std::size_t count, Get&& message) {
  // Small messages are copied, header and all, into one staging buffer; a large payload gets its
  // own iovec. A gathered send goes out at 256 KiB of staging or IOV_MAX iovecs.
  constexpr std::size_t kCopyBelow = 512;
  constexpr std::size_t kStageLimit = 256 * 1024;
  constexpr std::size_t kMaxIov = 1024;
  struct Piece {
    const std::byte* external;  // nullptr: stage[offset, offset + length)
    std::size_t offset, length;
  };
  std::vector<Piece> pieces;
  stage.clear();
  auto flush = [&] {
    iovs.clear();
    for (const Piece& p : pieces) {
      void* base = const_cast<std::byte*>(p.external != nullptr ? p.external : stage.data() + p.offset);
      if (p.external == nullptr && !iovs.empty() && static_cast<std::byte*>(iovs.back().iov_base) +
                                                            iovs.back().iov_len == base) {
        iovs.back().iov_len += p.length;  // adjacent in the stage: one iovec
      } else {
        iovs.push_back({base, p.length});
      }
    }
    if (!iovs.empty()) send_iov(op, iovs.data(), static_cast<int>(iovs.size()), -1);
    pieces.clear();
    stage.clear();
  };
  for (std::size_t i = 0; i < count; ++i) {
    const std::span<const std::byte> m = message(i);
    const detail::HeaderBytes h = detail::encode_header(static_cast<std::uint32_t>(m.size()), FrameKind::data);
    const std::size_t at = stage.size();
    stage.insert(stage.end(), h.begin(), h.end());
    if (m.size() < kCopyBelow) {
      stage.insert(stage.end(), m.begin(), m.end());
      pieces.push_back({nullptr, at, kHeaderSize + m.size()});
    } else {
      pieces.push_back({nullptr, at, kHeaderSize});
      pieces.push_back({m.data(), 0, m.size()});
    }
    if (stage.size() >= kStageLimit || pieces.size() + 2 > kMaxIov) flush();
  }
  flush();
}

// ---- coalescing ---------------------------------------------------------------------------------

bool Connection::Impl::buffered_here() noexcept {
  if (out_bytes != 0 && out_pid != this_pid()) out_bytes = out_messages = 0;  // the parent's, from fork()
  return out_bytes != 0;
}

void Connection::Impl::coalesce(const char* op, std::span<const std::byte> message) {
  const detail::HeaderBytes h = detail::encode_header(static_cast<std::uint32_t>(message.size()), FrameKind::data);
  const std::size_t frame = kHeaderSize + message.size();
  if (frame > kCoalesceCopyMax) {  // not worth a copy: it goes now, behind the buffer, in one send
    iovec more[2] = {{const_cast<std::byte*>(h.data()), kHeaderSize},
                     {const_cast<std::byte*>(message.data()), message.size()}};
    flush(op, more, 2);
    return;
  }
  if (!buffered_here()) {
    out_pid = this_pid();
  } else if (out_bytes + frame > kCoalesceBytes) {
    flush(op);
    out_pid = this_pid();
  }
  std::memcpy(out.get() + out_bytes, h.data(), kHeaderSize);
  if (!message.empty()) std::memcpy(out.get() + out_bytes + kHeaderSize, message.data(), message.size());
  out_bytes += frame;
  if (++out_messages == kCoalesceMessages) flush(op);
}

void Connection::Impl::flush(const char* op, iovec* more, int n_more) {
  iovec iov[3];
  int n = 0;
  if (buffered_here()) iov[n++] = {out.get(), out_bytes};
  for (int i = 0; i < n_more; ++i) iov[n++] = more[i];
  if (n == 0) return;
  // Sent or, if the peer is gone, lost with it: either way no longer buffered.
  const std::size_t dropped = out_messages + (n_more != 0 ? 1 : 0);
  out_bytes = out_messages = 0;
  send_iov(op, iov, n, -1, dropped);
}

int Connection::Impl::try_flush() noexcept {
  if (!buffered_here() || fd < 0) return 0;
  // Plain system calls: this also runs from the exit handler and from destructors of statics,
  // after this thread's io_uring ring (a thread_local) may already be gone.
  iovec v{out.get(), out_bytes};
  const int e = detail::syscall_io().send_all(fd, &v, 1, -1);
  if (e == 0) out_bytes = out_messages = 0;
  return e;
}

void detail::flush_connections() noexcept {
  // Under the registry lock, so no other thread's close() frees one while it is flushed.
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  if (g_coalescing == nullptr) return;
  for (Connection::Impl* c : *g_coalescing) {
    (void)c->try_flush();
    c->out_bytes = c->out_messages = 0;  // what did not go is dropped (pipe.hpp: no one to tell)
  }
}

// ---- Connection -------------------------------------------------------------------------------

namespace {

Connection::Impl& live(const std::unique_ptr<Connection::Impl>& impl, const char* op) {
  if (!impl || impl->fd < 0) throw Error(errc::closed, str(op, "the connection is closed"));
  return *impl;
}

/// A connection to receive on, with what coalescing buffered sent first (a request held in our
/// buffer would otherwise wait for a reply that waits for it).
Connection::Impl& receiver(const std::unique_ptr<Connection::Impl>& impl, const char* op) {
  Connection::Impl& c = live(impl, op);
  if (!c.can_recv) throw Error(errc::not_supported, str(op, "this is the send end of a one-way Pipe"));
  if (c.out_bytes != 0) c.flush(op);
  return c;
}

Connection::Impl& sender(const std::unique_ptr<Connection::Impl>& impl, const char* op) {
  Connection::Impl& c = live(impl, op);
  if (!c.can_send) throw Error(errc::not_supported, str(op, "this is the receive end of a one-way Pipe"));
  return c;
}

}  // namespace

Connection::Connection() noexcept = default;
Connection::Connection(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
Connection::Connection(Connection&&) noexcept = default;
Connection& Connection::operator=(Connection&&) noexcept = default;
Connection::~Connection() = default;

void Connection::send_bytes(std::span<const std::byte> message) {
  static constexpr const char* op = "Connection::send_bytes";
  Impl& c = sender(impl_, op);
  c.check_size(op, message.size());
  if (c.coalescing) {
    c.coalesce(op, message);
    return;
  }
  detail::HeaderBytes h = detail::encode_header(static_cast<std::uint32_t>(message.size()), FrameKind::data);
  iovec iov[2] = {{h.data(), kHeaderSize}, {const_cast<std::byte*>(message.data()), message.size()}};
  c.send_iov(op, iov, message.empty() ? 1 : 2, -1);
}

void Connection::send_bytes(std::string_view text) { send_bytes(std::as_bytes(std::span(text.data(), text.size()))); }

void Connection::send_bytes_many(std::span<const std::span<const std::byte>> messages) {
  static constexpr const char* op = "Connection::send_bytes_many";
  Impl& c = sender(impl_, op);
  for (const auto& m : messages) c.check_size(op, m.size());
  c.flush(op);  // what coalescing buffered goes first
  c.send_gathered(op, messages.size(), [&](std::size_t i) { return messages[i]; });
}

void Connection::send_fixed_many(std::span<const std::byte> values, std::size_t size) {
  static constexpr const char* op = "Connection::send_many";
  Impl& c = sender(impl_, op);
  c.check_size(op, size);
  c.flush(op);  // what coalescing buffered goes first
  const std::size_t count = size == 0 ? 0 : values.size() / size;
  c.send_gathered(op, count, [&](std::size_t i) { return values.subspan(i * size, size); });
}

void Connection::send_fd(int fd) {
  static constexpr const char* op = "Connection::send_fd";
  Impl& c = sender(impl_, op);
  if (!fd_is_open(fd))
    detail::throw_errno(EBADF, str(op, "fd " + std::to_string(fd) + " is not open"));
  // What coalescing buffered goes first, in a send of its own: the receiver sees an fd with the
  // read that touches its sendmsg's first byte, so the fd's header must be that byte.
  c.flush(op);
  detail::HeaderBytes h = detail::encode_header(0, FrameKind::fd);
  iovec iov{h.data(), kHeaderSize};
  c.send_iov(op, &iov, 1, fd);  // one sendmsg of its own: the fd rides on exactly this header
}

std::vector<std::byte> Connection::recv_bytes() {
  static constexpr const char* op = "Connection::recv_bytes";
  Impl& c = receiver(impl_, op);
  const Head h = c.next_head(op);
  c.refuse_non_data(op, h);
  std::vector<std::byte> out(h.length);
  c.take_payload(op, h, out.data());
  return out;
}

std::string Connection::recv_string() {
  static constexpr const char* op = "Connection::recv_string";
  Impl& c = receiver(impl_, op);
  const Head h = c.next_head(op);
  c.refuse_non_data(op, h);
  std::string out(h.length, '\0');
  c.take_payload(op, h, reinterpret_cast<std::byte*>(out.data()));
  return out;
}

std::size_t Connection::recv_bytes_into(std::span<std::byte> buffer) {
  static constexpr const char* op = "Connection::recv_bytes_into";
  Impl& c = receiver(impl_, op);
  const Head h = c.next_head(op);
  c.refuse_non_data(op, h);
  if (h.length > buffer.size())
    throw Error(errc::message_too_large,
                str(op, "the next message has " + std::to_string(h.length) + " bytes, the buffer " +
                            std::to_string(buffer.size()) + "; the message is still there to receive"));
  c.take_payload(op, h, buffer.data());
  return h.length;
}

void Connection::recv_exact(std::span<std::byte> out, std::size_t expected) {
  static constexpr const char* op = "Connection::recv";
  Impl& c = receiver(impl_, op);
  const Head h = c.next_head(op);
  c.refuse_non_data(op, h);
  if (h.length != expected)
    throw Error(errc::bad_message,
                str(op, "the next message has " + std::to_string(h.length) + " bytes, not sizeof(T) = " +
                            std::to_string(expected) + "; the message is still there to receive"));
  c.take_payload(op, h, out.data());
}

int Connection::recv_fd() {
  static constexpr const char* op = "Connection::recv_fd";
  Impl& c = receiver(impl_, op);
  const Head h = c.next_head(op);
  if (h.kind == FrameKind::reject) c.fail_refused(op, h);
  if (h.kind != FrameKind::fd)
    throw Error(errc::bad_message, str(op, "the next message carries no fd (it is " + std::to_string(h.length) +
                                               " bytes of data, still there to receive)"));
  const int fd = c.fds.front().fd;
  c.fds.pop_front();
  c.in.consume(kHeaderSize);
  return fd;
}

bool Connection::poll() { return poll_until(Deadline::after(std::chrono::seconds(0))); }

bool Connection::poll_until(const Deadline& deadline) {
  static constexpr const char* op = "Connection::poll";
  Impl& c = receiver(impl_, op);
  for (;;) {
    if (c.ready_without_io()) return true;
    const Head h = c.in.head();
    const std::size_t have = c.in.buffered().size();
    // Whole message or nothing: a large message is gathered in the buffer (at most
    // kHeaderSize + max_message_size() bytes) so that the recv after a true poll never waits.
    const std::size_t want = h.status == Head::ready ? kHeaderSize + h.length - have : kHeaderSize - have;
    if (!c.read_more(op, deadline, want)) return false;
  }
}

void Connection::set_coalescing(bool on) {
  static constexpr const char* op = "Connection::set_coalescing";
  Impl& c = live(impl_, op);
  if (on == c.coalescing) return;
  if (on) {
    if (!c.out) c.out = std::make_unique_for_overwrite<std::byte[]>(kCoalesceBytes);
    coalescing_set(&c, true);
    c.coalescing = true;
    return;
  }
  c.flush(op);
  c.coalescing = false;
  coalescing_set(&c, false);
  c.out.reset();
}

bool Connection::coalescing() const noexcept { return impl_ && impl_->coalescing; }

void Connection::flush() {
  static constexpr const char* op = "Connection::flush";
  live(impl_, op).flush(op);
}

void Connection::close() noexcept {
  if (impl_) impl_->close();
}

bool Connection::closed() const noexcept { return !impl_ || impl_->fd < 0; }

int Connection::fileno() const noexcept { return impl_ ? impl_->fd : -1; }

std::string_view Connection::backend() const noexcept { return impl_ ? impl_->io->name() : "none"; }

std::size_t Connection::max_message_size() const noexcept {
  return impl_ ? impl_->max_message : default_max_message_size;
}

void Connection::max_message_size(std::size_t bytes) {
  static constexpr const char* op = "Connection::max_message_size";
  Impl& c = live(impl_, op);
  if (bytes == 0 || bytes > max_max_message_size)
    throw Error(errc::message_too_large, str(op, std::to_string(bytes) + " is not in 1.." +
                                                     std::to_string(max_max_message_size) +
                                                     " (the frame header holds a 32-bit length)"));
  c.max_message = bytes;
  c.in.set_max_message(bytes);
}

// ---- Pipe, and the socket adoption listener.cpp uses ------------------------------------------

Connection detail::adopt_socket(int fd, Backend backend, bool can_recv, bool can_send, const char* op) {
  try {
    const detail::PipeIo* io = select_io(backend, op);
    return Connection(std::make_unique<Connection::Impl>(fd, io, can_recv, can_send));
  } catch (...) {
    close_fd(fd);
    throw;
  }
}

std::pair<Connection, Connection> Pipe(bool duplex, Backend backend) {
  static constexpr const char* op = "Pipe";
  select_io(backend, op);  // fail before making sockets
  // Python's Pipe(duplex=False): (receive end, send end).
  UniqueFd a, b;
  if (const int e = duplex ? unix_socketpair(a, b) : unix_socketpair_oneway(a, b); e != 0)
    detail::throw_errno(-e, str(op, "socketpair failed"));
  Connection first = detail::adopt_socket(a.release(), backend, true, duplex, op);  // b closes if it throws
  return {std::move(first), detail::adopt_socket(b.release(), backend, duplex, true, op)};
}

// ---- wait ---------------------------------------------------------------------------------------

std::vector<int> wait(std::span<const int> fds) { return wait_until(fds, Deadline::never()); }

std::vector<int> wait_until(std::span<const int> fds, const Deadline& deadline) {
  static constexpr const char* op = "wait";
  if (fds.empty()) {
    if (deadline.infinite())
      detail::throw_errno(EINVAL, str(op, "no fds and no timeout: it would wait forever"));
    while (!deadline.expired()) (void)detail::wait_fd(-1, 0, deadline);  // ppoll on nothing: a sleep
    return {};
  }
  std::vector<bool> ready(fds.size(), false);
  std::vector<std::pair<std::size_t, Connection::Impl*>> unflushed;
  bool any = false;
  {
    // Messages a Connection already read ahead do not make its fd readable: ask it.
    std::lock_guard<std::mutex> lock(g_registry_mutex);
    if (g_registry != nullptr) {
      for (std::size_t i = 0; i < fds.size(); ++i) {
        const auto it = g_registry->find(fds[i]);
        if (it == g_registry->end()) continue;
        if (it->second->out_bytes != 0) unflushed.emplace_back(i, it->second);
        if (it->second->can_recv && it->second->ready_without_io()) {
          ready[i] = true;
          any = true;
        }
      }
    }
  }
  // A flush point (pipe.hpp): the caller waits for replies to what its connections buffered.
  // Those connections are the caller's (it passed their fds). One that cannot flush (its peer is
  // gone) is ready: the recv that follows reports it.
  for (const auto& [i, c] : unflushed) {
    if (c->try_flush() != 0) {
      ready[i] = true;
      any = true;
    }
  }
  std::vector<pollfd> pfds(fds.size());
  for (std::size_t i = 0; i < fds.size(); ++i) pfds[i] = {fds[i], POLLIN, 0};
  // Just a look when something is ready already; poll_until retries EINTR and early wake-ups.
  if (poll_until(pfds, any ? Deadline::after(std::chrono::seconds(0)) : deadline) < 0)
    detail::throw_errno(errno, str(op, "ppoll failed"));
  std::vector<int> out;
  for (std::size_t i = 0; i < fds.size(); ++i) {
    if ((pfds[i].revents & POLLNVAL) != 0)
      detail::throw_errno(EBADF, str(op, "fd " + std::to_string(fds[i]) + " is not open"));
    if (ready[i] || (pfds[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) out.push_back(fds[i]);
  }
  return out;
}

}  // namespace multiproc
