// Tutorial 000 (and 004), "基于队列实现生产者消费者模型": producers put into a Queue, consumers
// take from it until the producers are done. Python ends the consumers with one None per
// consumer, put by the main process after joining the producers:
//
//   def consumer(q):
//       while True:
//           res = q.get()
//           if res is None: break
//           time.sleep(random.randint(1, 3))
//           print('\033[45m%s 吃 %s\033[0m' % (os.getpid(), res))
//   def producer(name, q):
//       for i in range(2):
//           time.sleep(random.randint(1, 3))
//           res = '%s%s' % (name, i)
//           q.put(res)
//           print('\033[44m%s 生产了 %s\033[0m' % (os.getpid(), res))
//   q = Queue()
//   p1 = Process(target=producer, args=('包子', q)); p2 = ... ('骨头', q); p3 = ... ('泔水', q)
//   c1 = Process(target=consumer, args=(q,)); c2 = Process(target=consumer, args=(q,))
//   p1.start(); p2.start(); p3.start(); c1.start()  [c2.start()]
//   p1.join(); p2.join(); p3.join()
//   q.put(None); q.put(None)
//   print('主')
//
// Here close() is the end-of-work signal: the consumers drain what is in the queue and then
// get() throws Closed — one call, whatever the number of consumers. Sleeps are 10-30 ms.
// Output: six "生产了" lines and six "吃" lines (pids vary), then 主.
// Exits 0 only if each of the six items was eaten exactly once, and the printed lines say so
// (transcript.hpp).
#include "transcript.hpp"

#include <multiproc/arena.hpp>
#include <multiproc/fixed_string.hpp>
#include <multiproc/process.hpp>
#include <multiproc/queue.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace mp = multiproc;
using tutorial::say;
using namespace std::chrono_literals;
using Item = mp::FixedString<32>;

namespace {

struct Eaten {
  std::atomic<int> count[3][2];  // per producer, per item
};

void nap() {
  static thread_local std::mt19937 rng(static_cast<unsigned>(::getpid()));
  std::this_thread::sleep_for(std::chrono::milliseconds(10 * std::uniform_int_distribution<int>(1, 3)(rng)));
}

void consumer(mp::Queue<Item>& q, Eaten& eaten) {
  static const char* const names[] = {"包子", "骨头", "泔水"};
  for (;;) {
    Item res;
    try {
      res = q.get();
    } catch (const mp::Closed&) {
      break;  // closed and drained: Python's `if res is None: break`
    }
    nap();
    say("\033[45m%d 吃 %.*s\033[0m", ::getpid(), static_cast<int>(res.size()), res.view().data());
    for (int p = 0; p < 3; ++p)
      for (int i = 0; i < 2; ++i)
        if (res.view() == std::string(names[p]) + std::to_string(i)) eaten.count[p][i].fetch_add(1);
  }
}

void producer(std::string name, mp::Queue<Item>& q) {
  for (int i = 0; i < 2; ++i) {
    nap();
    const std::string res = name + std::to_string(i);
    q.put(Item(res));
    say("\033[44m%d 生产了 %s\033[0m", ::getpid(), res.c_str());
  }
}

}  // namespace

int main() {
  tutorial::Transcript::open();
  mp::Arena arena = mp::Arena::create(1 << 20);
  auto& q = arena.make<mp::Queue<Item>>("q", 16);
  Eaten& eaten = arena.make<Eaten>("eaten");
  std::vector<mp::Process> producers;
  for (const char* name : {"包子", "骨头", "泔水"}) producers.emplace_back(producer, std::string(name), std::ref(q));
  mp::Process c1(consumer, std::ref(q), std::ref(eaten));
  mp::Process c2(consumer, std::ref(q), std::ref(eaten));
  for (auto& p : producers) p.start();
  c1.start();
  c2.start();
  for (auto& p : producers) p.join();  // all produced: only then signal the end
  q.close();
  say("主");
  c1.join();
  c2.join();

  bool ok = c1.exitcode() == 0 && c2.exitcode() == 0;
  for (auto& p : producers) ok = ok && p.exitcode() == 0;
  for (auto& row : eaten.count)
    for (auto& c : row) ok = ok && c.load() == 1;
  ok = tutorial::expect_producer_consumer(
           0, {{producers[0].pid(), "包子"}, {producers[1].pid(), "骨头"}, {producers[2].pid(), "泔水"}}, 2, {c1.pid(), c2.pid()},
           false, "000-10 (close())") &&
       ok;
  return ok ? 0 : 1;
}
