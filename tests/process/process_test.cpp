// Process with real children: exit codes, signals, join deadlines, arguments, names,
// reaping (no zombies after join, after destruction, at exit) and the daemon rules.
#include <multiproc/pidfd.hpp>
#include <multiproc/process.hpp>

#include <gtest/gtest.h>
#include "lsan_children.hpp"
#include "mptest.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <poll.h>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace mp = multiproc;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

/// Waits (bounded) until `pid` no longer exists at all — reaped, not a zombie.
bool gone_within(pid_t pid, std::chrono::milliseconds limit) {
  const auto end = Clock::now() + limit;
  while (Clock::now() < end) {
    if (!mp::process_exists(pid)) return true;
    std::this_thread::sleep_for(2ms);
  }
  return !mp::process_exists(pid);
}

bool readable_now(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1;
}

struct Text {
  char s[128];
  void set(const std::string& v) { std::snprintf(s, sizeof s, "%s", v.c_str()); }
};

}  // namespace

TEST(Process, ReturnValueIsTheExitCode) {
  mp::Process p([] { return 7; });
  EXPECT_FALSE(p.exitcode().has_value());
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 7);
  EXPECT_FALSE(p.is_alive());
}

TEST(Process, VoidTargetExitsZero) {
  mp::Process p([] {});
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 0);
}

TEST(Process, EscapingExceptionExitsOne) {
  mp::Process p([]() -> int { throw std::runtime_error("boom from the child"); });
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 1);
}

TEST(Process, ExitAndAbortInTheTarget) {
  mp::Process e([] { std::exit(3); });
  mp::Process a([] { std::abort(); });
  e.start();
  a.start();
  e.join();
  a.join();
  EXPECT_EQ(e.exitcode(), 3);
  EXPECT_EQ(a.exitcode(), -SIGABRT);
}

TEST(Process, TerminateAndKillGiveMinusTheSignal) {
  mp::Process t([] { ::pause(); });
  mp::Process k([] { ::pause(); });
  t.start();
  k.start();
  EXPECT_TRUE(t.is_alive());
  EXPECT_FALSE(t.exitcode().has_value());
  t.terminate();
  k.kill();
  t.join();
  k.join();
  EXPECT_EQ(t.exitcode(), -SIGTERM);
  EXPECT_EQ(k.exitcode(), -SIGKILL);
  // Signalling an ended (reaped) child is a no-op, as in Python.
  EXPECT_NO_THROW(t.terminate());
  EXPECT_NO_THROW(k.kill());
}

TEST(Process, JoinForTimesOutNoEarlierThanTheDeadline) {
  mp::Process p([] { ::pause(); });
  p.start();
  const auto t0 = Clock::now();
  EXPECT_FALSE(p.join_for(100ms));
  EXPECT_GE(Clock::now() - t0, 100ms);
  EXPECT_TRUE(p.is_alive());
  const auto t1 = Clock::now();
  EXPECT_FALSE(p.join_until(Clock::now() + 30ms));
  EXPECT_GE(Clock::now() - t1, 30ms);
  p.kill();
  EXPECT_TRUE(p.join_for(30s));
  EXPECT_EQ(p.exitcode(), -SIGKILL);
}

TEST(Process, JoinForReturnsWhenTheChildEnds) {
  mp::Process p([] { std::this_thread::sleep_for(20ms); return 5; });
  p.start();
  EXPECT_TRUE(p.join_for(30s));
  EXPECT_EQ(p.exitcode(), 5);
  EXPECT_TRUE(p.join_for(0ms));  // already joined
}

TEST(Process, ArgumentsAreDecayCopiedAtConstructionAndReachTheChild) {
  struct Out {
    int n;
    double d;
    Text s;
    std::atomic<int> via_ref;
  };
  mptest::Shared<Out> out;
  std::string word = "hello";
  int n = 42;
  std::atomic<int>& shared_counter = out->via_ref;
  mp::Process p(
      [](Out* o, std::string s, int k, double d, std::atomic<int>& r) {
        o->n = k;
        o->d = d;
        o->s.set(s);
        r.fetch_add(k);
      },
      out.get(), word, n, 2.5, std::ref(shared_counter));
  word = "changed after construction";
  n = -1;
  p.start();
  p.join();
  ASSERT_EQ(p.exitcode(), 0);
  EXPECT_EQ(out->n, 42);
  EXPECT_EQ(out->d, 2.5);
  EXPECT_STREQ(out->s.s, "hello");
  EXPECT_EQ(out->via_ref.load(), 42);
}

TEST(Process, MoveOnlyArgumentsAndCallablesWork) {
  auto owned = std::make_unique<int>(9);
  mp::Process p([](std::unique_ptr<int> v) { return *v; }, std::move(owned));
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 9);
}

TEST(Process, NamesCurrentAndParentProcess) {
  EXPECT_EQ(mp::current_process().name, "MainProcess");
  EXPECT_EQ(mp::current_process().pid, ::getpid());
  EXPECT_FALSE(mp::parent_process().has_value());

  mp::Process a([] {});
  mp::Process b([] {});
  const std::string an = a.name(), bn = b.name();
  ASSERT_EQ(an.rfind("Process-", 0), 0u) << an;
  EXPECT_EQ(std::stoi(bn.substr(8)), std::stoi(an.substr(8)) + 1) << "names count up as in Python";

  struct Seen {
    Text name, parent_name, grandchild_name;
    pid_t pid, parent_pid;
    int has_parent;
  };
  mptest::Shared<Seen> seen;
  mp::Process c([](Seen* s) {
    s->name.set(mp::current_process().name);
    s->pid = mp::current_process().pid;
    auto parent = mp::parent_process();
    s->has_parent = parent.has_value();
    if (parent) {
      s->parent_name.set(parent->name);
      s->parent_pid = parent->pid;
    }
    mp::Process g([](Seen* s2) { s2->grandchild_name.set(mp::current_process().name); }, s);
    g.start();
    g.join();
    return g.exitcode().value_or(99);
  }, seen.get());
  c.name("worker-c");
  EXPECT_EQ(c.name(), "worker-c");
  c.start();
  c.join();
  ASSERT_EQ(c.exitcode(), 0);
  EXPECT_STREQ(seen->name.s, "worker-c");
  EXPECT_EQ(seen->pid, c.pid());
  EXPECT_EQ(seen->has_parent, 1);
  EXPECT_STREQ(seen->parent_name.s, "MainProcess");
  EXPECT_EQ(seen->parent_pid, ::getpid());
  // The child's identity comes first: "Process-<c's number>:1".
  EXPECT_EQ(std::string(seen->grandchild_name.s),
            "Process-" + std::to_string(std::stoi(bn.substr(8)) + 1) + ":1");
}

TEST(Process, MisuseThrowsClearErrors) {
  mp::Process p([] {});
  EXPECT_THROW(p.join(), mp::Error);
  EXPECT_THROW(p.terminate(), mp::Error);
  EXPECT_FALSE(p.is_alive());
  EXPECT_EQ(p.sentinel(), -1);
  EXPECT_EQ(p.pid(), 0);
  p.start();
  EXPECT_THROW(p.start(), mp::Error);
  EXPECT_THROW(p.name("late"), mp::Error);
  EXPECT_THROW(p.daemon(true), mp::Error);
  p.join();
  mp::Process moved(std::move(p));
  EXPECT_EQ(moved.exitcode(), 0);
  EXPECT_THROW(p.start(), mp::Error);  // NOLINT(bugprone-use-after-move): moved-from is an error, not UB
}

TEST(Process, ProcessesLiveInVectors) {
  struct Hits {
    std::atomic<int> sum;
  };
  mptest::Shared<Hits> hits;
  std::vector<mp::Process> ps;
  for (int i = 1; i <= 4; ++i) ps.emplace_back([](Hits* h, int v) { h->sum.fetch_add(v); return v; }, hits.get(), i);
  for (auto& p : ps) p.start();
  for (auto& p : ps) p.join();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(ps[i].exitcode(), i + 1);
  EXPECT_EQ(hits->sum.load(), 10);
}

TEST(Process, SentinelIsReadableOnceTheChildEnded) {
  mp::Process p([] { ::pause(); });
  p.start();
  ASSERT_GE(p.sentinel(), 0);
  EXPECT_FALSE(readable_now(p.sentinel()));
  p.kill();
  pollfd pf{p.sentinel(), POLLIN, 0};
  ASSERT_EQ(::poll(&pf, 1, 30000), 1);
  p.join();
  EXPECT_EQ(p.exitcode(), -SIGKILL);
}

TEST(Process, ActiveChildrenListsRunningChildrenOnly) {
  mp::Process p([] { ::pause(); });
  p.start();
  auto kids = mp::active_children();
  EXPECT_NE(std::find(kids.begin(), kids.end(), p.pid()), kids.end());
  p.kill();
  p.join();
  kids = mp::active_children();
  EXPECT_EQ(std::find(kids.begin(), kids.end(), p.pid()), kids.end());
}

TEST(Process, NoZombieAfterJoin) {
  mp::Process p([] { return 0; });
  p.start();
  const pid_t pid = p.pid();
  p.join();
  EXPECT_FALSE(mp::process_exists(pid)) << "a joined child must be reaped, not a zombie";
}

TEST(Process, NoZombieAfterDestroyingAnEndedProcess) {
  pid_t pid;
  {
    mp::Process p([] { return 0; });
    p.start();
    pid = p.pid();
    ASSERT_TRUE(mp::pidfd_wait(p.sentinel(), mp::Deadline::after(30s)));
  }
  EXPECT_FALSE(mp::process_exists(pid));
}

TEST(Process, DestroyingARunningProcessLetsItRunAndTheSupervisorReapsIt) {
  struct Flag {
    std::atomic<int> done;
  };
  mptest::Shared<Flag> flag;
  pid_t pid;
  {
    mp::Process p([](Flag* f) { std::this_thread::sleep_for(150ms); f->done = 1; }, flag.get());
    p.start();
    pid = p.pid();
  }  // destroyed while running: not killed, not waited for
  EXPECT_TRUE(mp::process_exists(pid));
  EXPECT_TRUE(gone_within(pid, 30s)) << "the supervisor must reap the child once it ends";
  EXPECT_EQ(flag->done.load(), 1) << "the child ran to its end";
}

TEST(Process, ADaemonMayNotStartChildren) {
  mp::Process d([] {
    mp::Process inner([] {});
    try {
      inner.start();
    } catch (const mp::Error& e) {
      return e.code() == mp::errc::not_supported ? 42 : 2;
    }
    return 3;
  });
  d.daemon(true);
  EXPECT_TRUE(d.daemon());
  d.start();
  d.join();
  EXPECT_EQ(d.exitcode(), 42);
}

TEST(Process, DaemonSeesItsNameAndCallerSignalMask) {
  // The daemon is forked by the supervisor thread (which blocks every signal); the child must
  // get the calling thread's mask back, or terminate() would not reach it.
  mp::Process d([] { ::pause(); });
  d.daemon(true).start();
  d.terminate();
  ASSERT_TRUE(d.join_for(30s));
  EXPECT_EQ(d.exitcode(), -SIGTERM);
}

TEST(Process, ChildrenStillRunningAtExitAreJoinedAndDaemonsKilled) {
  struct Out {
    std::atomic<int> finished;  // set by the non-daemon grandchild at its end
    std::atomic<pid_t> child, daemon;
  };
  mptest::Shared<Out> out;
  const pid_t middle = mptest::spawn([&] {
    mp::Process slow([](Out* o) { std::this_thread::sleep_for(200ms); o->finished = 1; }, out.get());
    mp::Process d([] { ::pause(); });
    d.daemon(true);
    slow.start();
    d.start();
    out->child = slow.pid();
    out->daemon = d.pid();
    std::exit(0);  // neither joined: the at-exit handler must join `slow` and kill `d`
    return 0;
  });
  EXPECT_EQ(mptest::wait_exit(middle, 30s), 0);
  EXPECT_EQ(out->finished.load(), 1) << "the middle process must have waited for its non-daemon child";
  EXPECT_FALSE(mp::process_exists(out->child.load())) << "and reaped it";
  EXPECT_TRUE(gone_within(out->daemon.load(), 30s)) << "its daemon must be gone";
}

TEST(Process, ATargetThatReturnsJoinsItsOwnChildren) {
  struct Out {
    std::atomic<int> finished;
  };
  mptest::Shared<Out> out;
  mp::Process p([](Out* o) {
    mp::Process inner([](Out* o2) { std::this_thread::sleep_for(100ms); o2->finished = 1; }, o);
    inner.start();
    return 0;  // not joined: the child joins it before it exits, as Python's does
  }, out.get());
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_EQ(out->finished.load(), 1);
}

TEST(Process, CpuCountIsPositive) { EXPECT_GE(mp::cpu_count(), 1u); }
