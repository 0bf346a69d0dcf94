// The tutorials' Semaphore and Event programs that semaphore_workers.cpp and event_start.cpp do
// not cover (004, 001).
//
//   004-21 Semaphore(5) alone      five acquire()s print 1111 .. 5555; the sixth blocks forever
//   004-22 多人同时就餐             20 guests, 5 seats: "第i位客人准备吃饭了" / "第i位客人吃完了"
//   001-g  Semaphore               4 processes, at most 2 inside at once
//   004-23 Event alone             False / True / aaaa / False, then e.wait() blocks forever
//   001-i  Event                   two processes wait until the main process sets the event
//
// Differences: Python's blocking acquire() / wait() on a semaphore with no keys or an event
// that nobody sets never returns (the programs hang there); the ports ask with
// try_acquire_for / wait_for(100 ms), which give up, so 6666 and bbbb are not printed, as in
// Python, and the example goes on. Meals take 10-50 ms instead of 1-5 s. 001's code blocks
// were lost in the stored text: 001-g and 001-i follow the prose ("用于限制可以同时访问某个资源
// 的进程数"; "一个进程可以设置或等待事件"). The semaphore sections also count how many processes
// were inside at once: never more than the semaphore's value.
// Exits 0 only if every section printed the Python program's lines.
#include "transcript.hpp"

#include <multiproc/arena.hpp>
#include <multiproc/event.hpp>
#include <multiproc/process.hpp>
#include <multiproc/semaphore.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace mp = multiproc;
using tutorial::expect;
using tutorial::expect_unordered;
using tutorial::note;
using tutorial::say;
using tutorial::section;
using tutorial::str;
using namespace std::chrono_literals;

namespace {

struct Inside {  // how many held the semaphore at once
  std::atomic<int> now{0};
  std::atomic<int> most{0};
  void enter() {
    const int n = now.fetch_add(1) + 1;
    for (int m = most.load(); n > m && !most.compare_exchange_weak(m, n);) {
    }
  }
  void leave() { now.fetch_sub(1); }
};

bool run_all(std::vector<mp::Process>& ps) {
  for (auto& p : ps) p.start();
  bool ok = true;
  for (auto& p : ps) {
    p.join();
    ok = ok && p.exitcode() == 0;
  }
  return ok;
}

bool semaphore_alone(mp::Arena& arena) {
  const int mark = section("004-21 Semaphore(5)");
  auto& sem = arena.make<mp::Semaphore>("sem", 5u);  // 可以有多少把钥匙，此处表示有5把
  for (int i = 1; i <= 5; ++i) {
    sem.acquire();  // 拿走钥匙，锁上门
    say("%d%d%d%d", i, i, i, i);
  }
  if (sem.try_acquire_for(100ms)) {  // Python: acquire() blocks here until someone returns a key
    say("6666");
  } else {
    note("the sixth acquire() would block forever: try_acquire_for(100ms) gave up");
  }
  return expect(mark, {"1111", "2222", "3333", "4444", "5555"}, "004-21") && sem.value() == 0;
}

bool dining(mp::Arena& arena) {
  const int mark = section("004-22 多人同时就餐");
  auto& sem = arena.make<mp::Semaphore>("seats", 5u);  // 允许5个人同时进入餐厅
  auto& inside = arena.make<Inside>("diners");
  std::vector<mp::Process> ps;
  for (int i = 0; i < 20; ++i)  // 来了20位客人
    ps.emplace_back(
        [](int n, mp::Semaphore& s, Inside& in) {
          s.acquire();  // 占一个位置吃饭
          in.enter();
          say("第%d位客人准备吃饭了", n);
          std::mt19937 rng(static_cast<unsigned>(::getpid()));
          std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(10, 50)(rng)));
          say("第%d位客人吃完了", n);
          in.leave();
          s.release();  // 吃完了，把位置腾出来给别人吃饭
        },
        i, std::ref(sem), std::ref(inside));
  const bool ok = run_all(ps);
  std::vector<std::string> want;
  for (int i = 0; i < 20; ++i) {
    want.push_back(str("第%d位客人准备吃饭了", i));
    want.push_back(str("第%d位客人吃完了", i));
  }
  note("at most %d guests ate at once", inside.most.load());
  return expect_unordered(mark, want, "004-22") && inside.most.load() <= 5 && sem.value() == 5 && ok;
}

bool semaphore_example(mp::Arena& arena) {
  const int mark = section("001-g Semaphore(信号量)");
  auto& sem = arena.make<mp::Semaphore>("sem2", 2u);  // 最多2个进程同时访问
  auto& inside = arena.make<Inside>("inside2");
  std::vector<mp::Process> ps;
  for (int i = 0; i < 4; ++i)
    ps.emplace_back(
        [](mp::Semaphore& s, Inside& in, int n) {
          s.acquire();
          in.enter();
          say("进程%d 获得信号量", n);
          std::this_thread::sleep_for(20ms);
          say("进程%d 释放信号量", n);
          in.leave();
          s.release();
        },
        std::ref(sem), std::ref(inside), i);
  const bool ok = run_all(ps);
  std::vector<std::string> want;
  for (int i = 0; i < 4; ++i) {
    want.push_back(str("进程%d 获得信号量", i));
    want.push_back(str("进程%d 释放信号量", i));
  }
  note("at most %d processes held it at once", inside.most.load());
  return expect_unordered(mark, want, "001-g") && inside.most.load() <= 2 && ok;
}

const char* py_bool(bool b) { return b ? "True" : "False"; }

bool event_alone(mp::Arena& arena) {
  const int mark = section("004-23 Event");
  auto& e = arena.make<mp::Event>("e");  // 实例化一个事件对象
  say("%s", py_bool(e.is_set()));        // False  此时wait应该是阻塞的
  e.set();
  say("%s", py_bool(e.is_set()));  // True  此时wait是非阻塞的
  e.wait();
  say("aaaa");
  e.clear();
  say("%s", py_bool(e.is_set()));  // False 此时wait是阻塞的，wait后面的代码无法继续执行
  if (e.wait_for(100ms)) {         // Python's e.wait(): blocks forever
    say("bbbb");
  } else {
    note("e.wait() would block forever: wait_for(100ms) gave up");
  }
  return expect(mark, {"False", "True", "aaaa", "False"}, "004-23");
}

bool event_example(mp::Arena& arena) {
  const int mark = section("001-i Event(事件)");
  auto& e = arena.make<mp::Event>("start");
  std::vector<mp::Process> ps;
  for (int i = 0; i < 2; ++i)
    ps.emplace_back(
        [](mp::Event& ev, int n) {
          say("进程%d 等待事件", n);
          ev.wait();
          say("进程%d 收到事件", n);
        },
        std::ref(e), i);
  for (auto& p : ps) p.start();
  std::this_thread::sleep_for(50ms);
  say("主进程 设置事件");
  e.set();
  bool ok = true;
  for (auto& p : ps) {
    p.join();
    ok = ok && p.exitcode() == 0;
  }
  const int set_at = tutorial::position(mark, "主进程 设置事件");
  const bool after = set_at >= 0 && set_at < tutorial::position(mark, "进程0 收到事件") &&
                     set_at < tutorial::position(mark, "进程1 收到事件");
  if (!after) std::fprintf(stderr, "output check failed: 001-i (收到事件 before 设置事件)\n");
  return expect_unordered(mark, {"进程0 等待事件", "进程1 等待事件", "主进程 设置事件", "进程0 收到事件", "进程1 收到事件"}, "001-i") &&
         after && ok;
}

}  // namespace

int main() {
  tutorial::Transcript::open();
  mp::Arena arena = mp::Arena::create(1 << 16);
  bool ok = semaphore_alone(arena);
  ok = dining(arena) && ok;
  ok = semaphore_example(arena) && ok;
  ok = event_alone(arena) && ok;
  ok = event_example(arena) && ok;
  return ok ? 0 : 1;
}
