// The tutorials' Process programs: creating a child from a function and from a "Process
// subclass", start/join, and the name and pid properties (003, 004, 001).
//
// Sections, in the tutorials' order (see examples/README.md for the full map):
//   003-1  piao by function      Process(target=piao, args=('egon',)) x2; print('主.....')
//   003-2  piao by subclass      class Piao(Process): run(self) prints self.name
//   003-3  join                  task prints its pid twice; p1.join(); p2.join(); print('主')
//   004-1  func("cdc")           parent's pid, then the child's name, pid and parent pid
//   004-2  MyProcess(Process)    run(): print("开始启动子进程")
//   004-3  five children         "子进程 X，父进程 Y" x5
//   004-7  without join          child and parent print concurrently (interleaved)
//   004-8  with join             the child's lines all come before the parent's
//   004-9  ten children, joined  num ** 2 for 0..9 in any order, then "计算结束"
//   004-10 name and pid          p.name = f"cdc{i}" before start; print p.name and p.pid
//   001-a  square_numbers        the main process starts one child and joins it
//   001-b  Process(target, args) args=(x,) — the one-element tuple needs its comma
//   001-c  Process subclass      __init__ stores the argument, run() does the work
//
// A Python subclass of Process overrides run(); here a class with a run() member is the
// target (Process(&Piao::run, Piao{...})) and the process's name, which the subclass set with
// self.name, is set with Process::name() and read back in the child with current_process().
// A Python main program joins its non-daemon children at exit; each section here ends by
// joining them, which is the same thing at the end of that "program".
//
// Sleeps are 10-50 ms instead of 1-5 s; 004-7/004-8 print 20 and 10 lines instead of 500 and
// 100. Exits 0 only if every section printed the Python program's lines (see transcript.hpp).
#include "transcript.hpp"

#include <multiproc/process.hpp>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace mp = multiproc;
using tutorial::expect;
using tutorial::expect_unordered;
using tutorial::say;
using tutorial::section;
using tutorial::str;

namespace {

void nap_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

int randrange(int lo, int hi) {  // random.randrange(lo, hi): lo <= n < hi
  static thread_local std::mt19937 rng(static_cast<unsigned>(::getpid()));
  return std::uniform_int_distribution<int>(lo, hi - 1)(rng);
}

bool all_ok(std::vector<mp::Process>& ps) {
  bool ok = true;
  for (auto& p : ps) {
    p.join();
    ok = ok && p.exitcode() == 0;
  }
  return ok;
}

// "a before b" among the lines since mark.
bool before(int mark, const std::string& a, const std::string& b) {
  const int i = tutorial::position(mark, a), j = tutorial::position(mark, b);
  if (i >= 0 && j >= 0 && i < j) return true;
  std::fprintf(stderr, "output check failed: \"%s\" should come before \"%s\"\n", a.c_str(), b.c_str());
  return false;
}

// ---- 003 ---------------------------------------------------------------------------------------

void piao(std::string name) {
  say("%s piaoing", name.c_str());
  nap_ms(10 * randrange(1, 5));
  say("%s piao end", name.c_str());
}

bool piao_by_function() {
  const int mark = section("003-1 创建并开启子进程的方式一");
  std::vector<mp::Process> ps;
  ps.emplace_back(piao, std::string("egon"));  // args=('egon',)
  ps.emplace_back(piao, std::string("alex"));
  for (auto& p : ps) p.start();
  say("主.....");
  bool ok = all_ok(ps);  // the program's end: its non-daemon children are joined
  ok = expect_unordered(mark, {"主.....", "egon piaoing", "alex piaoing", "egon piao end", "alex piao end"}, "003-1") && ok;
  return ok && before(mark, "egon piaoing", "egon piao end") && before(mark, "alex piaoing", "alex piao end");
}

// class Piao(Process): def __init__(self, name): super().__init__(); self.name = name
//                      def run(self): ...
struct Piao {
  void run() const {
    const std::string name = mp::current_process().name;  // self.name
    say("%s piaoing", name.c_str());
    nap_ms(10 * randrange(1, 5));
    say("%s piao end", name.c_str());
  }
};

bool piao_by_subclass() {
  const int mark = section("003-2 创建并开启子进程的方式二");
  std::vector<mp::Process> ps;
  ps.emplace_back(&Piao::run, Piao{}).name("egon");  // p1 = Piao('egon')
  ps.emplace_back(&Piao::run, Piao{}).name("alex");
  for (auto& p : ps) p.start();  // start() runs run() in the child
  say("主....");
  bool ok = all_ok(ps);
  ok = expect_unordered(mark, {"主....", "egon piaoing", "alex piaoing", "egon piao end", "alex piao end"}, "003-2") && ok;
  return ok && before(mark, "egon piaoing", "egon piao end") && before(mark, "alex piaoing", "alex piao end");
}

void task() {
  say("%d is piaoing", ::getpid());
  nap_ms(10 * randrange(1, 3));
  say("%d is piao end", ::getpid());
}

bool join_demo() {
  const int mark = section("003-3 Process对象的join方法");
  mp::Process p1(task), p2(task);
  p1.start();
  p2.start();
  p1.join();  // 等待p停止,才执行下一行代码
  p2.join();
  say("主");
  const bool ok = p1.exitcode() == 0 && p2.exitcode() == 0;
  const auto got = tutorial::Transcript::get().since(mark);
  return expect_unordered(mark,
                          {str("%d is piaoing", p1.pid()), str("%d is piaoing", p2.pid()), str("%d is piao end", p1.pid()),
                           str("%d is piao end", p2.pid()), "主"},
                          "003-3") &&
         !got.empty() && got.back() == "主" && ok;
}

// ---- 004 ---------------------------------------------------------------------------------------

void func_cdc(std::string name) {
  say("我是一个子进程%s，我的进程号是%d，我的父进程的进程号是%d", name.c_str(), ::getpid(), ::getppid());
}

bool create_directly() {
  const int mark = section("004-1 方式一：直接创建");
  say("我是父进程，我的进程号是%d", ::getpid());
  mp::Process p(func_cdc, std::string("cdc"));  // 实例化一个进程对象
  p.start();                                    // 开启一个子进程
  p.join();                                     // (at the program's end)
  return expect(mark,
                {str("我是父进程，我的进程号是%d", ::getpid()),
                 str("我是一个子进程cdc，我的进程号是%d，我的父进程的进程号是%d", p.pid(), ::getpid())},
                "004-1") &&
         p.exitcode() == 0;
}

struct MyProcess {  // class MyProcess(Process)
  void run() const { say("开始启动子进程"); }
};

bool create_by_class() {
  const int mark = section("004-2 方式二：通过类继承的方式来创建");
  mp::Process p(&MyProcess::run, MyProcess{});
  p.start();  // runs MyProcess.run in the child
  p.join();
  return expect(mark, {"开始启动子进程"}, "004-2") && p.exitcode() == 0;
}

bool five_children() {
  const int mark = section("004-3 方式三：开启多个不同的子进程");
  say("父进程 %d", ::getpid());
  std::vector<mp::Process> ps;
  for (int i = 0; i < 5; ++i) ps.emplace_back([] { say("子进程 %d，父进程 %d", ::getpid(), ::getppid()); });
  for (auto& p : ps) p.start();
  const bool ok = all_ok(ps);
  std::vector<std::string> want{str("父进程 %d", ::getpid())};
  for (auto& p : ps) want.push_back(str("子进程 %d，父进程 %d", p.pid(), ::getpid()));
  return expect_unordered(mark, want, "004-3") && tutorial::Transcript::get().since(mark).front() == want.front() && ok;
}

constexpr int kChildLines = 20, kParentLines = 10;

void child_prints() {
  for (int i = 0; i < kChildLines; ++i) {
    nap_ms(2);
    say("我是子进程");
  }
}

bool without_join() {
  const int mark = section("004-7 join: 父进程和子进程是异步执行的");
  mp::Process p(child_prints);
  p.start();
  for (int i = 0; i < kParentLines; ++i) {
    nap_ms(2);
    say("我是父进程");
  }
  p.join();  // the program's end waits for the child
  std::vector<std::string> want(kChildLines, "我是子进程");
  want.insert(want.end(), kParentLines, "我是父进程");
  return expect_unordered(mark, want, "004-7") && p.exitcode() == 0;
}

bool with_join() {
  const int mark = section("004-8 p.join() 使父进程和子进程变为同步执行");
  mp::Process p(child_prints);
  p.start();
  p.join();
  for (int i = 0; i < kParentLines; ++i) {
    nap_ms(2);
    say("我是父进程");
  }
  std::vector<std::string> want(kChildLines, "我是子进程");
  want.insert(want.end(), kParentLines, "我是父进程");
  return expect(mark, want, "004-8") && p.exitcode() == 0;
}

bool ten_children_joined() {
  const int mark = section("004-9 多个子进程和主进程实现同步");
  std::vector<mp::Process> p_l;  // 用于保存所有的子进程对象
  for (int i = 0; i < 10; ++i) {
    p_l.emplace_back(
        [](int num) {
          nap_ms(50);
          say("%d", num * num);
        },
        i);
    p_l.back().start();
  }
  const bool ok = all_ok(p_l);  // [p.join() for p in p_l]
  nap_ms(50);
  say("计算结束");
  std::vector<std::string> want;
  for (int i = 0; i < 10; ++i) want.push_back(std::to_string(i * i));
  want.push_back("计算结束");
  const auto got = tutorial::Transcript::get().since(mark);
  return expect_unordered(mark, want, "004-9") && got.back() == "计算结束" && ok;
}

bool name_and_pid() {
  const int mark = section("004-10 name 和 pid 属性");
  std::vector<mp::Process> ps;
  std::vector<std::string> want;
  for (int i = 0; i < 3; ++i) {
    mp::Process& p = ps.emplace_back([] { say("这里是子进程%d", ::getpid()); });
    p.name("cdc" + std::to_string(i));
    p.start();
    say("子进程%s开始执行，进程号%d", p.name().c_str(), p.pid());
    want.push_back(str("子进程%s开始执行，进程号%d", p.name().c_str(), p.pid()));
    want.push_back(str("这里是子进程%d", p.pid()));
  }
  const bool ok = all_ok(ps);
  return expect_unordered(mark, want, "004-10") && ok;
}

// ---- 001 (the stored text lost its code blocks: these follow the prose around them) -------------

void square_numbers() {
  say("子进程(pid:%d)执行 square_numbers", ::getpid());
  for (int i = 1; i <= 5; ++i) say("%d 的平方是 %d", i, i * i);
}

bool process_example() {
  const int mark = section("001-a Process 类 创建进程 和 使用的简单示例");
  say("主进程(pid:%d)", ::getpid());
  mp::Process process(square_numbers);
  process.start();  // 启动子进程
  process.join();   // 等待子进程执行完成
  say("子进程(pid:%d)执行完毕", process.pid());
  std::vector<std::string> want{str("主进程(pid:%d)", ::getpid()), str("子进程(pid:%d)执行 square_numbers", process.pid())};
  for (int i = 1; i <= 5; ++i) want.push_back(str("%d 的平方是 %d", i, i * i));
  want.push_back(str("子进程(pid:%d)执行完毕", process.pid()));
  return expect(mark, want, "001-a") && process.exitcode() == 0;
}

void worker(std::string name) { say("%s 正在执行 (pid:%d)", name.c_str(), ::getpid()); }

bool direct_instantiation() {
  const int mark = section("001-b 直接实例化Process类对象方式创建进程");
  mp::Process p(worker, std::string("进程1"));  // Process(target=worker, args=("进程1",))
  p.start();
  p.join();
  return expect(mark, {str("进程1 正在执行 (pid:%d)", p.pid())}, "001-b") && p.exitcode() == 0;
}

class WorkerProcess {  // class WorkerProcess(Process): __init__(self, n) stores n; run() works
 public:
  explicit WorkerProcess(int n) : n_(n) {}
  void run() const {
    int total = 0;
    for (int i = 1; i <= n_; ++i) total += i;
    say("%s: 1 + ... + %d = %d", mp::current_process().name.c_str(), n_, total);
  }

 private:
  int n_;
};

bool derived_class() {
  const int mark = section("001-c 使用Process派生新业务类方式创建进程");
  std::vector<mp::Process> ps;
  for (int n : {10, 100}) ps.emplace_back(&WorkerProcess::run, WorkerProcess(n));
  for (auto& p : ps) p.start();
  const bool ok = all_ok(ps);
  return expect_unordered(mark,
                          {str("%s: 1 + ... + 10 = 55", ps[0].name().c_str()), str("%s: 1 + ... + 100 = 5050", ps[1].name().c_str())},
                          "001-c") &&
         ok;
}

}  // namespace

int main() {
  tutorial::Transcript::open();
  bool ok = piao_by_function();
  ok = piao_by_subclass() && ok;
  ok = join_demo() && ok;
  ok = create_directly() && ok;
  ok = create_by_class() && ok;
  ok = five_children() && ok;
  ok = without_join() && ok;
  ok = with_join() && ok;
  ok = ten_children_joined() && ok;
  ok = name_and_pid() && ok;
  ok = process_example() && ok;
  ok = direct_instantiation() && ok;
  ok = derived_class() && ok;
  return ok ? 0 : 1;
}
