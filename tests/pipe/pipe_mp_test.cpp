// Connections between real processes (fork()ed children, every wait bounded). The suite runs
// once per backend (tests/pipe/meson.build sets MULTIPROC_NO_IO_URING=1 for the second).
#include <multiproc/pidfd.hpp>
#include <multiproc/pipe.hpp>

#include "frame.hpp"
#include "mptest.hpp"
#include "pipe_test_util.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace mp = multiproc;
using namespace std::chrono_literals;

namespace {

// Deterministic content, so each side can check the other's without sharing it.
void fill(std::byte* p, std::size_t n, std::uint32_t seed) {
  std::uint32_t x = seed * 2654435761u + 12345;
  for (std::size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    p[i] = std::byte(x >> 24);
  }
}
std::vector<std::byte> pattern(std::size_t n, std::uint32_t seed) {
  std::vector<std::byte> v(n);
  fill(v.data(), n, seed);
  return v;
}
bool matches(const std::vector<std::byte>& v, std::uint32_t seed) { return v == pattern(v.size(), seed); }

template <class F>
int expect_error(mp::errc code, F&& f) {
  try {
    f();
  } catch (const mp::Error& e) {
    if (e.code() == code) return 0;
    std::fprintf(stderr, "child %d: wrong error: %s\n", ::getpid(), e.what());
    return 2;
  }
  return 3;
}

std::string unique_name(const char* what) {
  return std::string(what) + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
}

}  // namespace

TEST(PipeProcesses, EverySizeClassRoundTrips) {
  const std::size_t max = mp::Connection::default_max_message_size;
  const std::vector<std::size_t> sizes = {0, 1, 4096, 1 << 20, max};
  auto [parent, child] = mp::Pipe();
  parent.send_bytes("warm up the parent's ring before fork");
  const pid_t pid = mptest::spawn([&] {
    parent.close();
    mp::Connection& c = child;
    CHILD_CHECK(c.recv_string() == "warm up the parent's ring before fork");
    for (std::size_t n : sizes) {  // echo each message back
      std::vector<std::byte> m = c.recv_bytes();
      CHILD_CHECK(m.size() == n);
      c.send_bytes(m);
    }
    // max + 1: refused by the sender's own limit; then forced past it, refused by ours.
    CHILD_CHECK(c.recv_string() == "now max+1");
    return expect_error(mp::errc::bad_message, [&] { (void)c.recv_bytes(); }) == 0 && c.closed() ? 0 : 7;
  });
  child.close();
  for (std::size_t n : sizes) {
    const auto m = pattern(n, static_cast<std::uint32_t>(n));
    parent.send_bytes(m);  // the child receives it whole before it echoes
    std::vector<std::byte> back(n);
    EXPECT_EQ(parent.recv_bytes_into(back), n);
    EXPECT_TRUE(back == m) << n;
  }
  parent.send_bytes("now max+1");
  const std::vector<std::byte> too_big(max + 1);
  try {
    parent.send_bytes(too_big);
    ADD_FAILURE() << "sent more than max_message_size()";
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.code(), mp::errc::message_too_large);
  }
  parent.max_message_size(max + 1);
  try {
    parent.send_bytes(too_big);  // the child closes on the header: we may or may not see that
  } catch (const mp::Closed&) {
  }
  EXPECT_EQ(mptest::wait_exit(pid), 0);
}

TEST(PipeProcesses, InterleavedBothWaysOnADuplexPipe) {
  constexpr int kRounds = 400;
  auto [a, b] = mp::Pipe();
  auto size_of = [](int i, int side) { return static_cast<std::size_t>((i * 7919 + side * 104729) % 60000); };
  auto run = [&](mp::Connection& c, int me, int other) -> int {
    for (int i = 0; i < kRounds; ++i) {
      // Both send first, then receive: each message fits the socket buffer, so neither blocks.
      c.send_bytes(pattern(size_of(i, me), static_cast<std::uint32_t>(i * 2 + me)));
      if (i % 3 == 0) c.send(i);
      const auto m = c.recv_bytes();
      CHILD_CHECK(m.size() == size_of(i, other) && matches(m, static_cast<std::uint32_t>(i * 2 + other)));
      if (i % 3 == 0) CHILD_CHECK(c.recv<int>() == i);
    }
    return 0;
  };
  const pid_t pid = mptest::spawn([&] {
    a.close();
    return run(b, 1, 0);
  });
  b.close();
  EXPECT_EQ(run(a, 0, 1), 0);
  EXPECT_EQ(mptest::wait_exit(pid), 0);
}

TEST(PipeProcesses, ManySmallMessagesBackToBackKeepTheirBoundaries) {
  constexpr std::uint32_t kSingles = 50'000, kBatches = 500, kPerBatch = 100;
  auto [rx, tx] = mp::Pipe(false);
  auto size_of = [](std::uint32_t i) { return static_cast<std::size_t>(i % 97 == 0 ? 0 : (i * 31) % 200); };
  const pid_t pid = mptest::spawn([&] {
    rx.close();
    for (std::uint32_t i = 0; i < kSingles; ++i) tx.send_bytes(pattern(size_of(i), i));
    std::vector<std::vector<std::byte>> batch(kPerBatch);
    std::vector<std::span<const std::byte>> spans(kPerBatch);
    for (std::uint32_t b = 0; b < kBatches; ++b) {
      for (std::uint32_t k = 0; k < kPerBatch; ++k) {
        const std::uint32_t i = kSingles + b * kPerBatch + k;
        batch[k] = pattern(size_of(i), i);
        spans[k] = batch[k];
      }
      tx.send_bytes_many(spans);
    }
    return 0;
  });
  tx.close();
  std::vector<std::byte> buf(256);
  for (std::uint32_t i = 0; i < kSingles + kBatches * kPerBatch; ++i) {
    const std::size_t n = (i % 2 == 0) ? rx.recv_bytes_into(buf) : 0;
    std::vector<std::byte> m = (i % 2 == 0) ? std::vector<std::byte>(buf.begin(), buf.begin() + static_cast<long>(n))
                                            : rx.recv_bytes();
    ASSERT_EQ(m.size(), size_of(i)) << i;
    ASSERT_TRUE(matches(m, i)) << i;
  }
  EXPECT_THROW((void)rx.recv_bytes(), mp::Eof);
  EXPECT_EQ(mptest::wait_exit(pid), 0);
}

TEST(PipeProcesses, APeerKilledMidMessageIsBadMessageNotAHang) {
  auto [rx, tx] = mp::Pipe(false);
  const pid_t pid = mptest::spawn([&] {
    rx.close();
    const auto big = pattern(16 << 20, 1);
    tx.send_bytes("first, whole");
    tx.send_bytes(big);  // blocks once the socket is full: nobody reads; killed in the middle
    return 0;
  });
  tx.close();
  // Kill it once part of the big message is in the socket (bounded wait).
  int queued = 0;
  for (int i = 0; i < 30000 && queued < 64 * 1024; ++i) {
    std::this_thread::sleep_for(1ms);
    ASSERT_EQ(::ioctl(rx.fileno(), SIOCINQ, &queued), 0);
  }
  ASSERT_GE(queued, 64 * 1024);
  ::kill(pid, SIGKILL);
  EXPECT_EQ(mptest::wait_exit(pid), -SIGKILL);
  EXPECT_EQ(rx.recv_string(), "first, whole");
  try {
    (void)rx.recv_bytes();
    ADD_FAILURE() << "no error";
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.code(), mp::errc::bad_message) << e.what();
  }
  EXPECT_TRUE(rx.closed());
}

TEST(PipeProcesses, APeerThatClosesGivesItsMessagesThenEof) {
  auto [a, b] = mp::Pipe();
  const pid_t pid = mptest::spawn([&] {
    a.close();
    for (int i = 0; i < 3; ++i) b.send(i);
    b.close();
    return 0;
  });
  b.close();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(a.recv<int>(), i);
  EXPECT_THROW((void)a.recv_bytes(), mp::Eof);
  EXPECT_TRUE(a.poll());
  EXPECT_EQ(mptest::wait_exit(pid), 0);
}

TEST(PipeProcesses, AProcessThatExitsRightAfterSendingStillDelivers) {
  auto [a, b] = mp::Pipe();
  const auto big = pattern(1 << 20, 5);
  const pid_t pid = mptest::spawn([&] {
    a.close();
    b.send_bytes(big);  // returns once the kernel has it all: _exit must not lose any
    ::_exit(0);
    return 0;
  });
  b.close();
  EXPECT_TRUE(a.recv_bytes() == big);
  EXPECT_EQ(mptest::wait_exit(pid), 0);
}

TEST(PipeProcesses, SigpipeIsNeverRaised) {
  auto [a, b] = mp::Pipe();
  const pid_t pid = mptest::spawn([&] {
    ::signal(SIGPIPE, SIG_DFL);  // the default action would kill this process
    a.close();
    CHILD_CHECK(b.recv_string() == "go");
    // The parent closed: every send must throw Closed, small or large.
    for (std::size_t n : {std::size_t{1}, std::size_t{4} << 20}) {
      bool closed = false;
      for (int i = 0; i < 100 && !closed; ++i) {
        try {
          b.send_bytes(std::vector<std::byte>(n));
        } catch (const mp::Closed&) {
          closed = true;
        }
      }
      CHILD_CHECK(closed);
    }
    return 0;
  });
  b.close();
  a.send_bytes("go");
  a.close();
  EXPECT_EQ(mptest::wait_exit(pid), 0);  // not -SIGPIPE
}

TEST(PipeProcesses, AForkedChildThatReusedEveryFdNumberKeepsItsFiles) {
  // The child inherits this thread's I/O state; whatever it sets up for itself must not touch an
  // fd number the child has since closed and reused for its own files.
  auto [a, b] = mp::Pipe();
  a.send_bytes("parent used its ring first");
  EXPECT_EQ(b.recv_string(), "parent used its ring first");
  const pid_t pid = mptest::spawn([&] {
    const int keep = b.fileno();
    for (int fd = 3; fd < 1024; ++fd)
      if (fd != keep) ::close(fd);
    std::vector<int> files;
    for (int i = 0; i < 8; ++i) files.push_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    b.send_bytes("child");
    CHILD_CHECK(b.recv_string() == "parent");
    struct stat null_st{};
    CHILD_CHECK(::stat("/dev/null", &null_st) == 0);
    for (int fd : files) {  // still open, and still /dev/null (not closed and reused)
      struct stat st{};
      CHILD_CHECK(::fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == null_st.st_rdev);
    }
    return 0;
  });
  EXPECT_EQ(a.recv_string(), "child");
  a.send_bytes("parent");
  EXPECT_EQ(mptest::wait_exit(pid), 0);
}

TEST(PipeProcesses, FdsPassBetweenProcesses) {
  auto [a, b] = mp::Pipe();
  const pid_t pid = mptest::spawn([&] {
    a.close();
    const int memfd = b.recv_fd();
    CHILD_CHECK(memfd >= 0);
    CHILD_CHECK((::fcntl(memfd, F_GETFD) & FD_CLOEXEC) != 0);
    auto* p = static_cast<char*>(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0));
    CHILD_CHECK(p != MAP_FAILED);
    CHILD_CHECK(std::strcmp(p, "from the parent") == 0);
    std::strcpy(p, "from the child");
    const int out = b.recv_fd();  // the write end of a pipe(2)
    CHILD_CHECK(::write(out, "via pipe", 8) == 8);
    ::close(out);
    ::munmap(p, 4096);
    ::close(memfd);
    b.send_bytes("done");
    return 0;
  });
  b.close();
  const int memfd = ::memfd_create("pipe-mp", MFD_CLOEXEC);
  ASSERT_EQ(::ftruncate(memfd, 4096), 0);
  auto* p = static_cast<char*>(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0));
  std::strcpy(p, "from the parent");
  int pfd[2];
  ASSERT_EQ(::pipe2(pfd, O_CLOEXEC), 0);
  a.send_fd(memfd);
  a.send_fd(pfd[1]);
  ::close(pfd[1]);
  EXPECT_EQ(a.recv_string(), "done");
  EXPECT_STREQ(p, "from the child");
  char buf[8];
  EXPECT_EQ(::read(pfd[0], buf, 8), 8);
  EXPECT_EQ(std::string(buf, 8), "via pipe");
  ::close(pfd[0]);
  ::munmap(p, 4096);
  ::close(memfd);
  EXPECT_EQ(mptest::wait_exit(pid), 0);
}

TEST(PipeProcesses, PollInAChildTimesOutThenSeesTheMessage) {
  auto [a, b] = mp::Pipe();
  const pid_t pid = mptest::spawn([&] {
    a.close();
    const auto start = std::chrono::steady_clock::now();
    CHILD_CHECK(!b.poll(50ms));
    CHILD_CHECK(std::chrono::steady_clock::now() - start >= 50ms);
    b.send_bytes("ready");
    CHILD_CHECK(b.poll(30s));
    CHILD_CHECK(b.recv_string() == "message");
    return 0;
  });
  b.close();
  EXPECT_EQ(a.recv_string(), "ready");
  a.send_bytes("message");
  EXPECT_EQ(mptest::wait_exit(pid), 0);
}

TEST(PipeProcesses, WaitOnConnectionsAndPidfds) {
  auto [a, b] = mp::Pipe();
  const pid_t pid = mptest::spawn([&] {
    a.close();
    std::this_thread::sleep_for(20ms);
    b.send_bytes("hello");
    return 0;
  });
  b.close();
  const int pidfd = mp::pidfd_open(pid);
  ASSERT_GE(pidfd, 0);
  const int fds[] = {a.fileno(), pidfd};
  std::vector<int> ready = mp::wait(fds, 30s);
  ASSERT_FALSE(ready.empty());
  EXPECT_EQ(ready.front(), a.fileno());
  EXPECT_EQ(a.recv_string(), "hello");
  // The child exits: its pidfd becomes readable (and the connection sees the end of stream).
  const int only_pidfd[] = {pidfd};
  EXPECT_EQ(mp::wait(only_pidfd, 30s), std::vector<int>{pidfd});
  EXPECT_EQ(mptest::wait_exit(pid), 0);
  ::close(pidfd);
}

TEST(ListenerProcesses, ClientsOfTheSameUserAreAccepted) {
  const std::string addr = "@" + unique_name("mp-listen");
  mp::Listener l(addr);
  constexpr int kClients = 4;
  std::vector<pid_t> pids;
  for (int i = 0; i < kClients; ++i) {
    pids.push_back(mptest::spawn([&, i] {
      l.close();  // the child's copy; the parent keeps listening
      mp::Connection c = mp::Client(addr);
      c.send(i);
      CHILD_CHECK(c.recv<int>() == i * 10);
      return 0;
    }));
  }
  for (int k = 0; k < kClients; ++k) {
    auto s = l.try_accept_for(30s);
    ASSERT_TRUE(s.has_value());
    const int i = s->recv<int>();
    s->send(i * 10);
  }
  for (pid_t p : pids) EXPECT_EQ(mptest::wait_exit(p), 0);
  EXPECT_EQ(l.refused(), 0u);
}

TEST(ListenerProcesses, PeersOfAnotherUidAreDroppedAndTold) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a child as another user (nobody, 65534)";
  const std::string addr = "@" + unique_name("mp-uid");
  mp::Listener l(addr);
  auto* connected = static_cast<std::atomic<int>*>(
      ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  new (connected) std::atomic<int>(0);
  const pid_t stranger = mptest::spawn([&] {
    l.close();
    CHILD_CHECK(::setgid(65534) == 0 && ::setuid(65534) == 0);
    // 1. Client() itself refuses a listening socket of another user.
    try {
      (void)mp::Client(addr);
      CHILD_CHECK(false);
    } catch (const mp::Error& e) {
      CHILD_CHECK(e.code() == mp::errc::permission_denied);
      CHILD_CHECK(std::strstr(e.what(), "uid 0") != nullptr);
    }
    // 2. A raw connect gets past that; the listener drops it and says why.
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path + 1, addr.data() + 1, addr.size() - 1);
    CHILD_CHECK(::connect(fd, reinterpret_cast<sockaddr*>(&sa),
                          static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + addr.size())) == 0);
    connected->store(1);
    mp::Connection c = mp::detail::adopt_socket(fd, mp::Backend::automatic, true, true, "test");
    try {
      (void)c.recv_bytes();
      CHILD_CHECK(false);
    } catch (const mp::Error& e) {
      CHILD_CHECK(e.code() == mp::errc::permission_denied);
      CHILD_CHECK(std::strstr(e.what(), "uid 65534") != nullptr);
      std::fprintf(stderr, "refused client saw: %s\n", e.what());
    }
    CHILD_CHECK(c.closed());
    return 0;
  });
  // Only after the stranger is queued, a client of our own uid: accept() must skip the first.
  for (int i = 0; i < 30000 && connected->load() == 0; ++i) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(connected->load(), 1);
  const pid_t friendly = mptest::spawn([&] {
    l.close();
    mp::Connection c = mp::Client(addr);
    c.send_bytes("friend");
    return 0;
  });
  auto s = l.try_accept_for(30s);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->recv_string(), "friend");
  EXPECT_EQ(l.refused(), 2u);  // the stranger's Client() attempt was queued too
  EXPECT_EQ(mptest::wait_exit(stranger), 0);
  EXPECT_EQ(mptest::wait_exit(friendly), 0);
  ::munmap(connected, 4096);
}
