// Tutorial 000 (and 004), "JoinableQueue": producers wait with q.join() until every item they
// put has been task_done() by a consumer; the consumers are daemons, so once the producers are
// done the main program simply ends and takes them with it.
//
//   def consumer(q):
//       while True:
//           res = q.get()
//           time.sleep(random.randint(1, 3))
//           print('\033[45m%s 吃 %s\033[0m' % (os.getpid(), res))
//           q.task_done()              # one item handled: tells q.join()
//   def producer(name, q):
//       for i in range(10):
//           time.sleep(random.randint(1, 3))
//           res = '%s%s' % (name, i)
//           q.put(res)
//           print('\033[44m%s 生产了 %s\033[0m' % (os.getpid(), res))
//       q.join()                       # until every item is task_done
//   q = JoinableQueue()
//   p1 = Process(target=producer, args=('包子', q)); p2 = ... ('骨头', q); p3 = ... ('泔水', q)
//   c1 = Process(target=consumer, args=(q,)); c2 = Process(target=consumer, args=(q,))
//   c1.daemon = True; c2.daemon = True
//   for p in [p1, p2, p3, c1, c2]: p.start()
//   p1.join(); p2.join(); p3.join()
//   print('主')
//
// Here: 3 items per producer and 5-15 ms sleeps. Output: nine "生产了" and nine "吃" lines
// (pids vary), then 主. Exits 0 only if every item was eaten once before the producers'
// join() returned, and the printed lines say so (transcript.hpp).
#include "transcript.hpp"

#include <multiproc/arena.hpp>
#include <multiproc/fixed_string.hpp>
#include <multiproc/process.hpp>
#include <multiproc/queue.hpp>

#include <algorithm>
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

constexpr int kItems = 3;

struct Counts {
  std::atomic<int> eaten{0};
  std::atomic<int> eaten_when_joined[3];  // what `eaten` was when each producer's join returned
};

void nap() {
  static thread_local std::mt19937 rng(static_cast<unsigned>(::getpid()));
  std::this_thread::sleep_for(std::chrono::milliseconds(5 * std::uniform_int_distribution<int>(1, 3)(rng)));
}

void consumer(mp::JoinableQueue<Item>& q, Counts& counts) {
  for (;;) {
    const Item res = q.get();
    nap();
    say("\033[45m%d 吃 %.*s\033[0m", ::getpid(), static_cast<int>(res.size()), res.view().data());
    counts.eaten.fetch_add(1);
    q.task_done();
  }
}

void producer(int who, std::string name, mp::JoinableQueue<Item>& q, Counts& counts) {
  for (int i = 0; i < kItems; ++i) {
    nap();
    const std::string res = name + std::to_string(i);
    q.put(Item(res));
    say("\033[44m%d 生产了 %s\033[0m", ::getpid(), res.c_str());
  }
  q.join();
  counts.eaten_when_joined[who] = counts.eaten.load();
}

}  // namespace

int main() {
  tutorial::Transcript::open();
  mp::Arena arena = mp::Arena::create(1 << 20);
  auto& q = arena.make<mp::JoinableQueue<Item>>("q", 32);
  Counts& counts = arena.make<Counts>("counts");
  std::vector<mp::Process> ps;
  int who = 0;
  for (const char* name : {"包子", "骨头", "泔水"}) ps.emplace_back(producer, who++, std::string(name), std::ref(q), std::ref(counts));
  mp::Process c1(consumer, std::ref(q), std::ref(counts));
  mp::Process c2(consumer, std::ref(q), std::ref(counts));
  c1.daemon(true);
  c2.daemon(true);
  for (auto& p : ps) p.start();
  c1.start();
  c2.start();
  for (auto& p : ps) p.join();
  say("主");

  bool ok = counts.eaten.load() == 3 * kItems;
  for (int i = 0; i < 3; ++i) ok = ok && ps[i].exitcode() == 0 && counts.eaten_when_joined[i].load() >= kItems;
  // An item is eaten before its task_done, so the last producer to return from join() saw all.
  int most = 0;
  for (auto& e : counts.eaten_when_joined) most = std::max(most, e.load());
  ok = ok && most == 3 * kItems;
  ok = tutorial::expect_producer_consumer(0, {{ps[0].pid(), "包子"}, {ps[1].pid(), "骨头"}, {ps[2].pid(), "泔水"}}, kItems,
                                          {c1.pid(), c2.pid()}, true, "000-11") &&
       ok;
  return ok ? 0 : 1;  // the daemon consumers, still blocked in get(), end with this process
}
