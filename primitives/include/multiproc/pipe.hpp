// multiproc/pipe.hpp — message-framed connections between processes: Pipe, Listener, Client.
//
// What a Connection guarantees
//   * Messages, not bytes: each send_bytes / send<T> / send_fd is one message, and each recv
//     returns exactly one whole message, in order. A 0-byte message is a message. Boundaries
//     survive any split of the byte stream by the kernel.
//   * A send returns once the whole message is in the kernel's socket buffer — the guarantee
//     of write(2): the sender may exit right after and the peer still receives it. Nothing is
//     left in flight between calls (an io_uring request still in flight when a process exits is
//     cancelled, so leaving one would lose data). That is the default; coalescing (below) is the
//     opt-in that trades it for throughput.
//   * Bounded memory: every message's size is checked against max_message_size() (64 MiB by
//     default, per connection) before anything is allocated. A header announcing more, a header
//     that fails its check, or a stream that ends mid-message is Error(bad_message) and the
//     connection is closed; no giant allocation, no crash, no hang.
//   * Peer gone: recv on a connection whose peer closed and which has nothing left throws Eof;
//     send to a closed peer throws Closed (an Error with errc::closed) — never SIGPIPE.
//   * File descriptors: send_fd / recv_fd pass one fd per message (SCM_RIGHTS, received
//     O_CLOEXEC). An fd where none is expected, or none where one is, is Error(bad_message);
//     stray fds are closed, never leaked.
//
// Wire format (both ends run on one host, so host byte order): an 8-byte header
//   {u32 length, u16 kind, u16 check} then `length` payload bytes. kind: data, fd, reject.
//   `check` xor-folds length and kind with a constant: any single flipped header bit is caught,
//   and random bytes pass as a header with probability 3 * 2^-32.
//
// Waiting and I/O
//   Receiving reads ahead: one large read (64 KiB) is parsed into as many frames as it holds;
//   the payload of a large message is read straight into the caller's buffer (no extra copy).
//   Sending gathers header and payload into one send; send_bytes_many / send_many gather many
//   messages into one system call.
//   Backends: io_uring (one ring per thread, created on first use in each thread and again in a
//   fork()ed child; IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN where the kernel has
//   them; never SQPOLL), or plain system calls where io_uring is unavailable (setup fails,
//   seccomp, the io_uring_disabled sysctl) or MULTIPROC_NO_IO_URING=1 is set. Both speak the
//   same wire format; backend() says which one a connection uses. A synchronous call is one
//   io_uring_enter or one system call either way, so the two cost about the same per call
//   (bench/pipe.cpp measures both); io_uring saves the extra ppoll of a timed receive.
//   Blocking calls sleep in the kernel; timed calls wait against one absolute CLOCK_MONOTONIC
//   Deadline (a linked IORING_OP_LINK_TIMEOUT on io_uring, ppoll on system calls) and never
//   return before it.
//
// Coalescing (opt-in per connection, as std::ofstream's buffer or TCP_CORK)
//   Off by default: a send_bytes / send<T> is then one system call (or one io_uring_enter) and
//   keeps the write(2) guarantee above. set_coalescing(true) makes send_bytes / send<T> append
//   the framed message to this end's send buffer (64 KiB, allocated once) and return; the buffer
//   goes out as ONE gathered send when it holds 32 messages or its next message would not fit,
//   and at every flush point:
//     flush(); set_coalescing(false); every recv* / recv<T> / recv_fd / poll / poll(timeout) /
//     poll_until on this connection (so request/response never deadlocks on a held request);
//     send_fd, send_bytes_many, send_many (buffered messages go first: order is kept);
//     multiproc::wait() / wait_until() given this connection's fileno(); close(); the
//     destructor (also a move-assignment over it); normal process exit — std::exit, returning
//     from main (an atexit handler flushes every coalescing connection) and the end of a
//     multiproc::Process child's target.
//   A message too large to copy (frame over 16 KiB) is not copied: it goes out at once, in one
//   gathered send behind what is buffered. Boundaries, order and fd messages are exactly as
//   without coalescing; only the time a message reaches the kernel changes. A flush is a
//   synchronous send on either backend (nothing is left in flight, io_uring included): once a
//   flush point returns, what it sent is in the kernel's socket buffer.
//   What is lost: messages still buffered when the process dies without a normal exit — SIGKILL,
//   a crash, abort, _exit() or quick_exit() (mptest::spawn's children, a fork()ed child that
//   never calls exit) — and, after a fork(), the child's copy of the parent's buffer (dropped at
//   the child's first send or flush point: the parent still sends those bytes itself, so they
//   may reach the peer after what the child sends). Flush before any of these if it matters.
//   Errors: a flush point that may throw reports a gone peer as Closed (Error(errc::closed));
//   the buffered messages are then dropped (the count is in the message) and the connection
//   stays open for receiving what the peer sent before it left. A send_bytes that fills the
//   buffer is such a flush point: it may throw Closed for messages buffered by earlier calls.
//   close(), the destructor and the exit handler cannot throw: they send what they can and drop
//   the rest silently — call flush() first to learn whether it arrived. wait() cannot throw it
//   either: it reports such a connection ready, and the recv that follows throws. Every flush
//   blocks while the peer's socket buffer is full, as a blocking send does (close() and the
//   destructor too).
//   Threads: the exit handler flushes connections other threads may be using; do not exit()
//   while other threads still send on coalescing connections.
//
// Threads: a Connection is used by one thread at a time (as a std::fstream); distinct
// connections may be used from distinct threads at once.
//
// Read-ahead has two consequences. (1) Messages a Connection has already buffered do not make
// fileno() readable: poll() (no system call when a message is buffered) and multiproc::wait()
// know about them; a hand-written poll loop on fileno() should call poll() first. (2) What one
// process has buffered is in that process only — and a fork() copies it: receive on an end in
// one process (close the ends you do not use, as Python advises), or fork before receiving.
#pragma once

#include <multiproc/deadline.hpp>
#include <multiproc/error.hpp>

#include <array>
#include <bit>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace multiproc {

/// Which I/O path a connection uses. `automatic`: io_uring unless it is unavailable in this
/// process or MULTIPROC_NO_IO_URING=1 is set.
enum class Backend { automatic, io_uring, syscalls };

class Connection;
namespace detail {
/// Wraps a connected AF_UNIX stream socket (taking ownership; closed if this throws).
Connection adopt_socket(int fd, Backend backend, bool can_recv, bool can_send, const char* op);
/// Flushes every coalescing connection of this process, dropping errors (see "Coalescing").
/// Registered with atexit by the first set_coalescing(true); a multiproc::Process child calls it
/// before it _exit()s.
void flush_connections() noexcept;
}  // namespace detail

class Connection {
 public:
  /// Default largest message a connection sends or accepts (per connection; see max_message_size).
  static constexpr std::size_t default_max_message_size = std::size_t{64} << 20;
  /// The wire format's limit: a u32 length.
  static constexpr std::size_t max_max_message_size = 0xFFFF'FFFFu;

  /// A closed connection (every operation but close/closed/fileno throws Error(closed)).
  Connection() noexcept;
  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  /// Flushes what coalescing buffered and closes the connection (and any received fd not yet
  /// taken by recv_fd), as close().
  ~Connection();

  // --- sending -------------------------------------------------------------------------------
  /// Sends one message (with coalescing on: buffers it, sending the buffer when full; see
  /// "Coalescing"). Blocks while the socket buffer is full. Throws Error(message_too_large)
  /// if it exceeds max_message_size() (nothing is sent), Closed if the peer is gone,
  /// Error(not_supported) on the receive end of a one-way Pipe, Error(closed) once close()d.
  void send_bytes(std::span<const std::byte> message);
  /// The bytes of `text`, as send_bytes.
  void send_bytes(std::string_view text);
  /// Sends each of `messages` as its own message, in order, gathered into as few sendmsg calls
  /// as possible (one per up to 256 KiB of small messages). Every size is checked first: one
  /// too large throws Error(message_too_large) and nothing is sent.
  void send_bytes_many(std::span<const std::span<const std::byte>> messages);

  /// One message holding the bytes of `value`.
  template <class T>
    requires std::is_trivially_copyable_v<T>
  void send(const T& value) {
    send_bytes(std::as_bytes(std::span<const T, 1>(&value, 1)));
  }
  /// Each element as its own message, gathered as send_bytes_many.
  template <class T>
    requires std::is_trivially_copyable_v<T>
  void send_many(std::span<const T> values) {
    send_fixed_many(std::as_bytes(values), sizeof(T));
  }

  // --- coalescing (see "Coalescing" above) ----------------------------------------------------
  /// Turns send coalescing on or off for this end (off by default). Turning it off flushes what
  /// is buffered (and throws as flush()). Throws Error(closed) once close()d.
  void set_coalescing(bool on);
  /// Whether sends on this end are coalesced.
  bool coalescing() const noexcept;
  /// Sends every buffered message now as one gathered send and returns once all are in the
  /// kernel's socket buffer (the write(2) guarantee). Blocks while the socket buffer is full; no
  /// system call when nothing is buffered. Throws Closed if the peer is gone (the buffered
  /// messages are dropped), Error(closed) once close()d.
  void flush();

  /// Passes `fd` (duplicated into the receiver by the kernel, SCM_RIGHTS) as one message. The
  /// caller keeps its own `fd`. Throws Error(EBADF) for a bad fd, and as send_bytes.
  void send_fd(int fd);

  // --- receiving -----------------------------------------------------------------------------
  /// The next message. Blocks until one has arrived whole. Throws Eof when the peer closed and
  /// nothing is left; Error(bad_message) (and closes) on a malformed stream or when the next
  /// message carries an fd (the fd is closed and the message consumed);
  /// Error(permission_denied) (and closes) when a Listener refused this client.
  std::vector<std::byte> recv_bytes();
  /// The next message as text (its bytes, unchanged).
  std::string recv_string();
  /// The next message copied into `buffer`; returns its size. If it does not fit, throws
  /// Error(message_too_large) and the message stays readable. Otherwise as recv_bytes.
  std::size_t recv_bytes_into(std::span<std::byte> buffer);

  /// The next message as a T. A message whose size is not sizeof(T) throws Error(bad_message)
  /// and stays readable. Otherwise as recv_bytes.
  template <class T>
    requires std::is_trivially_copyable_v<T>
  T recv() {
    std::array<std::byte, sizeof(T)> raw;
    recv_exact(raw, sizeof(T));
    return std::bit_cast<T>(raw);
  }

  /// The fd carried by the next message, owned by the caller (O_CLOEXEC). If the next message
  /// carries no fd, throws Error(bad_message) and that message stays readable.
  int recv_fd();

  /// Is a whole message (or the end of the stream, or a malformed frame that recv would report)
  /// ready, so that the next recv does not block? Never blocks; no system call when a message
  /// is already buffered.
  bool poll();
  /// As poll(), waiting up to `timeout` (steady clock; never returns false before it passed).
  template <class Rep, class Period>
  bool poll(const std::chrono::duration<Rep, Period>& timeout) {
    return poll_until(Deadline::after(timeout));
  }
  /// As poll(), waiting until `deadline`.
  bool poll_until(const Deadline& deadline);

  // --- state ---------------------------------------------------------------------------------
  /// Flushes what coalescing buffered (errors dropped: see "Coalescing"), then closes the socket
  /// and any received fd not yet taken. Idempotent.
  void close() noexcept;
  bool closed() const noexcept;
  /// The socket, for users' own poll loops (see the note on read-ahead above); -1 once closed.
  int fileno() const noexcept;
  /// "io_uring" or "syscalls" (also for a closed connection: the one it used).
  std::string_view backend() const noexcept;

  std::size_t max_message_size() const noexcept;
  /// Sets the largest message this end sends or accepts, 0 < bytes <= max_max_message_size;
  /// otherwise throws Error(message_too_large).
  void max_message_size(std::size_t bytes);

  struct Impl;  // pipe.cpp

 private:
  friend Connection detail::adopt_socket(int, Backend, bool, bool, const char*);
  explicit Connection(std::unique_ptr<Impl> impl) noexcept;

  void recv_exact(std::span<std::byte> out, std::size_t expected);
  void send_fixed_many(std::span<const std::byte> values, std::size_t size);

  std::unique_ptr<Impl> impl_;
};

/// A connected pair. duplex=true: both ends send and receive. duplex=false: (receive end,
/// send end) of a one-way pair, as Python's Pipe(duplex=False). Both are socketpair(AF_UNIX,
/// SOCK_STREAM | SOCK_CLOEXEC); a fork()ed child inherits them (close the end you do not use).
std::pair<Connection, Connection> Pipe(bool duplex = true, Backend backend = Backend::automatic);

/// A listening AF_UNIX stream socket. `address` is a filesystem path (a stale socket file
/// nobody listens on is replaced; the file is removed by close() in the process that created
/// it) or "@name" for the abstract namespace. Only peers of this process's effective uid are
/// accepted: accept() checks SO_PEERCRED and drops the others — each refused client reads
/// Error(permission_denied) with the reason.
class Listener {
 public:
  /// Throws the system error if it cannot bind there (EADDRINUSE: a live listener is there).
  /// Accepted connections use `backend`.
  explicit Listener(std::string_view address, int backlog = 128, Backend backend = Backend::automatic);
  Listener(Listener&&) noexcept;
  Listener& operator=(Listener&&) noexcept;
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  ~Listener();

  /// The next connection from a process of the same uid. Blocks.
  Connection accept();
  /// As accept(), giving up (empty) at the deadline; try_accept() never blocks.
  std::optional<Connection> try_accept();
  template <class Rep, class Period>
  std::optional<Connection> try_accept_for(const std::chrono::duration<Rep, Period>& timeout) {
    return try_accept_until(Deadline::after(timeout));
  }
  std::optional<Connection> try_accept_until(const Deadline& deadline);

  std::string_view address() const noexcept { return address_; }
  int fileno() const noexcept { return fd_; }
  /// How many peers accept() dropped because they ran as another user.
  std::size_t refused() const noexcept { return refused_; }
  /// Stops listening (removes a filesystem socket this process created). Idempotent.
  void close() noexcept;

 private:
  int fd_ = -1;
  std::string address_;
  std::string unlink_path_;  // non-empty: a filesystem socket to remove at close()
  int owner_pid_ = 0;        // the process that bound it (a fork()ed child never unlinks)
  Backend backend_ = Backend::automatic;
  std::size_t refused_ = 0;
};

/// Connects to a Listener at `address` (path or "@name"). Does not wait for accept(). Throws
/// Error(permission_denied) if the listening socket belongs to another user, and the system
/// error (ENOENT, ECONNREFUSED, ...) if nobody listens there. A client the listener refuses
/// learns it from its first recv (Error(permission_denied)) — or its first send, once the
/// refusal has arrived.
Connection Client(std::string_view address, Backend backend = Backend::automatic);

/// Python's multiprocessing.connection.wait: the fds in `fds` that are ready — a Connection
/// with a buffered message, or any fd that is readable or hung up (sockets, Listener fds,
/// pidfds such as Process::sentinel() once the process ended) — waiting until at least one is.
/// Returns them in the order given. An empty `fds` without a timeout throws (std::errc::
/// invalid_argument: it could only wait forever); with one, it sleeps until the timeout.
std::vector<int> wait(std::span<const int> fds);
/// As wait(fds), returning an empty vector once `timeout` passed with none ready.
std::vector<int> wait_until(std::span<const int> fds, const Deadline& deadline);
template <class Rep, class Period>
std::vector<int> wait(std::span<const int> fds, const std::chrono::duration<Rep, Period>& timeout) {
  return wait_until(fds, Deadline::after(timeout));
}

}  // namespace multiproc
