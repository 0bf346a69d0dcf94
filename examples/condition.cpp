// Tutorial 001, "Condition(条件变量)": like a Lock, but a process can wait under it until
// another changes the shared state and notifies. A producer puts numbers into a shared buffer
// and notifies; a consumer waits until there is something to take.
//
//   def consumer(cond, items):
//       with cond:
//           while True:
//               cond.wait_for(lambda: len(items) > 0)
//               item = items.pop(0)
//               print("consumer got", item)
//               if item == 4: break
//   def producer(cond, items):
//       for i in range(5):
//           time.sleep(0.5)
//           with cond:
//               items.append(i); print("producer put", i)
//               cond.notify()
//   cond = Condition(); items = Manager().list()
//   c = Process(target=consumer, args=(cond, items)); p = Process(target=producer, args=(cond, items))
//   c.start(); p.start(); c.join(); p.join()
//
// Output: "producer put i" before "consumer got i", for i = 0..4 (sleeps of 10 ms here).
// Exits 0 only if the consumer got 0, 1, 2, 3, 4 in that order, and printed so (transcript.hpp).
#include "transcript.hpp"

#include <multiproc/arena.hpp>
#include <multiproc/condition.hpp>
#include <multiproc/lock.hpp>
#include <multiproc/process.hpp>

#include <chrono>
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace mp = multiproc;
using tutorial::say;
using tutorial::str;
using namespace std::chrono_literals;

namespace {

struct Shared {  // Python's Condition() is a Condition with its own RLock
  mp::Lock lock;
  mp::Condition cond;
  int items[8];
  int head = 0, tail = 0;  // a FIFO of ints, guarded by lock
  int got[5];
  int n_got = 0;
};

void consumer(Shared& s) {
  std::unique_lock hold(s.lock);
  for (;;) {
    s.cond.wait(hold, [&] { return s.head != s.tail; });
    const int item = s.items[s.head++ % 8];
    say("consumer got %d", item);
    s.got[s.n_got++] = item;
    if (item == 4) break;
  }
}

void producer(Shared& s) {
  for (int i = 0; i < 5; ++i) {
    std::this_thread::sleep_for(10ms);
    std::scoped_lock hold(s.lock);
    s.items[s.tail++ % 8] = i;
    say("producer put %d", i);
    s.cond.notify_one();
  }
}

}  // namespace

int main() {
  tutorial::Transcript::open();
  mp::Arena arena = mp::Arena::create(1 << 16);
  Shared& s = arena.make<Shared>("shared");
  mp::Process c(consumer, std::ref(s));
  mp::Process p(producer, std::ref(s));
  c.start();
  p.start();
  const bool joined = c.join_for(30s) && p.join_for(30s);
  bool ok = joined && c.exitcode() == 0 && p.exitcode() == 0 && s.n_got == 5;
  for (int i = 0; ok && i < 5; ++i) ok = s.got[i] == i;
  // The printed lines: every put and got, and "producer put i" before "consumer got i".
  std::vector<std::string> want;
  for (int i = 0; i < 5; ++i) {
    want.push_back(str("producer put %d", i));
    want.push_back(str("consumer got %d", i));
  }
  ok = tutorial::expect_unordered(0, want, "001-j") && ok;
  for (int i = 0; ok && i < 5; ++i) ok = tutorial::position(0, want[2 * i]) < tutorial::position(0, want[2 * i + 1]);
  if (!joined) {
    c.kill();
    p.kill();
  }
  return ok ? 0 : 1;
}
