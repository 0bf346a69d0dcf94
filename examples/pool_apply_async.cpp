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
// Sizes: 1000 tasks (the first 5 results printed), 100 ms instead of 3 s, 1 ms instead of
// 10 ms. Exits 0 only if every result and callback is the expected one.
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
using namespace std::chrono_literals;

namespace {

int func(int num) { return num + 1; }

struct Page {  // (url, text): what the tutorial's func returns
  int url;
  int length;
};
Page fetch(int url) {
  std::printf("子进程的pid:%d,父进程的pid：%d\n", ::getpid(), ::getppid());
  std::fflush(stdout);
  return {url, url * 100};
}

int f(int x, int y) {
  std::printf("worker: %d\n", ::getpid());
  std::fflush(stdout);
  std::this_thread::sleep_for(100ms);
  return x * y;
}

mp::Value<int>* g_counter = nullptr;  // set before the pool forks its workers

void long_time_task(int name) {
  std::this_thread::sleep_for(20ms);
  std::printf("Run task %d (%d)... \n", name, ::getpid());
  std::fflush(stdout);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 50; ++i) {
    std::this_thread::sleep_for(1ms);
    std::scoped_lock hold(g_counter->get_lock());
    g_counter->store(g_counter->load() + 1);  // counter.increment()
  }
  std::printf("Task %d runs %0.2f seconds.\n", name,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  std::fflush(stdout);
}

}  // namespace

int main() {
  bool ok = true;
  {
    mp::Pool p(5);
    const auto start = std::chrono::steady_clock::now();
    std::vector<mp::Future<int>> l;
    for (int i = 0; i < 1000; ++i) l.push_back(p.apply_async(func, i));
    p.close();
    p.join();
    std::printf("%f\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    for (int i = 0; i < 1000; ++i) {
      const int v = l[i].get();
      if (i < 5) std::printf("%d\n", v);
      ok = ok && v == i + 1;
    }
    std::printf("... (%d results)\n", 1000);
  }
  {
    struct Seen {
      std::mutex m;
      std::set<int> urls;
      bool all_in_main = true;
    } seen;
    const pid_t main_pid = ::getpid();
    mp::Pool p(5);
    std::printf("主进程的pid %d\n", main_pid);
    std::fflush(stdout);
    for (int url : {1, 2, 3, 4, 5, 6})
      p.apply_async(fetch, url).then([&seen, main_pid](const Page& res) {
        std::printf("回调函数的pid %d\n", ::getpid());  // the main process's pid
        std::fflush(stdout);
        std::lock_guard g(seen.m);
        seen.urls.insert(res.url);
        seen.all_in_main = seen.all_in_main && ::getpid() == main_pid && res.length == res.url * 100;
      });
    p.close();
    p.join();  // waits for the callbacks too
    ok = ok && seen.urls.size() == 6 && seen.all_in_main;
  }
  {
    mp::Pool pool(4);
    auto result = pool.apply_async(f, 10, 4);
    const auto v = result.get_for(4s);
    std::printf("%d\n", v.value_or(-1));
    ok = ok && v == 40;
  }
  {
    mp::Arena arena = mp::Arena::create(1 << 16);
    g_counter = &arena.make<mp::Value<int>>("counter", 0);
    std::printf("Parent process %d.\n", ::getpid());
    mp::Pool p;
    for (int i = 0; i < 5; ++i) p.apply_async(long_time_task, i);
    std::printf("Waiting for all subprocesses done...\n");
    std::fflush(stdout);
    p.close();
    p.join();
    std::printf("All subprocesses done.\n");
    std::printf("%d\n", g_counter->load());
    ok = ok && g_counter->load() == 250;
  }
  return ok ? 0 : 1;
}
