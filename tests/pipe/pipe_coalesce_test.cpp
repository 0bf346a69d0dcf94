// Coalescing (pipe.hpp, "Coalescing"): send_bytes on a coalescing connection buffers, and every
// flush point sends what is buffered. Real fork()ed processes, every wait bounded; the suite runs
// once per backend (tests/pipe/meson.build).
//
// mptest::spawn's children end with _exit(), which runs no exit handler: a child here that
// means to exit normally calls std::exit() itself, and one that returns from its lambda with
// bytes still buffered loses them — which is what the "lost" tests rely on to show the bytes
// really were held back.
#include <multiproc/pipe.hpp>
#include <multiproc/process.hpp>

#include "mptest.hpp"
#include "pipe_test_util.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <thread>
#include <sys/stat.h>
#include <unistd.h>

namespace mp = multiproc;
using namespace std::chrono_literals;

namespace {

using pipetest::message;

// Sizes cycling through empty, tiny, around the copy limit (16 KiB frames) and large.
std::size_t size_of(std::size_t k) {
  static constexpr std::size_t kSizes[] = {0, 1, 7, 64, 200, 4096, 16 * 1024 - 8, 16 * 1024 - 7, 70'000, 33};
  return kSizes[k % std::size(kSizes)];
}

/// Receives `n` messages numbered from `first` as sent by send_numbered, and checks each.
::testing::AssertionResult receive_numbered(mp::Connection& c, std::size_t first, std::size_t n) {
  for (std::size_t k = first; k < first + n; ++k) {
    const auto got = c.recv_bytes();
    if (got != message(k, size_of(k)))
      return ::testing::AssertionFailure() << "message " << k << " differs (" << got.size() << " bytes)";
  }
  return ::testing::AssertionSuccess();
}

void send_numbered(mp::Connection& c, std::size_t first, std::size_t n) {
  for (std::size_t k = first; k < first + n; ++k) c.send_bytes(message(k, size_of(k)));
}

/// Bounds a test whose parent blocks in a call that a regression could make wait forever (a
/// request held in a buffer nobody flushes): SIGALRM ends the test binary, a loud failure.
struct Watchdog {
  Watchdog() { ::alarm(120); }
  ~Watchdog() { ::alarm(0); }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
};

std::string recv_or_eof(mp::Connection& c) {
  try {
    return c.recv_string();
  } catch (const mp::Eof&) {
    return "<eof>";
  }
}

}  // namespace

TEST(PipeCoalescing, OffByDefaultAndTogglable) {
  auto [a, b] = mp::Pipe();
  EXPECT_FALSE(a.coalescing());
  a.set_coalescing(true);
  EXPECT_TRUE(a.coalescing());
  a.send_bytes("held");
  EXPECT_FALSE(b.poll());  // buffered in a, not in the kernel
  a.set_coalescing(false);  // flushes
  EXPECT_FALSE(a.coalescing());
  ASSERT_TRUE(b.poll(5s));
  EXPECT_EQ(b.recv_string(), "held");
  a.send_bytes("direct");  // off again: one send each
  ASSERT_TRUE(b.poll(5s));
  EXPECT_EQ(b.recv_string(), "direct");
  EXPECT_FALSE(mp::Connection().coalescing());
  EXPECT_THROW(mp::Connection().flush(), mp::Error);
  EXPECT_THROW(mp::Connection().set_coalescing(true), mp::Error);
}

TEST(PipeCoalescing, FlushSendsAndBuffersUpToThirtyTwoMessages) {
  auto [a, b] = mp::Pipe();
  a.set_coalescing(true);
  a.flush();  // nothing buffered: nothing to do
  for (int i = 0; i < 31; ++i) a.send_bytes(std::to_string(i));
  EXPECT_FALSE(b.poll());
  a.send_bytes("31");  // the 32nd: the buffer goes out
  for (int i = 0; i < 32; ++i) {
    ASSERT_TRUE(b.poll(5s)) << i;
    EXPECT_EQ(b.recv_string(), std::to_string(i));
  }
  a.send_bytes("after");
  EXPECT_FALSE(b.poll());
  a.flush();
  ASSERT_TRUE(b.poll(5s));
  EXPECT_EQ(b.recv_string(), "after");
}

TEST(PipeCoalescing, TooLargeIsRejectedBeforeBuffering) {
  auto [a, b] = mp::Pipe();
  a.set_coalescing(true);
  a.max_message_size(100);
  a.send_bytes("first");
  try {
    a.send_bytes(std::vector<std::byte>(101));
    FAIL() << "expected Error(message_too_large)";
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.code(), mp::errc::message_too_large);
  }
  a.send_bytes("second");
  a.flush();
  EXPECT_EQ(b.recv_string(), "first");
  EXPECT_EQ(b.recv_string(), "second");
  EXPECT_FALSE(b.poll());
}

TEST(PipeCoalescing, ManySmallMessagesKeepTheirBoundaries) {
  constexpr std::size_t kCount = 5'000;
  const Watchdog watchdog;
  auto [parent, child] = mp::Pipe();
  const pid_t pid = mptest::spawn([&] {
    parent.close();
    child.set_coalescing(true);
    send_numbered(child, 0, kCount);
    child.send_bytes("end");
    return recv_or_eof(child) == "got them" ? 0 : 1;  // the recv flushes "end"
  });
  child.close();
  EXPECT_TRUE(receive_numbered(parent, 0, kCount));
  EXPECT_EQ(parent.recv_string(), "end");
  parent.send_bytes("got them");
  EXPECT_EQ(mptest::wait_exit(pid), 0);
}

TEST(PipeCoalescing, FdMessagesKeepTheirPlace) {
  auto [parent, child] = mp::Pipe();
  const pid_t pid = mptest::spawn([&] {
    parent.close();
    child.set_coalescing(true);
    const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    CHILD_CHECK(fd >= 0);
    send_numbered(child, 0, 5);
    child.send_fd(fd);  // the five go first, then the fd alone
    send_numbered(child, 5, 40);
    child.send_fd(fd);
    child.send_fd(fd);
    send_numbered(child, 45, 3);
    child.close();  // flushes the last three
    return 0;
  });
  child.close();
  auto expect_fd = [&] {
    const int fd = parent.recv_fd();
    struct stat st {};
    EXPECT_EQ(::fstat(fd, &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));
    ::close(fd);
  };
  EXPECT_TRUE(receive_numbered(parent, 0, 5));
  expect_fd();
  EXPECT_TRUE(receive_numbered(parent, 5, 40));
  expect_fd();
  expect_fd();
  EXPECT_TRUE(receive_numbered(parent, 45, 3));
  EXPECT_THROW((void)parent.recv_bytes(), mp::Eof);
  EXPECT_EQ(mptest::wait_exit(pid), 0);
}

TEST(PipeCoalescing, RequestResponseNeverDeadlocks) {
  // Both ends coalesce; each request and each reply is held until the sender's next recv.
  constexpr int kRounds = 2000;
  const Watchdog watchdog;
  auto [parent, child] = mp::Pipe();
  const pid_t pid = mptest::spawn([&] {
    parent.close();
    child.set_coalescing(true);
    for (int i = 0; i < kRounds; ++i) {
      const auto n = child.recv<int>();
      CHILD_CHECK(n == i);
      child.send(n * 3);
    }
    child.close();
    return 0;
  });
  child.close();
  parent.set_coalescing(true);
  for (int i = 0; i < kRounds; ++i) {
    parent.send(i);
    ASSERT_EQ(parent.recv<int>(), i * 3);
  }
  EXPECT_THROW((void)parent.recv_bytes(), mp::Eof);
  EXPECT_EQ(mptest::wait_exit(pid), 0);
}

TEST(PipeCoalescing, PollAndWaitAreFlushPoints) {
  auto [parent, child] = mp::Pipe();
  const pid_t pid = mptest::spawn([&] {
    parent.close();
    for (int i = 0; i < 2; ++i) {
      const std::string q = child.recv_string();  // no flush on the parent's side: never arrives
      child.send_bytes("re: " + q);
    }
    return 0;
  });
  child.close();
  parent.set_coalescing(true);
  parent.send_bytes("by poll");
  ASSERT_TRUE(parent.poll(30s));  // sends the request, then waits for the reply
  EXPECT_EQ(parent.recv_string(), "re: by poll");
  parent.send_bytes("by wait");
  const int fd = parent.fileno();
  EXPECT_EQ(mp::wait(std::span(&fd, 1), 30s), std::vector<int>{fd});
  EXPECT_EQ(parent.recv_string(), "re: by wait");
  EXPECT_EQ(mptest::wait_exit(pid), 0);
}

TEST(PipeCoalescing, ExitFlushes) {
  auto [parent, child] = mp::Pipe();
  const pid_t pid = mptest::spawn([&] {
    parent.close();
    child.set_coalescing(true);
    send_numbered(child, 0, 10);
    std::exit(0);  // the exit handler flushes
    return 1;
  });
  child.close();
  EXPECT_TRUE(receive_numbered(parent, 0, 10));
  EXPECT_THROW((void)parent.recv_bytes(), mp::Eof);
  EXPECT_EQ(mptest::wait_exit(pid), 0);
}

TEST(PipeCoalescing, AProcessTargetReturningFlushes) {
  auto [parent, child] = mp::Pipe();
  mp::Process p([&child] {
    child.set_coalescing(true);
    send_numbered(child, 0, 10);
    return 0;  // the child _exit()s after its target: the Process flushes first
  });
  p.start();
  child.close();
  EXPECT_TRUE(receive_numbered(parent, 0, 10));
  EXPECT_THROW((void)parent.recv_bytes(), mp::Eof);
  ASSERT_TRUE(p.join_for(60s));
  EXPECT_EQ(p.exitcode(), 0);
}

TEST(PipeCoalescing, CloseAndTheDestructorFlush) {
  auto [parent, child] = mp::Pipe();
  const pid_t pid = mptest::spawn([&] {
    parent.close();
    child.set_coalescing(true);
    send_numbered(child, 0, 7);
    child.close();
    return 0;
  });
  const pid_t pid2 = mptest::spawn([&] {
    parent.close();
    child.close();
    auto [a, b] = mp::Pipe();  // a fresh pair in the child: a's destructor runs before _exit
    {
      mp::Connection mine = std::move(a);
      mine.set_coalescing(true);
      send_numbered(mine, 0, 7);
    }
    return receive_numbered(b, 0, 7) ? 0 : 1;
  });
  child.close();
  EXPECT_TRUE(receive_numbered(parent, 0, 7));
  EXPECT_THROW((void)parent.recv_bytes(), mp::Eof);
  EXPECT_EQ(mptest::wait_exit(pid), 0);
  EXPECT_EQ(mptest::wait_exit(pid2), 0);
}

TEST(PipeCoalescing, BufferedBytesDieWithAKilledProcess) {
  // pipe.hpp: what is buffered when the process dies without a normal exit is lost. This is
  // also the proof that coalescing holds messages back at all.
  auto [parent, child] = mp::Pipe();
  const pid_t pid = mptest::spawn([&] {
    parent.close();
    child.send_bytes("plain");  // coalescing off: in the kernel when this returns
    child.set_coalescing(true);
    send_numbered(child, 0, 5);
    ::raise(SIGKILL);
    return 1;
  });
  child.close();
  EXPECT_EQ(parent.recv_string(), "plain");
  EXPECT_THROW((void)parent.recv_bytes(), mp::Eof);
  EXPECT_EQ(mptest::wait_exit(pid), -SIGKILL);
}

TEST(PipeCoalescing, PeerClosedIsReportedAtTheNextFlushPoint) {
  auto [parent, child] = mp::Pipe();
  const pid_t pid = mptest::spawn([&] {
    parent.close();
    child.send_bytes("last words");
    child.close();
    return 0;
  });
  child.close();
  ASSERT_EQ(mptest::wait_exit(pid), 0);
  parent.set_coalescing(true);
  send_numbered(parent, 0, 3);  // buffered: no error yet
  try {
    parent.flush();
    FAIL() << "expected Closed";
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.code(), mp::errc::closed);
    EXPECT_NE(std::string(e.what()).find("3 unsent message(s) were dropped"), std::string::npos) << e.what();
  }
  parent.flush();  // dropped: nothing left to fail
  // A recv is a flush point too; after it reported the loss, what the peer sent is still there.
  send_numbered(parent, 0, 2);
  EXPECT_THROW((void)parent.recv_bytes(), mp::Closed);
  EXPECT_EQ(parent.recv_string(), "last words");
  EXPECT_THROW((void)parent.recv_bytes(), mp::Eof);
  // close() and the destructor cannot report it: they drop the messages, never raise SIGPIPE.
  send_numbered(parent, 0, 2);
  parent.close();
  EXPECT_TRUE(parent.closed());
}

TEST(PipeCoalescing, AConnectionThatCannotFlushIsReadyAndItsRecvReportsIt) {
  auto [parent, child] = mp::Pipe();
  child.close();
  parent.set_coalescing(true);
  parent.send_bytes("nobody listens");
  const int fd = parent.fileno();
  EXPECT_EQ(mp::wait(std::span(&fd, 1), 30s), std::vector<int>{fd});
  EXPECT_THROW((void)parent.recv_bytes(), mp::Closed);
  EXPECT_THROW((void)parent.recv_bytes(), mp::Eof);
}

TEST(PipeCoalescing, AForkedChildDropsItsCopyOfTheParentsBuffer) {
  auto [parent, child] = mp::Pipe();
  parent.set_coalescing(true);
  send_numbered(parent, 0, 3);  // buffered before the fork: the parent's to send, once
  const pid_t pid = mptest::spawn([&] {
    child.close();
    parent.flush();  // the inherited copy is dropped, not sent twice
    parent.send_bytes("from the child");
    parent.close();
    return 0;
  });
  ASSERT_EQ(mptest::wait_exit(pid), 0);
  parent.flush();
  EXPECT_EQ(child.recv_string(), "from the child");
  EXPECT_TRUE(receive_numbered(child, 0, 3));
  EXPECT_FALSE(child.poll());
}

TEST(PipeCoalescing, ThreadsCoalesceTheirOwnConnectionsIndependently) {
  // Each thread's connections register with, and leave, the process-wide exit flush list at
  // once (run under TSan too).
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &failures] {
      for (int round = 0; round < 20; ++round) {
        auto [a, b] = mp::Pipe();
        a.set_coalescing(true);
        for (int i = 0; i < 100; ++i) a.send(i);  // 1.2 KiB in all: fits the socket, no reader needed
        if (round % 2 == 0) a.set_coalescing(false); else a.flush();
        for (int i = 0; i < 100; ++i)
          if (b.recv<int>() != i) ++failures[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}
