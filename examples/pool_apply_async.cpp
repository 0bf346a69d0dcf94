// The tutorials' Pool.apply_async programs (002, 004): asynchronous tasks, results through
// get(), and callbacks that run in the main process.
//
// 004, "apply_async":
//   def func(num): num += 1; return num
//   p = Pool(5); l = []
//   for i in range(10000): l.append(p.apply_async(func, args=(i,)))
//   p.close(); p.join(); print(time.time() - start)
//   [print(i.get()) for i in l]                           # 1 .. 10000
//
// 004, "回调函数的使用" (the callback runs in the main process, not in the worker):
//   def func(url):
//       ...; print('子进程的pid:%s,父进程的pid：%s' % (os.getpid(), os.getppid())); return url, text
//   def record_result(res):
//       url, text = res; print('回调函数的pid', os.getpid())   # == the main process's pid
//   print('主进程的pid', os.getpid())
//   for i in l: p.apply_async(func, args=(i,), callback=record_result)
//   p.close(); p.join()
//
// 002, "程序变形":
//   def f(x, y): print "worker:", os.getpid(); time.sleep(3); return x * y
//   result = pool.apply_async(f, args=(10, 4)); print result.get(timeout=4)    # 40
//
// 002, "进程间共享实例对象": 5 tasks each increment a shared counter 50 times under its lock.
//   p = Pool()
//   for i in range(5): p.apply_async(long_time_task, args=(str(i), counter))
//   print 'Waiting for all subprocesses done...'; p.close(); p.join()
//   print 'All subprocesses done.'; print counter.value()                     # 250
// Here the counter is a Value<int> in an Arena made before the Pool: the forked workers see it
// at the same address through a global pointer (task arguments must be trivially copyable
// values, not pointers). The "web pages" are six numbers instead of URLs.
//
// Sizes: 1000 tasks (and their 1000 results printed), 100 ms instead of 3 s, 1 ms instead of
// 10 ms. Exits 0 only if every result and callback is the expected one, and the printed lines
// are the Python programs' (transcript.hpp).
#include "transcript.hpp"

#include <multiproc/arena.hpp>
#include <multiproc/pool.hpp>
#include <multiproc/value.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <set>
#include <thread>
#include <unistd.h>
#include <vector>

namespace mp = multiproc;
using tutorial::say;
using tutorial::str;
using namespace std::chrono_literals;

namespace {

int func(int num) { return num + 1; }

struct Page {  // (url, text): what the tutorial's func returns
  int url;
  int length;
};
Page fetch(int url) {
  say("子进程的pid:%d,父进程的pid：%d", ::getpid(), ::getppid());
  return {url, url * 100};
}

int f(int x, int y) {
  say("worker: %d", ::getpid());
  std::this_thread::sleep_for(100ms);
  return x * y;
}

mp::Value<int>* g_counter = nullptr;  // set before the pool forks its workers

void long_time_task(int name) {
  std::this_thread::sleep_for(20ms);
  say("Run task %d (%d)... ", name, ::getpid());
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 50; ++i) {
    std::this_thread::sleep_for(1ms);
    std::scoped_lock hold(g_counter->get_lock());
    g_counter->store(g_counter->load() + 1);  // counter.increment()
  }
  say("Task %d runs %0.2f seconds.", name,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

}  // namespace

int main() {
  tutorial::Transcript::open();
  bool ok = true;
  {
    mp::Pool p(5);
    const auto start = std::chrono::steady_clock::now();
    std::vector<mp::Future<int>> l;
    for (int i = 0; i < 1000; ++i) l.push_back(p.apply_async(func, i));
    p.close();
    p.join();
    say("%f", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    for (int i = 0; i < 1000; ++i) {
      const int v = l[i].get();
      say("%d", v);  // [print(i.get()) for i in l]
      ok = ok && v == i + 1;
    }
    const auto lines = tutorial::Transcript::get().since(0);
    double elapsed = -1;
    ok = ok && lines.size() == 1001 && std::sscanf(lines[0].c_str(), "%lf", &elapsed) == 1 && elapsed >= 0;
    for (int i = 0; ok && i < 1000; ++i) ok = lines[static_cast<std::size_t>(i) + 1] == std::to_string(i + 1);
    if (!ok) std::fprintf(stderr, "output check failed: 004-40\n");
  }
  int mark = tutorial::Transcript::get().size();
  {
    struct Seen {
      std::mutex m;
      std::set<int> urls;
      bool all_in_main = true;
    } seen;
    const pid_t main_pid = ::getpid();
    mp::Pool p(5);
    say("主进程的pid %d", main_pid);
    for (int url : {1, 2, 3, 4, 5, 6})
      p.apply_async(fetch, url).then([&seen, main_pid](const Page& res) {
        say("回调函数的pid %d", ::getpid());  // the main process's pid
        std::lock_guard g(seen.m);
        seen.urls.insert(res.url);
        seen.all_in_main = seen.all_in_main && ::getpid() == main_pid && res.length == res.url * 100;
      });
    p.close();
    p.join();  // waits for the callbacks too
    ok = ok && seen.urls.size() == 6 && seen.all_in_main;
    // 主进程的pid first; six workers' lines (their parent: the main process) and six callbacks'
    // (in the main process), interleaved as results come in.
    const auto lines = tutorial::Transcript::get().since(mark);
    int workers = 0, callbacks = 0;
    for (std::size_t k = 1; k < lines.size(); ++k) {
      int child = 0, parent = 0;
      if (std::sscanf(lines[k].c_str(), "子进程的pid:%d,父进程的pid：%d", &child, &parent) == 2 && parent == main_pid && child != main_pid)
        ++workers;
      else if (lines[k] == str("回调函数的pid %d", main_pid))
        ++callbacks;
    }
    const bool printed = lines.size() == 13 && lines[0] == str("主进程的pid %d", main_pid) && workers == 6 && callbacks == 6;
    if (!printed) tutorial::dump("004-41: printed", lines);
    ok = printed && ok;
  }
  mark = tutorial::Transcript::get().size();
  {
    mp::Pool pool(4);
    auto result = pool.apply_async(f, 10, 4);
    const auto v = result.get_for(4s);
    say("%d", v.value_or(-1));
    ok = ok && v == 40;
    const auto lines = tutorial::Transcript::get().since(mark);
    int worker = 0;
    const bool printed = lines.size() == 2 && std::sscanf(lines[0].c_str(), "worker: %d", &worker) == 1 &&
                         worker != ::getpid() && lines[1] == "40";
    if (!printed) tutorial::dump("002-12: printed", lines);
    ok = printed && ok;
  }
  mark = tutorial::Transcript::get().size();
  {
    mp::Arena arena = mp::Arena::create(1 << 16);
    g_counter = &arena.make<mp::Value<int>>("counter", 0);
    say("Parent process %d.", ::getpid());
    mp::Pool p;
    for (int i = 0; i < 5; ++i) p.apply_async(long_time_task, i);
    say("Waiting for all subprocesses done...");
    p.close();
    p.join();
    say("All subprocesses done.");
    say("%d", g_counter->load());
    ok = ok && g_counter->load() == 250;
    // First and last lines in order; between them "Waiting..." and each task's two lines, as
    // the tasks run.
    const auto lines = tutorial::Transcript::get().since(mark);
    std::set<int> ran, timed;
    int waiting = 0;
    for (std::size_t k = 1; k + 2 < lines.size(); ++k) {
      int name = -1, pid = 0;
      double secs = -1;
      if (lines[k] == "Waiting for all subprocesses done...")
        ++waiting;
      else if (std::sscanf(lines[k].c_str(), "Run task %d (%d)... ", &name, &pid) == 2 && pid != ::getpid())
        ran.insert(name);
      else if (std::sscanf(lines[k].c_str(), "Task %d runs %lf seconds.", &name, &secs) == 2 && secs >= 0)
        timed.insert(name);
    }
    const std::set<int> all{0, 1, 2, 3, 4};
    const bool printed = lines.size() == 14 && lines[0] == str("Parent process %d.", ::getpid()) && waiting == 1 && ran == all &&
                         timed == all && lines[12] == "All subprocesses done." && lines[13] == "250";
    if (!printed) tutorial::dump("002-24: printed", lines);
    ok = printed && ok;
  }
  return ok ? 0 : 1;
}
