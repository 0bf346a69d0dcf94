// Tutorial 000 (and 004), "多个进程共享同一打印终端": three processes print to one terminal; a
// Lock makes each one's two lines come out together ("由并发变成了串行").
//
//   def work(lock):
//       lock.acquire()
//       print('%s is running' % os.getpid())
//       time.sleep(2)
//       print('%s is done' % os.getpid())
//       lock.release()
//   lock = Lock()
//   for i in range(3):
//       p = Process(target=work, args=(lock,)); p.start()
//
// Output (pids vary): each pid's "is running" line is followed by its own "is done" line.
//   11601 is running
//   11601 is done
//   11602 is running
//   11602 is done
//   ...
// Here the sleep is 50 ms, and each child also logs what it printed into shared memory so the
// program can check the pairs: it exits 0 only if no two processes were ever inside at once
// and the printed lines are the pairs (transcript.hpp).
#include "transcript.hpp"

#include <multiproc/arena.hpp>
#include <multiproc/lock.hpp>
#include <multiproc/process.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace mp = multiproc;
using tutorial::say;
using tutorial::str;
using namespace std::chrono_literals;

namespace {

struct Log {
  std::atomic<int> n{0};
  pid_t lines[16];  // the pid of every line, in the order printed
};

void work(mp::Lock& lock, Log& log) {
  std::scoped_lock hold(lock);  // lock.acquire() ... lock.release()
  say("%d is running", ::getpid());  // flushed while holding the lock: the terminal sees this order
  log.lines[log.n++] = ::getpid();
  std::this_thread::sleep_for(50ms);
  say("%d is done", ::getpid());
  log.lines[log.n++] = ::getpid();
}

}  // namespace

int main() {
  tutorial::Transcript::open();
  mp::Arena arena = mp::Arena::create(1 << 16);
  mp::Lock& lock = arena.make<mp::Lock>("lock");
  Log& log = arena.make<Log>("log");
  std::vector<mp::Process> ps;
  for (int i = 0; i < 3; ++i) ps.emplace_back(work, std::ref(lock), std::ref(log));
  for (auto& p : ps) p.start();
  for (auto& p : ps) p.join();  // Python joins them at exit; we join to check what they did

  bool ok = log.n == 6;
  for (int i = 0; ok && i < 6; i += 2) ok = log.lines[i] == log.lines[i + 1];  // running/done pairs
  for (auto& p : ps) ok = ok && p.exitcode() == 0;
  std::vector<std::string> want;  // the printed lines: each child's two
  for (auto& p : ps) {
    want.push_back(str("%d is running", p.pid()));
    want.push_back(str("%d is done", p.pid()));
  }
  ok = tutorial::expect_unordered(0, want, "000-3") && ok;
  const auto lines = tutorial::Transcript::get().since(0);
  for (std::size_t i = 0; ok && i + 1 < lines.size(); i += 2)  // and each "running" right before its "done"
    ok = lines[i + 1] == lines[i].substr(0, lines[i].find(' ')) + " is done";
  return ok ? 0 : 1;
}
