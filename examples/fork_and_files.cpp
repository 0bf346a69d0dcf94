// Tutorial 002's first programs: os.fork(), multiprocessing.Process with current_process().name,
// two processes reading two files, getpid/getppid, and the "多进程模板程序" (Python 2 code).
//
// Sections (see examples/README.md for the line numbers):
//   002-1 os.fork                  print pid; the child prints 0, the parent the child's pid
//   002-2 os.fork, annotated       the same, with the classmate's labels and '***' * 30 rules
//   002-3 current_process().name   5 processes, each started and joined in turn; print numList
//   002-4 read two files (own)     5 processes named wxh0..wxh4; 0 and 1 print a.py and b.py
//   002-5 read two files (mate)    one process per file, each joined before the next; "Done!"
//   002-6 read them concurrently   start both, then join both; "Done!"
//   002-7 os.getpid / getppid      sleeper('bob', ...) prints its pid and its parent's
//   002-8 多进程模板程序            two named processes fetch a page each and print its first 20 chars
//
// What differs from the Python, and why:
//   * os.fork is not multiprocessing: 002-1/2 call fork(2) themselves, and the parent waits for
//     the child (Python's does not) so that the next section starts with the output complete.
//   * The files e:\a.py and e:\b.py are made in a temporary directory. 002-6 as printed has
//     its start loop inside the append loop (an IndentationError, and otherwise a second start()
//     of the first process); the port does what its comment says: start all, then join all.
//   * 002-8 fetches http://www.sogou.com and http://www.baidu.com; a smoke test has no network,
//     so the "pages" are two local HTML files. Sleeps are 20-50 ms instead of 5-20 s.
//   * Python 2's `print numList` shows [<Process(Process-1, stopped)>, ...]; printed the same.
// Exits 0 only if every section printed the Python program's lines.
#include "transcript.hpp"

#include <multiproc/process.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace mp = multiproc;
using tutorial::expect;
using tutorial::expect_unordered;
using tutorial::say;
using tutorial::section;
using tutorial::str;
using namespace std::chrono_literals;

namespace {

std::string g_dir;  // the temporary directory standing in for e:\ (set before any fork)

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// fork(2), then in the child: fn(pid) and _exit(0); returns fork's result in the parent.
template <class F>
pid_t fork_both(F fn) {
  std::fflush(stdout);
  const pid_t pid = ::fork();
  if (pid < 0) std::exit(1);
  fn(pid);  // runs in both, as the Python code after os.fork() does
  if (pid == 0) {
    std::fflush(stdout);
    ::_exit(0);
  }
  return pid;
}

bool reaped(pid_t pid) {
  int status = 0;
  return ::waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

bool os_fork() {
  const int mark = section("002-1 os.fork()");
  const pid_t main_pid = ::getpid();
  say("%d", ::getpid());
  const pid_t child = fork_both([](pid_t pid) {
    say("%d", pid);  // 子进程id和0
    if (pid == 0)
      say("I am child process (%d) and my parent is %d.", ::getpid(), ::getppid());
    else
      say("I (%d) just created a child process (%d).", ::getpid(), pid);
  });
  const bool ok = reaped(child);
  const auto got = tutorial::Transcript::get().since(mark);
  return expect_unordered(mark,
                          {str("%d", main_pid), str("%d", child), "0",
                           str("I am child process (%d) and my parent is %d.", child, main_pid),
                           str("I (%d) just created a child process (%d).", main_pid, child)},
                          "002-1") &&
         got.front() == str("%d", main_pid) && ok;
}

bool os_fork_annotated() {
  const int mark = section("002-2 os.fork() (同学的解释)");
  const std::string rule(90, '*');  // '***' * 30
  const pid_t main_pid = ::getpid(), shell_pid = ::getppid();
  say("python文件的进程(主进程): %d", ::getpid());
  say("%s", rule.c_str());
  const pid_t child = fork_both([&](pid_t pid) {
    if (pid == 0) {
      say("执行子进程时pid是方法os.fork()返回的第二个值0");
      say("当前执行进程: %d 当前执行进程的父进程: %d", ::getpid(), ::getppid());
      say("%s", rule.c_str());
    } else {
      say("被创建的子进程: %d", pid);
      say("当前执行进程: %d 当前执行进程的父进程: %d", ::getpid(), ::getppid());
      say("%s", rule.c_str());
    }
  });
  const bool ok = reaped(child);
  return expect_unordered(mark,
                          {str("python文件的进程(主进程): %d", main_pid), rule, "执行子进程时pid是方法os.fork()返回的第二个值0",
                           str("当前执行进程: %d 当前执行进程的父进程: %d", child, main_pid), rule, str("被创建的子进程: %d", child),
                           str("当前执行进程: %d 当前执行进程的父进程: %d", main_pid, shell_pid), rule},
                          "002-2") &&
         ok;
}

void do_n(int n) {
  const std::string name = mp::current_process().name;  // 获取当前进程的名字
  say("%s starting", name.c_str());
  say("worker  %d", n);  // print "worker ", n
}

bool current_process_name() {
  const int mark = section("002-3 multiprocessing.current_process().name");
  std::vector<mp::Process> numList;
  std::vector<std::string> want;
  bool ok = true;
  for (int i = 0; i < 5; ++i) {
    mp::Process& p = numList.emplace_back(do_n, i);
    p.start();
    p.join();  // 进程的执行函数被执行完成才会执行后面的代码,所以打印结果中才都是顺序的
    say("Process end.");
    ok = ok && p.exitcode() == 0;
    want.push_back(p.name() + " starting");
    want.push_back(str("worker  %d", i));
    want.push_back("Process end.");
  }
  std::string list = "[";
  for (std::size_t i = 0; i < numList.size(); ++i)
    list += (i ? ", " : "") + str("<Process(%s, %s)>", numList[i].name().c_str(), numList[i].is_alive() ? "started" : "stopped");
  list += "]";
  say("%s", list.c_str());
  want.push_back("[<Process(Process-1, stopped)>, <Process(Process-2, stopped)>, <Process(Process-3, stopped)>, "
                 "<Process(Process-4, stopped)>, <Process(Process-5, stopped)>]");
  return expect(mark, want, "002-3") && ok;
}

void do_read(int n) {
  if (n == 0)
    say("%s", read_file(g_dir + "/a.py").c_str());
  else if (n == 1)
    say("%s", read_file(g_dir + "/b.py").c_str());
}

bool read_files_own() {
  const int mark = section("002-4 小练习: 用2个进程去读取两个文件 (自己的方法)");
  bool ok = true;
  for (int i = 0; i < 5; ++i) {
    mp::Process p(do_read, i);
    p.name("wxh" + std::to_string(i));
    p.start();
    p.join();
    ok = ok && p.exitcode() == 0;
  }
  say("Done");
  return expect(mark, {"print 'this is a.py'", "print 'this is b.py'", "Done"}, "002-4") && ok;
}

void readfile(std::string path) { say("%s", read_file(path).c_str()); }

bool read_files_mate() {
  const int mark = section("002-5 同学的方法");
  const std::vector<std::string> file_list{g_dir + "/a.py", g_dir + "/b.py"};
  bool ok = true;
  for (const auto& path : file_list) {
    mp::Process p(readfile, path);
    p.start();
    p.join();
    ok = ok && p.exitcode() == 0;
  }
  say("Done!");
  return expect(mark, {"print 'this is a.py'", "print 'this is b.py'", "Done!"}, "002-5") && ok;
}

bool read_files_concurrently() {
  const int mark = section("002-6 练习题变形: 都并发执行,在都执行完毕后才打印出done");
  const std::vector<std::string> file_list{g_dir + "/a.py", g_dir + "/b.py"};
  std::vector<mp::Process> process_list;
  for (const auto& path : file_list) process_list.emplace_back(readfile, path);
  for (auto& p : process_list) p.start();  // 先把所有的子程都是启动,然后再并发运行
  bool ok = true;
  for (auto& p : process_list) {  // 并发执行
    p.join();
    ok = ok && p.exitcode() == 0;
  }
  say("Done!");
  const auto got = tutorial::Transcript::get().since(mark);
  return expect_unordered(mark, {"print 'this is a.py'", "print 'this is b.py'", "Done!"}, "002-6") && got.back() == "Done!" && ok;
}

void sleeper(std::string name, double seconds) {
  say("Process ID  #%d", ::getpid());
  say("Parent Process ID #%d", ::getppid());
  say("%s will sleep for %g seconds", name.c_str(), seconds);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
}

bool getpid_getppid() {
  const int mark = section("002-7 os.fork()multiprocessing结合使用");
  mp::Process child_proc(sleeper, std::string("bob"), 0.05);
  child_proc.start();
  say("in parent process after child process start");
  say("parent process about to join child process");
  child_proc.join();
  const int joined = tutorial::Transcript::get().size();
  say("in parent process after child process join");
  say("the parent's parent process: %d", ::getppid());
  return expect_unordered(mark,
                          {str("Process ID  #%d", child_proc.pid()), str("Parent Process ID #%d", ::getpid()),
                           "bob will sleep for 0.05 seconds", "in parent process after child process start",
                           "parent process about to join child process"},
                          "002-7 (before join)", joined) &&
         expect(joined, {"in parent process after child process join", str("the parent's parent process: %d", ::getppid())},
                "002-7 (after join)") &&
         child_proc.exitcode() == 0;
}

void fetch(std::string url) {  // func1 / func2: urlopen(url).read(); print html[0:20]
  const std::string html = read_file(url);
  say("%s", html.substr(0, 20).c_str());
  std::this_thread::sleep_for(20ms);
}

bool template_program() {
  const int mark = section("002-8 多进程模板程序");
  mp::Process p1(fetch, g_dir + "/www.sogou.com.html");
  p1.name("gloryroad1");
  mp::Process p2(fetch, g_dir + "/www.baidu.com.html");
  p2.name("gloryroad2");
  p1.start();
  p2.start();
  p1.join();
  p2.join();
  std::this_thread::sleep_for(10ms);
  say("done!");
  return expect_unordered(mark, {"<!DOCTYPE html><html", "<!DOCTYPE html><!--S", "done!"}, "002-8") &&
         tutorial::Transcript::get().since(mark).back() == "done!" && p1.exitcode() == 0 && p2.exitcode() == 0;
}

}  // namespace

int main() {
  tutorial::Transcript::open();
  char dir[] = "/tmp/multiproc-files-XXXXXX";
  if (!::mkdtemp(dir)) return 1;
  g_dir = dir;
  write_file(g_dir + "/a.py", "print 'this is a.py'");
  write_file(g_dir + "/b.py", "print 'this is b.py'");
  write_file(g_dir + "/www.sogou.com.html", "<!DOCTYPE html><html lang=\"cn\"><head><title>搜狗</title></head></html>");
  write_file(g_dir + "/www.baidu.com.html", "<!DOCTYPE html><!--STATUS OK--><html><head><title>百度</title></head></html>");

  bool ok = os_fork();
  ok = os_fork_annotated() && ok;
  ok = current_process_name() && ok;
  ok = read_files_own() && ok;
  ok = read_files_mate() && ok;
  ok = read_files_concurrently() && ok;
  ok = getpid_getppid() && ok;
  ok = template_program() && ok;

  for (const char* f : {"a.py", "b.py", "www.sogou.com.html", "www.baidu.com.html"}) std::remove((g_dir + "/" + f).c_str());
  ::rmdir(dir);
  return ok ? 0 : 1;
}
