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
// child did finish, and the daemon's start() of a child failed as Python's does.
#include <multiproc/arena.hpp>
#include <multiproc/process.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <thread>

namespace mp = multiproc;
using namespace std::chrono_literals;

namespace {

struct Flags {
  std::atomic<int> daemon_finished{0};     // program 1: must stay 0
  std::atomic<int> grandchild_refused{0};  // program 2: must become 1
  std::atomic<int> normal_finished{0};     // program 3, normal child: must become 1
  std::atomic<int> timer_finished{0};      // program 3, daemon child: must stay 0
};

void say(const char* s) {
  std::printf("%s\n", s);
  std::fflush(stdout);
}

int program1(Flags& f) {
  mp::Process p(
      [](Flags& fl) {
        std::printf("%s is piaoing\n", "egon");
        std::fflush(stdout);
        std::this_thread::sleep_for(300ms);
        std::printf("%s is piao end\n", "egon");
        std::fflush(stdout);
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
  std::printf("%s\n", p.daemon() ? "True" : "False");
  std::fflush(stdout);
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
  mp::Arena arena = mp::Arena::create(1 << 16);
  Flags& f = arena.make<Flags>("flags");
  bool ok = run([&] { return program1(f); });
  say("--");
  ok = run([&] { return program2(f); }) && ok;
  say("--");
  ok = run([&] { return program3(f, false); }) && ok;
  say("--");
  ok = run([&] { return program3(f, true); }) && ok;
  ok = ok && f.daemon_finished == 0 && f.grandchild_refused == 1 && f.normal_finished == 1 && f.timer_finished == 0;
  return ok ? 0 : 1;
}
