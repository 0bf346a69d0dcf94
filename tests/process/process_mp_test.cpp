// Daemon children die with their parent, however it ends. Each test runs an "observer" child
// that makes itself a child subreaper (PR_SET_CHILD_SUBREAPER), so the daemon of a killed
// "middle" process is re-parented to the observer, which can then wait for it and see how it
// ended. Every wait is bounded.
#include <multiproc/pidfd.hpp>
#include <multiproc/process.hpp>

#include <gtest/gtest.h>
#include "mptest.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <functional>
#include <sys/prctl.h>
#include <thread>
#include <unistd.h>

namespace mp = multiproc;
using namespace std::chrono_literals;

namespace {

struct Board {
  std::atomic<pid_t> daemon{0};
  std::atomic<pid_t> other{0};
  std::atomic<int> ready{0};
  std::atomic<int> alive_after_thread_exit{0};
};

bool wait_ready(const Board& b) {
  const auto end = std::chrono::steady_clock::now() + 30s;
  while (b.ready.load() == 0) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

/// In an observer (a subreaper): runs `middle` in a child, waits until it says ready, ends it
/// with `how` (a signal, or 0 to let it end by itself), then returns how its daemon ended.
int daemon_fate_after_parent_ends(Board* b, const std::function<int()>& middle, int how) {
  const pid_t observer = mptest::spawn([&] {
    if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) return 90;
    const pid_t m = mptest::spawn(middle);
    if (!wait_ready(*b)) return 91;
    if (how != 0) ::kill(m, how);
    mptest::wait_exit(m, 30s);
    const pid_t d = b->daemon.load();
    const int code = mptest::wait_exit(d, 10s);  // re-parented to us: waitable now
    if (b->other.load() > 0) {
      ::kill(b->other.load(), SIGKILL);
      mptest::wait_exit(b->other.load(), 30s);
    }
    return code == -SIGKILL ? 0 : 100 + (code < 0 ? -code : code);
  });
  return mptest::wait_exit(observer, 60s);
}

int sleeping_daemon(Board* b, bool clear_pdeathsig) {
  mp::Process d(
      [](bool clear) {
        if (clear) ::prctl(PR_SET_PDEATHSIG, 0);  // as a setuid() would: only the lifeline is left
        for (;;) ::pause();
      },
      clear_pdeathsig);
  d.daemon(true).start();
  b->daemon = d.pid();
  return 0;
}

}  // namespace

TEST(DaemonMp, DiesWhenItsParentIsSigkilled) {
  mptest::Shared<Board> b;
  EXPECT_EQ(daemon_fate_after_parent_ends(b.get(), [&] {
    sleeping_daemon(b.get(), false);
    b->ready = 1;
    for (;;) ::pause();
    return 0;
  }, SIGKILL), 0);
}

TEST(DaemonMp, DiesWhenItsParentLeavesWithUnderscoreExit) {
  // _exit runs no at-exit handler: only the kernel mechanisms can end the daemon.
  mptest::Shared<Board> b;
  EXPECT_EQ(daemon_fate_after_parent_ends(b.get(), [&] {
    sleeping_daemon(b.get(), false);
    b->ready = 1;
    std::this_thread::sleep_for(20ms);
    ::_exit(0);
    return 0;
  }, 0), 0);
}

TEST(DaemonMp, TheLifelineAloneKillsItWhenPdeathsigWasCleared) {
  mptest::Shared<Board> b;
  EXPECT_EQ(daemon_fate_after_parent_ends(b.get(), [&] {
    sleeping_daemon(b.get(), true);
    std::this_thread::sleep_for(50ms);  // let the daemon clear its PDEATHSIG
    b->ready = 1;
    for (;;) ::pause();
    return 0;
  }, SIGKILL), 0);
}

TEST(DaemonMp, ARawForkOfTheParentDoesNotKeepTheLifelineOpen) {
  // A child the program forks by itself inherits every fd; the atfork handler must close the
  // lifeline's write end in it, or the daemon would outlive its parent.
  mptest::Shared<Board> b;
  EXPECT_EQ(daemon_fate_after_parent_ends(b.get(), [&] {
    sleeping_daemon(b.get(), true);
    const pid_t raw = ::fork();
    if (raw == 0) {
      for (;;) ::pause();  // lives until the observer has seen the daemon's fate
    }
    b->other = raw;
    std::this_thread::sleep_for(50ms);
    b->ready = 1;
    for (;;) ::pause();
    return 0;
  }, SIGKILL), 0);
}

TEST(DaemonMp, SurvivesTheExitOfTheThreadThatStartedItThenDiesWithTheProcess) {
  // PR_SET_PDEATHSIG fires when the forking *thread* ends: daemons are forked by the
  // supervisor thread, so a short-lived caller thread must not take its daemon with it.
  mptest::Shared<Board> b;
  EXPECT_EQ(daemon_fate_after_parent_ends(b.get(), [&] {
    std::thread t([&] { sleeping_daemon(b.get(), false); });  // the Process object dies with t
    t.join();
    std::this_thread::sleep_for(100ms);
    b->alive_after_thread_exit = !mp::process_dead(b->daemon.load());
    b->ready = 1;
    for (;;) ::pause();
    return 0;
  }, SIGKILL), 0);
  EXPECT_EQ(b->alive_after_thread_exit.load(), 1);
}

TEST(DaemonMp, ANonDaemonChildOutlivesItsKilledParent) {
  // Python semantics: only daemons follow their parent; a normal child is orphaned and runs on.
  mptest::Shared<Board> b;
  const pid_t observer = mptest::spawn([&] {
    if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) return 90;
    const pid_t m = mptest::spawn([&] {
      mp::Process c([] { for (;;) ::pause(); });
      c.start();
      b->daemon = c.pid();
      b->ready = 1;
      for (;;) ::pause();
      return 0;
    });
    if (!wait_ready(*b)) return 91;
    ::kill(m, SIGKILL);
    mptest::wait_exit(m, 30s);
    std::this_thread::sleep_for(100ms);
    const bool alive = !mp::process_dead(b->daemon.load());
    ::kill(b->daemon.load(), SIGKILL);
    mptest::wait_exit(b->daemon.load(), 30s);
    return alive ? 0 : 1;
  });
  EXPECT_EQ(mptest::wait_exit(observer, 60s), 0);
}
