// Tutorial 001, "concurrent.futures 模块的多进程编程": ProcessPoolExecutor's submit, map,
// result(timeout) and shutdown.
//
//   def task(a, b):
//       time.sleep(1)
//       return a * b
//   executor = ProcessPoolExecutor(max_workers=6)
//   future = executor.submit(task, 2, 3)
//   print(future.result(timeout=5))                   # 6
//   results = executor.map(task, [1, 2, 3], [4, 5, 6])
//   for r in results: print(r)                       # 4 / 10 / 18
//   executor.shutdown(wait=True)
//   with ProcessPoolExecutor() as ex:                # the with-form shuts down at its end
//       fs = [ex.submit(task, i, i) for i in range(4)]
//       for f in as_completed(fs): ...
//
// Executor::map takes one range: the two lists are zipped into pairs of a trivially copyable
// struct. The sleeps are 20 ms. Exits 0 only if every result is the expected one and the
// printed lines are these (transcript.hpp).
#include "transcript.hpp"

#include <multiproc/pool.hpp>

#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

namespace mp = multiproc;
using tutorial::say;
using namespace std::chrono_literals;

namespace {

int task(int a, int b) {
  std::this_thread::sleep_for(20ms);
  return a * b;
}

struct Args {
  int a, b;
};
int task_of(Args x) { return task(x.a, x.b); }

}  // namespace

int main() {
  tutorial::Transcript::open();
  bool ok = true;
  {
    mp::Executor executor(6);
    auto future = executor.submit(task, 2, 3);
    const auto r = future.get_for(5s);  // result(timeout=5)
    say("%d", r.value_or(-1));
    ok = ok && r == 6;
    const std::vector<Args> zipped{{1, 4}, {2, 5}, {3, 6}};
    const std::vector<int> results = executor.map(task_of, zipped);
    for (int x : results) say("%d", x);
    ok = ok && results == std::vector<int>{4, 10, 18};
    executor.shutdown(true);
    try {
      executor.submit(task, 1, 1);
      ok = false;
    } catch (const mp::Error& e) {  // Python: RuntimeError: cannot schedule new futures after shutdown
      say("RuntimeError: cannot schedule new futures after shutdown");
    }
  }
  {
    std::vector<mp::Future<int>> fs;
    {
      mp::Executor ex;  // cpu_count() workers
      for (int i = 0; i < 4; ++i) fs.push_back(ex.submit(task, i, i));
    }  // the destructor is shutdown(wait=True): every future is done here
    for (int i = 0; i < 4; ++i) {
      ok = ok && fs[i].ready() && fs[i].get() == i * i;
      say("%d", fs[i].get());
    }
  }
  ok = tutorial::expect(0, {"6", "4", "10", "18", "RuntimeError: cannot schedule new futures after shutdown", "0", "1", "4", "9"},
                       "001-o, 001-p") &&
       ok;
  return ok ? 0 : 1;
}
