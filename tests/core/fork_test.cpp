// core fork.hpp with real processes: fork_process and its parent-death options, exit_child,
// kill_and_reap, make_pipe, WakeupFd and thread_with_signals_blocked. Every wait is bounded.
#include <multiproc/fork.hpp>
#include <multiproc/pidfd.hpp>

#include <gtest/gtest.h>
#include "mptest.hpp"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace mp = multiproc;
using namespace std::chrono_literals;

namespace {

/// Everything readable from `fd` until EOF (bounded: 10 s per read).
std::string read_all(int fd) {
  std::string out;
  char buf[256];
  for (;;) {
    if (mp::poll_one(fd, POLLIN, mp::Deadline::after(10s)) <= 0) break;
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

FILE* g_out = nullptr;  // the child's buffered stream for the atexit test
void write_from_atexit() {
  std::fputs("atexit-ran", g_out);
  std::fflush(g_out);
}

/// A child that would outlive the test by far unless something kills it.
[[noreturn]] void sleep_then_exit(int code) {
  std::this_thread::sleep_for(30s);
  mp::exit_child(code);
}

}  // namespace

TEST(Fork, ExitChildReturnsTheCodeFlushesStdioAndSkipsAtexit) {
  mp::PipeEnds p = mp::make_pipe();
  mp::flush_stdio();
  const pid_t pid = mp::fork_process();
  ASSERT_GE(pid, 0) << "fork: " << std::strerror(errno);
  if (pid == 0) {
    p.read.reset();
    g_out = ::fdopen(p.write.release(), "w");  // a pipe: fully buffered
    if (!g_out) mp::exit_child(90);
    std::atexit(&write_from_atexit);
    std::fputs("buffered-output", g_out);  // only exit_child's flush gets it out
    mp::exit_child(7);
  }
  p.write.reset();
  const std::string got = read_all(p.read.get());
  EXPECT_EQ(mptest::wait_exit(pid, 20s), 7);
  EXPECT_EQ(got, "buffered-output") << "stdio flushed, atexit handlers not run";
}

TEST(Fork, ExitCodeKeepsTheLowEightBits) {
  const pid_t pid = mp::fork_process();
  ASSERT_GE(pid, 0);
  if (pid == 0) mp::exit_child(256 + 3);
  EXPECT_EQ(mptest::wait_exit(pid, 20s), 3);
}

TEST(Fork, ChildGetsTheRequestedSignalMask) {
  sigset_t want;
  sigemptyset(&want);
  sigaddset(&want, SIGUSR1);
  const sigset_t start = mp::this_thread_sigmask();
  ASSERT_EQ(sigismember(&start, SIGUSR1), 0) << "precondition";
  mp::ForkOptions opts;
  opts.sigmask = &want;
  const pid_t pid = mp::fork_process(opts);
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const sigset_t m = mp::this_thread_sigmask();
    mp::exit_child(sigismember(&m, SIGUSR1) == 1 && sigismember(&m, SIGUSR2) == 0 ? 0 : 1);
  }
  EXPECT_EQ(mptest::wait_exit(pid, 20s), 0);
  const sigset_t mine = mp::this_thread_sigmask();
  EXPECT_EQ(sigismember(&mine, SIGUSR1), 0) << "the parent's mask is untouched";
}

// The middle process P forks D (die_with_parent or not), reports D's PID and exits. M, a child
// subreaper, inherits D and observes whether P's death killed it.
namespace {
int orphan_scenario(bool die_with_parent) {
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) return 50;
  mp::PipeEnds p = mp::make_pipe();
  mp::flush_stdio();
  const pid_t middle = mp::fork_process();
  if (middle < 0) return 51;
  if (middle == 0) {
    mp::ForkOptions opts;
    opts.die_with_parent = die_with_parent;
    const pid_t d = mp::fork_process(opts);
    if (d == 0) sleep_then_exit(3);
    const bool ok = d > 0 && ::write(p.write.get(), &d, sizeof d) == sizeof d;
    mp::exit_child(ok ? 0 : 1);
  }
  p.write.reset();
  pid_t d = 0;
  if (mp::poll_one(p.read.get(), POLLIN, mp::Deadline::after(20s)) <= 0) return 52;
  if (::read(p.read.get(), &d, sizeof d) != sizeof d) return 53;
  mp::UniqueFd dfd(mp::pidfd_open(d));  // D is alive or an unreaped zombie: its PID is held
  if (!dfd) return 54;
  if (mptest::wait_exit(middle, 20s) != 0) return 55;
  int code = 0;
  if (die_with_parent) {
    if (!mp::pidfd_wait(dfd.get(), mp::Deadline::after(20s))) return 56;  // never killed
    if (mp::pidfd_reap(dfd.get(), code, true) != mp::ReapResult::reaped) return 57;  // we are its reaper now
    return code == -SIGKILL ? 0 : 58;
  }
  // Control: without the option D outlives its parent (it only ends when killed).
  if (mp::pidfd_wait(dfd.get(), mp::Deadline::after(200ms))) return 59;
  (void)mp::pidfd_send_signal(dfd.get(), SIGKILL);
  if (mp::pidfd_reap(dfd.get(), code, true) != mp::ReapResult::reaped) return 60;
  return code == -SIGKILL ? 0 : 61;
}
}  // namespace

TEST(Fork, DieWithParentChildIsKilledWhenItsParentDies) {
  EXPECT_EQ(mptest::wait_exit(mptest::spawn([] { return orphan_scenario(true); }), 60s), 0);
}

TEST(Fork, WithoutDieWithParentTheChildOutlivesItsParent) {
  EXPECT_EQ(mptest::wait_exit(mptest::spawn([] { return orphan_scenario(false); }), 60s), 0);
}

TEST(Fork, LifelineKillsTheChildWhenTheParentsWriteEndCloses) {
  mp::PipeEnds life = mp::make_pipe();
  mp::flush_stdio();
  mp::ForkOptions opts;
  opts.lifeline = life.read.get();
  const pid_t pid = mp::fork_process(opts);
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    life.write.reset();  // only the parent may hold the write end
    sleep_then_exit(3);
  }
  mp::UniqueFd pfd(mp::pidfd_open(pid));
  ASSERT_TRUE(pfd);
  EXPECT_FALSE(mp::pidfd_wait(pfd.get(), mp::Deadline::after(100ms))) << "alive while the write end is open";
  life.write.reset();  // the "parent death": its last reference to the write end goes
  EXPECT_EQ(mptest::wait_exit(pid, 20s), -SIGKILL);
}

TEST(Fork, LifelineAlreadyClosedKillsTheChildBeforeForkReturns) {
  mp::PipeEnds life = mp::make_pipe();
  life.write.reset();  // the parent "died" before the child could arm the lifeline
  mp::ForkOptions opts;
  opts.lifeline = life.read.get();
  const pid_t pid = mp::fork_process(opts);
  ASSERT_GE(pid, 0);
  if (pid == 0) mp::exit_child(5);  // reached only if the check failed to fire
  EXPECT_EQ(mptest::wait_exit(pid, 20s), -SIGKILL);
}

TEST(Fork, KillAndReapLeavesNoZombie) {
  const pid_t pid = mp::fork_process();
  ASSERT_GE(pid, 0);
  if (pid == 0) sleep_then_exit(3);
  mp::kill_and_reap(pid);
  errno = 0;
  EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD) << "already reaped";
}

TEST(Fork, ParentPidIsTheForker) {
  const pid_t me = ::getpid();
  const pid_t pid = mp::fork_process();
  ASSERT_GE(pid, 0);
  if (pid == 0) mp::exit_child(mp::parent_pid() == me ? 0 : 1);
  EXPECT_EQ(mptest::wait_exit(pid, 20s), 0);
}

TEST(Fork, MakePipeEndsAreCloexecAndConnected) {
  mp::PipeEnds p = mp::make_pipe();
  ASSERT_TRUE(p.read);
  ASSERT_TRUE(p.write);
  EXPECT_TRUE(::fcntl(p.read.get(), F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(::fcntl(p.write.get(), F_GETFD) & FD_CLOEXEC);
  ASSERT_EQ(::write(p.write.get(), "x", 1), 1);
  char c = 0;
  ASSERT_EQ(::read(p.read.get(), &c, 1), 1);
  EXPECT_EQ(c, 'x');
}

TEST(WakeupFd, KickWakesAPollerInAnotherThread) {
  mp::WakeupFd w;
  ASSERT_GE(w.fd(), 0);
  EXPECT_EQ(::fcntl(w.fd(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  std::atomic<short> seen{-2};
  std::thread sleeper([&] { seen = mp::poll_one(w.fd(), POLLIN, mp::Deadline::after(20s)); });
  std::this_thread::sleep_for(20ms);  // usually asleep in poll by now; correct either way
  w.kick();
  sleeper.join();
  EXPECT_TRUE(seen.load() & POLLIN) << "woken by the kick, not the 20 s deadline";
  EXPECT_TRUE(w.drain());
}

TEST(WakeupFd, KicksCoalesceAndDrainResets) {
  mp::WakeupFd w;
  EXPECT_EQ(mp::poll_one(w.fd(), POLLIN, mp::Deadline::after(0ns)), 0) << "not readable before a kick";
  EXPECT_FALSE(w.drain()) << "nothing to drain, and drain does not block";
  w.kick();
  w.kick();
  w.kick();
  EXPECT_TRUE(mp::poll_one(w.fd(), POLLIN, mp::Deadline::after(0ns)) & POLLIN);
  EXPECT_TRUE(w.drain());
  EXPECT_EQ(mp::poll_one(w.fd(), POLLIN, mp::Deadline::after(0ns)), 0) << "one drain takes every kick";
  EXPECT_FALSE(w.drain());
}

TEST(WakeupFd, CloseMakesKickAndDrainHarmless) {
  mp::WakeupFd w;
  w.close();
  EXPECT_EQ(w.fd(), -1);
  w.kick();
  EXPECT_FALSE(w.drain());
}

TEST(ThreadWithSignalsBlocked, NewThreadBlocksEverythingCallerUnchanged) {
  const sigset_t before = mp::this_thread_sigmask();
  ASSERT_EQ(sigismember(&before, SIGTERM), 0) << "precondition";
  int term = -1, usr1 = -1;
  std::thread t = mp::thread_with_signals_blocked([&] {
    const sigset_t m = mp::this_thread_sigmask();
    term = sigismember(&m, SIGTERM);
    usr1 = sigismember(&m, SIGUSR1);
  });
  t.join();
  EXPECT_EQ(term, 1);
  EXPECT_EQ(usr1, 1);
  const sigset_t after = mp::this_thread_sigmask();
  EXPECT_EQ(sigismember(&after, SIGTERM), 0) << "the caller's mask is restored";
}
