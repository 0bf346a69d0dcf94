// Tutorials 000, 003 and 004, "守护进程": a daemon child ends when the main program's code ends,
// a normal child is waited for, and a daemon may not start children of its own.
//
// Program 1 (003):                              Program 2 (004):
//   def task(name):                               def func1(): print("这是孙子")
//       print('%s is piaoing' % name)             def func():
//       time.sleep(random.randrange(1, 3))            print("这是儿子"); time.sleep(1)
//       print('%s is piao end' % name)                p = Process(target=func1); p.start()
//   p = Process(target=task, args=('egon',))      p = Process(target=func); p.daemon = True
//   p.daemon = True; p.start()                    p.start(); print(p.daemon); time.sleep(5)
//   print('主......')                             print("这是爸爸")
//   # prints only 主......: the daemon dies        # True / 这是儿子 / AssertionError: daemonic
//                                                 # processes are not allowed to have children / 这是爸爸
// Program 3 (004):
//   def func(): time.sleep(10); print("子进程代码结束")
//   p = Process(target=func)   [# p.daemon = True]
//   p.start(); time.sleep(3); print("父进程代码执行结束")
//   # normal child: 父进程代码执行结束 / 子进程代码结束     daemon: 父进程代码执行结束 only
//
// Each Python program here runs as a child process (its "main"): when that child's code ends,
// it kills its daemons and joins its other children, as a Python main program does at exit.
// Sleeps are 100-300 ms. Exits 0 only if no daemon printed after its main ended, the normal
// child did finish, the daemon's start() of a child failed as Python's does, and each program
// printed the Python program's lines (transcript.hpp).
#include "transcript.hpp"

#include <multiproc/arena.hpp>
#include <multiproc/process.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace mp = multiproc;
using namespace std::chrono_literals;

namespace {

struct Flags {
  std::atomic<int> daemon_finished{0};     // program 1: must stay 0
  std::atomic<int> grandchild_refused{0};  // program 2: must become 1
  std::atomic<int> normal_finished{0};     // program 3, normal child: must become 1
  std::atomic<int> timer_finished{0};      // program 3, daemon child: must stay 0
};

using tutorial::say;

int program1(Flags& f) {
  mp::Process p(
      [](Flags& fl) {
        say("%s is piaoing", "egon");
        std::this_thread::sleep_for(300ms);
        say("%s is piao end", "egon");
        fl.daemon_finished = 1;
      },
      std::ref(f));
  p.daemon(true);
  p.start();
  say("主......");
  return 0;  // the daemon dies here (it usually has not even printed its first line)
}

int program2(Flags& f) {
  mp::Process p(
      [](Flags& fl) {
        say("这是儿子");
        std::this_thread::sleep_for(100ms);
        mp::Process grandchild([] { say("这是孙子"); });
        try {
          grandchild.start();
        } catch (const mp::Error& e) {
          if (e.code() == mp::errc::not_supported) fl.grandchild_refused = 1;
          std::fprintf(stderr, "AssertionError: daemonic processes are not allowed to have children\n");
          return 1;  // Python's child dies of the AssertionError
        }
        return 0;
      },
      std::ref(f));
  p.daemon(true);
  p.start();
  say("%s", p.daemon() ? "True" : "False");
  std::this_thread::sleep_for(300ms);
  say("这是爸爸");
  return 0;
}

int program3(Flags& f, bool daemonic) {
  mp::Process p(
      [](Flags& fl, bool d) {
        std::this_thread::sleep_for(200ms);
        say("子进程代码结束");
        (d ? fl.timer_finished : fl.normal_finished) = 1;
      },
      std::ref(f), daemonic);
  p.daemon(daemonic);
  p.start();
  std::this_thread::sleep_for(50ms);
  say("父进程代码执行结束");
  return 0;  // a normal child is joined now; a daemon is killed
}

bool run(std::function<int()> program) {
  mp::Process main_of_program(std::move(program));
  main_of_program.start();
  main_of_program.join();
  return main_of_program.exitcode() == 0;
}

}  // namespace

int main() {
  tutorial::Transcript::open();
  mp::Arena arena = mp::Arena::create(1 << 16);
  Flags& f = arena.make<Flags>("flags");
  using tutorial::expect;
  using tutorial::section;
  // The printed lines of each program. Program 1's daemon prints "egon is piaoing" only if it
  // runs before the main code ends (Python's usually does not); program 2's "True" and
  // "这是儿子" come from two processes, in either order.
  int mark = section("003-4");
  bool ok = run([&] { return program1(f); });
  const auto p1 = tutorial::Transcript::get().since(mark);
  const bool p1_ok = p1 == std::vector<std::string>{"主......"} || p1 == std::vector<std::string>{"egon is piaoing", "主......"} ||
                     p1 == std::vector<std::string>{"主......", "egon is piaoing"};
  if (!p1_ok) tutorial::dump("003-4: printed", p1);
  ok = p1_ok && ok;
  mark = section("004-11");
  ok = run([&] { return program2(f); }) && ok;
  ok = tutorial::expect_unordered(mark, {"True", "这是儿子", "这是爸爸"}, "004-11") &&
       tutorial::Transcript::get().since(mark).back() == "这是爸爸" && ok;
  mark = section("004-12");
  ok = run([&] { return program3(f, false); }) && ok;
  ok = expect(mark, {"父进程代码执行结束", "子进程代码结束"}, "004-12") && ok;
  mark = section("004-13");
  ok = run([&] { return program3(f, true); }) && ok;
  ok = expect(mark, {"父进程代码执行结束"}, "004-13") && ok;
  ok = ok && f.daemon_finished == 0 && f.grandchild_refused == 1 && f.normal_finished == 1 && f.timer_finished == 0;
  return ok ? 0 : 1;
}
