// Connection, Pipe, Listener/Client and wait() within one process (both ends here). The suite
// runs once per backend (tests/pipe/meson.build sets MULTIPROC_NO_IO_URING=1 for the second).
#include <multiproc/pipe.hpp>

#include "frame.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <string>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

namespace mp = multiproc;
using namespace std::chrono_literals;

namespace {

std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
  std::vector<std::byte> v(n);
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x = x * 1664525u + 1013904223u;
    b = std::byte(x >> 24);
  }
  return v;
}

int open_fd_count() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
  ::closedir(d);
  return n - 1;  // the DIR's own fd
}

bool uring_expected() {
  const char* off = std::getenv("MULTIPROC_NO_IO_URING");
  return !(off != nullptr && std::strcmp(off, "1") == 0);
}

void write_raw(int fd, const void* p, std::size_t n) {
  ASSERT_EQ(::send(fd, p, n, MSG_NOSIGNAL), static_cast<ssize_t>(n));
}

template <class F>
mp::errc code_of(F&& f) {
  try {
    f();
  } catch (const mp::Error& e) {
    if (e.code().category() == mp::error_category()) return static_cast<mp::errc>(e.code().value());
    ADD_FAILURE() << "system error: " << e.what();
    return mp::errc{};
  }
  ADD_FAILURE() << "no exception";
  return mp::errc{};
}

}  // namespace

TEST(Connection, ReportsItsBackend) {
  auto [a, b] = mp::Pipe();
  if (uring_expected()) {
    // io_uring unless the kernel refuses it here (then everything says "syscalls").
    bool have_uring = true;
    try {
      (void)mp::Pipe(true, mp::Backend::io_uring);
    } catch (const mp::Error& e) {
      EXPECT_EQ(e.code(), mp::errc::not_supported);
      have_uring = false;
    }
    EXPECT_EQ(a.backend(), have_uring ? "io_uring" : "syscalls");
  } else {
    EXPECT_EQ(a.backend(), "syscalls");
  }
  EXPECT_EQ(a.backend(), b.backend());
  auto [c, d] = mp::Pipe(true, mp::Backend::syscalls);
  EXPECT_EQ(c.backend(), "syscalls");
  EXPECT_EQ(mp::Connection().backend(), "none");
}

TEST(Connection, SmallMessagesRoundTripBothWays) {
  auto [a, b] = mp::Pipe();
  for (std::size_t n : {0u, 1u, 7u, 4096u, 60000u}) {
    const auto m = pattern(n, static_cast<unsigned>(n));
    a.send_bytes(m);
    EXPECT_EQ(b.recv_bytes(), m) << n;
    b.send_bytes(m);
    EXPECT_EQ(a.recv_bytes(), m) << n;
  }
}

TEST(Connection, ZeroByteMessagesAreMessages) {
  auto [a, b] = mp::Pipe();
  a.send_bytes(std::span<const std::byte>());
  a.send_bytes("abc");
  a.send_bytes(std::span<const std::byte>());
  EXPECT_TRUE(b.poll());
  EXPECT_TRUE(b.recv_bytes().empty());
  EXPECT_EQ(b.recv_string(), "abc");
  std::byte buf[4];
  EXPECT_EQ(b.recv_bytes_into(buf), 0u);
  EXPECT_FALSE(b.poll());
}

TEST(Connection, TypedValues) {
  struct Point {
    int x;
    double y;
  };
  auto [a, b] = mp::Pipe();
  a.send(42);
  a.send(Point{3, 2.5});
  EXPECT_EQ(b.recv<int>(), 42);
  const Point p = b.recv<Point>();
  EXPECT_EQ(p.x, 3);
  EXPECT_EQ(p.y, 2.5);
}

TEST(Connection, RecvOfTheWrongSizeLeavesTheMessage) {
  auto [a, b] = mp::Pipe();
  a.send(std::int64_t{7});
  EXPECT_EQ(code_of([&] { (void)b.recv<int>(); }), mp::errc::bad_message);
  EXPECT_EQ(b.recv<std::int64_t>(), 7);
}

TEST(Connection, RecvIntoATooSmallBufferLeavesTheMessage) {
  auto [a, b] = mp::Pipe();
  const auto big = pattern(100'000, 1);  // larger than the read-ahead chunk: its payload is not buffered yet
  const auto small = pattern(10, 2);
  a.send_bytes(small);
  a.send_bytes(big);
  std::vector<std::byte> buf(9);
  EXPECT_EQ(code_of([&] { (void)b.recv_bytes_into(buf); }), mp::errc::message_too_large);
  buf.resize(10);
  EXPECT_EQ(b.recv_bytes_into(buf), 10u);
  EXPECT_EQ(buf, small);
  buf.resize(99'999);
  EXPECT_EQ(code_of([&] { (void)b.recv_bytes_into(buf); }), mp::errc::message_too_large);
  buf.resize(200'000);
  EXPECT_EQ(b.recv_bytes_into(buf), big.size());
  buf.resize(big.size());
  EXPECT_EQ(buf, big);
}

TEST(Connection, SendAboveTheMaximumThrowsAndSendsNothing) {
  auto [a, b] = mp::Pipe();
  a.max_message_size(100);
  EXPECT_EQ(a.max_message_size(), 100u);
  EXPECT_EQ(code_of([&] { a.send_bytes(pattern(101, 0)); }), mp::errc::message_too_large);
  std::vector<std::byte> ok(5), too_big(101);
  const std::span<const std::byte> many[] = {ok, too_big};
  EXPECT_EQ(code_of([&] { a.send_bytes_many(many); }), mp::errc::message_too_large);
  EXPECT_FALSE(b.poll());
  a.send_bytes(pattern(100, 0));
  EXPECT_EQ(b.recv_bytes().size(), 100u);
  EXPECT_EQ(code_of([&] { a.max_message_size(0); }), mp::errc::message_too_large);
}

TEST(Connection, AHeaderAboveTheReceiversMaximumIsBadAndCloses) {
  auto [a, b] = mp::Pipe();
  b.max_message_size(1000);
  a.send_bytes(pattern(1001, 0));
  EXPECT_EQ(code_of([&] { (void)b.recv_bytes(); }), mp::errc::bad_message);
  EXPECT_TRUE(b.closed());
  EXPECT_EQ(code_of([&] { (void)b.recv_bytes(); }), mp::errc::closed);
}

TEST(Connection, AGarbledHeaderIsBadMessage) {
  auto [a, b] = mp::Pipe();
  const char junk[] = "this is not a frame header at all";
  write_raw(a.fileno(), junk, sizeof junk);
  EXPECT_EQ(code_of([&] { (void)b.recv_bytes(); }), mp::errc::bad_message);
  EXPECT_TRUE(b.closed());
}

TEST(Connection, AFrameCutShortByCloseIsBadMessage) {
  auto [a, b] = mp::Pipe();
  const auto h = mp::detail::encode_header(10, mp::detail::FrameKind::data);
  write_raw(a.fileno(), h.data(), h.size());
  write_raw(a.fileno(), "abc", 3);
  a.close();
  EXPECT_TRUE(b.poll());  // the end of the stream is ready
  EXPECT_EQ(code_of([&] { (void)b.recv_bytes(); }), mp::errc::bad_message);
}

TEST(Connection, AHeaderCutShortByCloseIsBadMessage) {
  auto [a, b] = mp::Pipe();
  const auto h = mp::detail::encode_header(10, mp::detail::FrameKind::data);
  write_raw(a.fileno(), h.data(), 5);
  a.close();
  EXPECT_EQ(code_of([&] { (void)b.recv_bytes(); }), mp::errc::bad_message);
}

TEST(Connection, EofAfterTheLastMessage) {
  auto [a, b] = mp::Pipe();
  a.send_bytes("one");
  a.send_bytes("two");
  a.close();
  EXPECT_EQ(b.recv_string(), "one");
  EXPECT_EQ(b.recv_string(), "two");
  EXPECT_THROW((void)b.recv_bytes(), mp::Eof);
  EXPECT_THROW((void)b.recv_bytes(), mp::Eof);  // and again: not closed by it
  EXPECT_FALSE(b.closed());
  EXPECT_TRUE(b.poll());
}

TEST(Connection, SendToAClosedPeerThrowsClosed) {
  auto [a, b] = mp::Pipe();
  b.close();
  // SIGPIPE would kill this test process: MSG_NOSIGNAL must prevent it.
  try {
    a.send_bytes("hello");
    FAIL() << "no exception";
  } catch (const mp::Closed& e) {
    EXPECT_EQ(e.code(), mp::errc::closed);
  }
  EXPECT_FALSE(a.closed());
}

TEST(Connection, CloseIsIdempotent) {
  auto [a, b] = mp::Pipe();
  EXPECT_GE(a.fileno(), 0);
  a.close();
  a.close();
  EXPECT_TRUE(a.closed());
  EXPECT_EQ(a.fileno(), -1);
  EXPECT_EQ(code_of([&] { a.send_bytes("x"); }), mp::errc::closed);
  EXPECT_EQ(code_of([&] { (void)a.recv_bytes(); }), mp::errc::closed);
  EXPECT_EQ(code_of([&] { (void)a.poll(); }), mp::errc::closed);
  mp::Connection c = std::move(b);
  EXPECT_TRUE(b.closed());  // NOLINT(bugprone-use-after-move): moved-from is closed
  EXPECT_FALSE(c.closed());
}

TEST(Connection, OneWayPipe) {
  auto [rx, tx] = mp::Pipe(false);
  tx.send_bytes("down");
  EXPECT_EQ(rx.recv_string(), "down");
  EXPECT_EQ(code_of([&] { rx.send_bytes("up"); }), mp::errc::not_supported);
  EXPECT_EQ(code_of([&] { (void)tx.recv_bytes(); }), mp::errc::not_supported);
  EXPECT_EQ(code_of([&] { (void)tx.poll(); }), mp::errc::not_supported);
}

TEST(Connection, PollTimesOutNoEarlierThanTheDeadline) {
  auto [a, b] = mp::Pipe();
  EXPECT_FALSE(b.poll());
  for (auto d : {1ms, 20ms, 60ms}) {
    const auto start = std::chrono::steady_clock::now();
    EXPECT_FALSE(b.poll(d));
    EXPECT_GE(std::chrono::steady_clock::now() - start, d);
  }
}

TEST(Connection, PollWantsAWholeMessage) {
  auto [a, b] = mp::Pipe();
  const auto h = mp::detail::encode_header(6, mp::detail::FrameKind::data);
  write_raw(a.fileno(), h.data(), 3);
  EXPECT_FALSE(b.poll(5ms));  // a partial header
  write_raw(a.fileno(), h.data() + 3, h.size() - 3);
  write_raw(a.fileno(), "abc", 3);
  EXPECT_FALSE(b.poll(5ms));  // a partial payload
  write_raw(a.fileno(), "def", 3);
  EXPECT_TRUE(b.poll());
  EXPECT_TRUE(b.poll());  // poll does not consume
  EXPECT_EQ(b.recv_string(), "abcdef");
}

TEST(Connection, PollGathersAMessageLargerThanTheSocketBuffer) {
  auto [a, b] = mp::Pipe();
  const auto big = pattern(3 << 20, 9);
  std::thread sender([&] { a.send_bytes(big); });
  EXPECT_TRUE(b.poll(30s));
  sender.join();
  EXPECT_EQ(b.recv_bytes(), big);
}

TEST(Connection, PassesAnFd) {
  auto [a, b] = mp::Pipe();
  const int memfd = ::memfd_create("pipe-test", MFD_CLOEXEC);
  ASSERT_GE(memfd, 0);
  ASSERT_EQ(::pwrite(memfd, "shared", 6, 0), 6);
  a.send_bytes("before");
  a.send_fd(memfd);
  a.send_bytes("after");
  EXPECT_EQ(b.recv_string(), "before");
  const int got = b.recv_fd();
  ASSERT_GE(got, 0);
  EXPECT_NE(got, memfd);
  EXPECT_TRUE(::fcntl(got, F_GETFD) & FD_CLOEXEC);
  char buf[6];
  EXPECT_EQ(::pread(got, buf, 6, 0), 6);
  EXPECT_EQ(std::string(buf, 6), "shared");
  EXPECT_EQ(b.recv_string(), "after");
  ::close(got);
  ::close(memfd);
}

TEST(Connection, ManyFdsInARow) {
  auto [a, b] = mp::Pipe();
  const int before = open_fd_count();
  for (int i = 0; i < 50; ++i) a.send_fd(0);
  for (int i = 0; i < 50; ++i) {
    const int fd = b.recv_fd();
    EXPECT_GE(fd, 0);
    ::close(fd);
  }
  EXPECT_EQ(open_fd_count(), before);
}

TEST(Connection, SendFdOfABadFdThrows) {
  auto [a, b] = mp::Pipe();
  EXPECT_THROW(a.send_fd(-1), mp::Error);
  EXPECT_THROW(a.send_fd(100000), mp::Error);
  EXPECT_FALSE(b.poll());
}

TEST(Connection, RecvBytesOfAnFdMessageClosesTheFdAndReportsIt) {
  const int before = open_fd_count();
  {
    auto [a, b] = mp::Pipe();
    a.send_fd(0);
    a.send_bytes("next");
    EXPECT_EQ(code_of([&] { (void)b.recv_bytes(); }), mp::errc::bad_message);
    EXPECT_FALSE(b.closed());
    EXPECT_EQ(b.recv_string(), "next");
  }
  EXPECT_EQ(open_fd_count(), before);
}

TEST(Connection, RecvFdOfADataMessageLeavesIt) {
  auto [a, b] = mp::Pipe();
  a.send_bytes("data");
  EXPECT_EQ(code_of([&] { (void)b.recv_fd(); }), mp::errc::bad_message);
  EXPECT_EQ(b.recv_string(), "data");
}

TEST(Connection, AStrayFdIsClosedNotLeaked) {
  const int before = open_fd_count();
  {
    auto [a, b] = mp::Pipe();
    // A peer that attaches an fd to a data message (not our sender's doing).
    const auto h = mp::detail::encode_header(2, mp::detail::FrameKind::data);
    char payload[10];
    std::memcpy(payload, h.data(), 8);
    std::memcpy(payload + 8, "hi", 2);
    iovec iov{payload, sizeof payload};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    const int zero = 0;
    std::memcpy(CMSG_DATA(c), &zero, sizeof zero);
    ASSERT_EQ(::sendmsg(a.fileno(), &msg, MSG_NOSIGNAL), 10);
    a.send_bytes("more");
    // The data message itself is fine; the fd that rode on it is stray once the stream passes it.
    EXPECT_EQ(b.recv_string(), "hi");
    EXPECT_EQ(code_of([&] { (void)b.recv_bytes(); }), mp::errc::bad_message);
    EXPECT_TRUE(b.closed());
  }
  EXPECT_EQ(open_fd_count(), before);
}

TEST(Connection, AnFdMessageWithoutItsFdIsBad) {
  auto [a, b] = mp::Pipe();
  const auto h = mp::detail::encode_header(0, mp::detail::FrameKind::fd);
  write_raw(a.fileno(), h.data(), h.size());
  EXPECT_EQ(code_of([&] { (void)b.recv_fd(); }), mp::errc::bad_message);
}

TEST(Connection, SendManyKeepsBoundaries) {
  auto [a, b] = mp::Pipe();
  std::vector<std::vector<std::byte>> msgs;
  for (unsigned i = 0; i < 300; ++i) msgs.push_back(pattern(i % 7 == 0 ? 2000 + i : i % 50, i));
  std::vector<std::span<const std::byte>> spans(msgs.begin(), msgs.end());
  std::thread sender([&] { a.send_bytes_many(spans); });
  for (const auto& m : msgs) ASSERT_EQ(b.recv_bytes(), m);
  sender.join();
  const std::uint64_t values[] = {1, 2, 3, 5, 8};
  a.send_many(std::span<const std::uint64_t>(values));
  for (std::uint64_t v : values) EXPECT_EQ(b.recv<std::uint64_t>(), v);
  EXPECT_FALSE(b.poll());
}

TEST(Connection, WorksFromAnotherThread) {
  auto [a, b] = mp::Pipe();
  a.send_bytes("from main");
  std::thread t([&] {
    EXPECT_EQ(b.recv_string(), "from main");
    b.send_bytes("from thread");
  });
  t.join();
  EXPECT_EQ(a.recv_string(), "from thread");
  std::thread t2([a = std::move(a)]() mutable { a.send_bytes("moved"); });
  t2.join();
  EXPECT_EQ(b.recv_string(), "moved");
}

TEST(Wait, ReportsReadyConnections) {
  auto [a, b] = mp::Pipe();
  auto [c, d] = mp::Pipe();
  const int fds[] = {b.fileno(), d.fileno()};
  EXPECT_TRUE(mp::wait(fds, 0ms).empty());
  c.send_bytes("x");
  EXPECT_EQ(mp::wait(fds), std::vector<int>{d.fileno()});
  a.send_bytes("y");
  EXPECT_EQ(mp::wait(fds, 1s), (std::vector<int>{b.fileno(), d.fileno()}));
}

TEST(Wait, SeesMessagesAlreadyReadAhead) {
  auto [a, b] = mp::Pipe();
  a.send_bytes("1");
  a.send_bytes("2");
  EXPECT_EQ(b.recv_string(), "1");  // read both; the socket is now empty
  const int fds[] = {b.fileno()};
  EXPECT_EQ(mp::wait(fds, 0ms), std::vector<int>{b.fileno()});
  EXPECT_EQ(b.recv_string(), "2");
  EXPECT_TRUE(mp::wait(fds, 0ms).empty());
}

TEST(Wait, TimesOutNoEarlierThanTheDeadline) {
  auto [a, b] = mp::Pipe();
  const int fds[] = {b.fileno()};
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(mp::wait(fds, 30ms).empty());
  EXPECT_GE(std::chrono::steady_clock::now() - start, 30ms);
}

TEST(Wait, NothingToWaitFor) {
  EXPECT_THROW((void)mp::wait(std::span<const int>()), mp::Error);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(mp::wait(std::span<const int>(), 10ms).empty());
  EXPECT_GE(std::chrono::steady_clock::now() - start, 10ms);
}

TEST(Wait, BadFdThrows) {
  const int fds[] = {100000};
  EXPECT_THROW((void)mp::wait(fds, 0ms), mp::Error);
}

namespace {
std::string unique_name(const char* what) {
  return std::string(what) + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
}
}  // namespace

TEST(Listener, AbstractAddress) {
  const std::string addr = "@" + unique_name("mp-unit");
  mp::Listener l(addr);
  EXPECT_EQ(l.address(), addr);
  mp::Connection c = mp::Client(addr);
  mp::Connection s = l.accept();
  c.send_bytes("ping");
  EXPECT_EQ(s.recv_string(), "ping");
  s.send_bytes("pong");
  EXPECT_EQ(c.recv_string(), "pong");
  EXPECT_EQ(l.refused(), 0u);
  EXPECT_THROW(mp::Listener{addr}, mp::Error);  // in use
}

TEST(Listener, FilesystemPathIsRemovedOnClose) {
  const std::string path = "/tmp/" + unique_name("mp-unit") + ".sock";
  {
    mp::Listener l(path);
    struct stat st{};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    mp::Connection c = mp::Client(path);
    auto s = l.try_accept_for(5s);
    ASSERT_TRUE(s.has_value());
    c.send(7);
    EXPECT_EQ(s->recv<int>(), 7);
  }
  struct stat st{};
  EXPECT_NE(::stat(path.c_str(), &st), 0);
}

TEST(Listener, AStaleSocketFileIsReplaced) {
  const std::string path = "/tmp/" + unique_name("mp-stale") + ".sock";
  {  // a socket file whose listener is gone
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, path.c_str());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ::close(fd);
  }
  mp::Listener l(path);
  mp::Connection c = mp::Client(path);
  EXPECT_TRUE(l.try_accept_for(5s).has_value());
}

TEST(Listener, TryAcceptTimesOutNoEarlierThanTheDeadline) {
  mp::Listener l("@" + unique_name("mp-timeout"));
  EXPECT_FALSE(l.try_accept().has_value());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(l.try_accept_for(30ms).has_value());
  EXPECT_GE(std::chrono::steady_clock::now() - start, 30ms);
}

TEST(Listener, ClientWithNobodyListeningThrows) {
  EXPECT_THROW(mp::Client("@" + unique_name("mp-nobody")), mp::Error);
  EXPECT_THROW(mp::Client("/tmp/" + unique_name("mp-nobody")), mp::Error);
  EXPECT_THROW(mp::Client(""), mp::Error);
  EXPECT_THROW(mp::Client("@" + std::string(200, 'x')), mp::Error);
}

TEST(Listener, CloseIsIdempotentAndAcceptAfterCloseThrows) {
  mp::Listener l("@" + unique_name("mp-close"));
  l.close();
  l.close();
  EXPECT_EQ(code_of([&] { (void)l.try_accept(); }), mp::errc::closed);
}
