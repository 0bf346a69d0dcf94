// Tutorial 002, "进程同步(加锁-Semaphore)": a Semaphore(3) lets at most three of five
// processes hold it at once.
//
//   def worker(s, i):
//       s.acquire()
//       print(multiprocessing.current_process().name + " acquire")
//       time.sleep(i)
//       print(multiprocessing.current_process().name + " release")
//       s.release()
//   s = multiprocessing.Semaphore(3)
//   for i in range(5):
//       p = multiprocessing.Process(target=worker, args=(s, i * 2)); p.start()
//
// Output (the order varies with scheduling; the tutorial's run):
//   Process-1 acquire / Process-1 release / Process-3 acquire / Process-2 acquire /
//   Process-5 acquire / Process-2 release / Process-4 acquire / Process-3 release /
//   Process-4 release / Process-5 release
// Here the sleeps are i * 20 ms. Exits 0 only if never more than three held it at once, all
// five ran, and each printed its acquire and release lines (transcript.hpp).
#include "transcript.hpp"

#include <multiproc/arena.hpp>
#include <multiproc/process.hpp>
#include <multiproc/semaphore.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace mp = multiproc;
using tutorial::say;

namespace {

struct Count {
  std::atomic<int> inside{0};
  std::atomic<int> most{0};
  std::atomic<int> done{0};
};

void worker(mp::Semaphore& s, int i, Count& c) {
  s.acquire();
  const int now = c.inside.fetch_add(1) + 1;
  for (int m = c.most.load(); now > m && !c.most.compare_exchange_weak(m, now);) {
  }
  say("%s acquire", mp::current_process().name.c_str());
  std::this_thread::sleep_for(std::chrono::milliseconds(i * 10));
  say("%s release", mp::current_process().name.c_str());
  c.inside.fetch_sub(1);
  c.done.fetch_add(1);
  s.release();
}

}  // namespace

int main() {
  tutorial::Transcript::open();
  mp::Arena arena = mp::Arena::create(1 << 16);
  auto& s = arena.make<mp::Semaphore>("s", 3u);
  Count& c = arena.make<Count>("count");
  std::vector<mp::Process> ps;
  for (int i = 0; i < 5; ++i) ps.emplace_back(worker, std::ref(s), i * 2, std::ref(c));
  for (auto& p : ps) p.start();
  bool ok = true;
  for (auto& p : ps) {
    p.join();
    ok = ok && p.exitcode() == 0;
  }
  std::vector<std::string> want;  // the printed lines, in scheduling order
  for (auto& p : ps) {
    want.push_back(p.name() + " acquire");
    want.push_back(p.name() + " release");
  }
  ok = tutorial::expect_unordered(0, want, "002-18") && ok;
  return ok && c.most.load() <= 3 && c.done.load() == 5 && s.value() == 3 ? 0 : 1;
}
