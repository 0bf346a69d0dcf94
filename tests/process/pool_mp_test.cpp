// Pool workers that die: exactly the task they ran fails with broken_pool, a replacement
// starts, the pool goes on; terminate() with work outstanding; max_tasks_per_child;
// a throwing initializer; work stealing. Every wait is bounded.
#include <multiproc/pidfd.hpp>
#include <multiproc/pool.hpp>

#include <gtest/gtest.h>
#include "lsan_children.hpp"
#include "mptest.hpp"
#include "pool_test_util.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace mp = multiproc;
using namespace std::chrono_literals;
using pooltest::board;

namespace {

int square(int x) { return x * x; }
pid_t worker_pid(int) { return ::getpid(); }
pid_t pid_after_sleep(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ::getpid();
}
int hang_as_victim(int) {
  board()->victim = ::getpid();
  for (;;) ::pause();
}
int sleep_long(int) {
  board()->started.fetch_add(1);
  std::this_thread::sleep_for(60s);
  return 1;
}
int die_by(int how) {
  if (how == 0) std::abort();
  if (how == 1) ::raise(SIGKILL);
  if (how == 2) std::_Exit(7);
  std::exit(0);  // a task that ends its worker "normally" mid-task
}
void throwing_initializer() { throw std::runtime_error("no database today"); }

bool wait_until(const std::function<bool()>& pred) {
  const auto end = std::chrono::steady_clock::now() + 30s;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

std::string broken_message(mp::Future<int>& f) {
  try {
    f.get();
  } catch (const mp::Error& e) {
    if (e.code() != mp::errc::broken_pool) return std::string("wrong code: ") + e.what();
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST(PoolMp, AKilledWorkerFailsExactlyItsTaskAndIsReplaced) {
  board()->victim = 0;
  mp::Pool pool(2);
  const std::vector<pid_t> before = mp::active_children();
  auto victim = pool.apply_async(hang_as_victim, 0);
  std::vector<mp::Future<int>> others;
  for (int i = 0; i < 40; ++i) others.push_back(pool.apply_async(square, i));
  ASSERT_TRUE(wait_until([] { return board()->victim.load() != 0; }));
  const pid_t dead = board()->victim.load();
  ASSERT_EQ(::kill(dead, SIGKILL), 0);

  ASSERT_TRUE(victim.wait_for(30s)) << "a dead worker's task must fail, not hang";
  const std::string msg = broken_message(victim);
  EXPECT_NE(msg.find("died running this task"), std::string::npos) << msg;
  EXPECT_NE(msg.find("killed by signal 9"), std::string::npos) << msg;
  for (int i = 0; i < 40; ++i) EXPECT_EQ(others[i].get(), i * i) << "only the dead worker's task fails";

  // The pool goes on, with a new worker in place of the dead one.
  std::vector<int> in(200);
  std::iota(in.begin(), in.end(), 0);
  const auto out = pool.map(square, in);
  for (int i = 0; i < 200; ++i) ASSERT_EQ(out[i], i * i);
  std::set<pid_t> pids;
  for (int i = 0; i < 20; ++i) pids.insert(pool.apply(pid_after_sleep, 2));
  EXPECT_EQ(pids.count(dead), 0u);
  EXPECT_FALSE(mp::process_exists(dead)) << "the dead worker is reaped";
  EXPECT_EQ(pool.processes(), 2u);
}

TEST(PoolMp, AbortExitAndSigkillInATaskEachFailOnlyThatTask) {
  mp::Pool pool(2);
  struct Case {
    int how;
    const char* expect;
  };
  for (Case c : {Case{0, "killed by signal 6 (SIGABRT)"}, Case{1, "killed by signal 9 (SIGKILL)"},
                 Case{2, "exited with code 7"}, Case{3, "exited with code 0"}}) {
    auto bad = pool.apply_async(die_by, c.how);
    auto good = pool.apply_async(square, c.how + 10);
    ASSERT_TRUE(bad.wait_for(30s));
    const std::string msg = broken_message(bad);
    EXPECT_NE(msg.find(c.expect), std::string::npos) << msg;
    EXPECT_EQ(good.get(), (c.how + 10) * (c.how + 10));
  }
  EXPECT_EQ(pool.map(square, std::vector<int>{1, 2, 3}), (std::vector<int>{1, 4, 9}));
}

TEST(PoolMp, TerminateWithTasksOutstandingFailsTheirFutures) {
  board()->started = 0;
  mp::Pool pool(2);
  std::vector<mp::Future<int>> fs;
  for (int i = 0; i < 6; ++i) fs.push_back(pool.apply_async(sleep_long, i));  // 2 run, 4 wait
  ASSERT_TRUE(wait_until([] { return board()->started.load() >= 2; }));
  const auto children = mp::active_children();
  pool.terminate();  // returns without waiting out the 60 s tasks
  for (auto& f : fs) {
    ASSERT_TRUE(f.wait_for(30s));
    try {
      f.get();
      ADD_FAILURE() << "a terminated task must fail";
    } catch (const mp::Error& e) {
      EXPECT_EQ(e.code(), mp::errc::closed) << e.what();
    }
  }
  EXPECT_THROW(pool.apply_async(square, 1), mp::Error);
  for (pid_t p : children) EXPECT_FALSE(mp::process_exists(p)) << "terminate reaps the workers";
}

TEST(PoolMp, DestroyingAPoolWithWorkOutstandingIsPrompt) {
  board()->started = 0;
  mp::Future<int> f;
  {
    mp::Pool pool(1);
    f = pool.apply_async(sleep_long, 0);
    ASSERT_TRUE(wait_until([] { return board()->started.load() >= 1; }));
  }  // terminate(), as Python's `with Pool() as p:` does
  ASSERT_TRUE(f.ready());
  EXPECT_THROW(f.get(), mp::Error);
}

TEST(PoolMp, MaxTasksPerChildReplacesWorkers) {
  mp::PoolOptions o;
  o.max_tasks_per_child = 2;
  o.chunksize = 1;
  mp::Pool pool(2, o);
  const auto pids = pool.map(worker_pid, std::vector<int>(12, 0));
  std::map<pid_t, int> per;
  for (pid_t p : pids) ++per[p];
  for (auto [pid, n] : per) EXPECT_LE(n, 2) << "worker " << pid << " ran more than max_tasks_per_child tasks";
  EXPECT_GE(per.size(), 6u);
  EXPECT_EQ(pool.apply(square, 5), 25);
}

TEST(PoolMp, AThrowingInitializerBreaksThePoolInsteadOfRespawningForever) {
  mp::PoolOptions o;
  o.initializer = throwing_initializer;
  mp::Pool pool(2, o);
  // The pool may be found broken when the task is submitted (submit throws) or while it waits
  // (its Future fails); either way with broken_pool and the initializer's message.
  std::string msg;
  try {
    auto f = pool.apply_async(square, 3);
    ASSERT_TRUE(f.wait_for(30s)) << "tasks of a pool whose workers cannot start must not hang";
    msg = broken_message(f);
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.code(), mp::errc::broken_pool);
    msg = e.what();
  }
  EXPECT_NE(msg.find("no database today"), std::string::npos) << msg;
  ASSERT_TRUE(wait_until([&] {
    try {
      pool.apply_async(square, 4).wait();
      return false;
    } catch (const mp::Error& e) {
      return e.code() == mp::errc::broken_pool;
    }
  })) << "a broken pool takes no more work";
}

TEST(PoolMp, AnIdleWorkerStealsATaskQueuedBehindALongOne) {
  mp::Pool pool(2);
  // Least loaded first, ties to the lowest slot: a -> w0, b -> w1, c -> w0 (behind a).
  auto a = pool.apply_async(pid_after_sleep, 1500);
  auto b = pool.apply_async(pid_after_sleep, 10);
  auto c = pool.apply_async(pid_after_sleep, 10);
  const pid_t pc = c.get();
  const pid_t pa = a.get();
  EXPECT_NE(pc, pa) << "c waited behind a instead of moving to the idle worker";
  EXPECT_EQ(pc, b.get());
}

namespace {
int square_after_spin(int x) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(50 + (x * 37) % 300);
  while (std::chrono::steady_clock::now() < until) {
  }
  return x * x;
}
}  // namespace

TEST(PoolMp, RandomWorkerKillsNeverLeaveAFutureUnresolved) {
  // SIGKILL lands anywhere: in a task, in Queue::get/put, between the claim and the state
  // change. Every Future must still resolve — with its value or with broken_pool.
  mp::Pool pool(2);
  std::mt19937 rng(12345);
  const int rounds = mptest::kill_rounds(40);
  int broken = 0;
  for (int r = 0; r < rounds; ++r) {
    std::vector<mp::Future<int>> fs;
    for (int i = 0; i < 60; ++i) fs.push_back(pool.apply_async(square_after_spin, i));
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 3000)(rng)));
    const auto kids = mp::active_children();
    if (!kids.empty()) ::kill(kids[std::uniform_int_distribution<std::size_t>(0, kids.size() - 1)(rng)], SIGKILL);
    for (int i = 0; i < 60; ++i) {
      ASSERT_TRUE(fs[i].wait_for(30s)) << "round " << r << " task " << i << " never resolved";
      try {
        EXPECT_EQ(fs[i].get(), i * i);
      } catch (const mp::Error& e) {
        EXPECT_EQ(e.code(), mp::errc::broken_pool) << e.what();
        ++broken;
      }
    }
  }
  std::printf("%d rounds with a SIGKILLed worker: %d tasks failed with broken_pool\n", rounds, broken);
  EXPECT_LE(broken, rounds) << "at most the one running task per killed worker fails";
  EXPECT_EQ(pool.map(square, std::vector<int>{1, 2, 3}), (std::vector<int>{1, 4, 9}));
}
