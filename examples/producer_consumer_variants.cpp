// Every producer/consumer-over-a-Queue program in the tutorials, each version as printed,
// with Python's None end signal (000, 004, 001). producer_consumer.cpp shows the same model
// ended by Queue::close() instead of sentinels.
//
//   000-7  no end signal            the consumer eats 包子0..9, then waits in q.get() forever
//   000-8  the producer sends None  q.put(None) after its last item; the main program prints 主
//   000-9  the main sends None      p1.join(); q.put(None); print('主')
//   000-10 3 producers, 2 consumers p1..p3.join(); one None per consumer; print('主')
//   004-33 第一版                   Queue(5), 20 items, the consumer never ends
//   004-34 第二版                   the consumer stops at the first get_nowait() that finds nothing
//   004-35 第三版                   the producer ends with None: 我吃到了包子1号 .. 20号, 包子取完了
//   004-36 终极版                   3 consumers, 2 producers; the main process puts three Nones
//   001-k  Queue                    a producer puts 0..9, a consumer prints them; the main sends None
//
// Python's None is an Item whose `none` flag is set (a Queue holds one trivially copyable type).
// The programs with no end signal (000-7, 004-33) never end in Python: the consumer waits in
// q.get() for ever. The port lets it eat everything, shows it is still waiting
// (join_for(100 ms) is false), says so, and terminate()s it. 004-34 shows a bug on purpose:
// its consumer gives up as soon as the queue is empty, normally before the first item exists,
// so it prints 包子取完了 and nothing is eaten — the check accepts any number of items eaten
// before that. Sleeps are 2-6 ms instead of 1-3 s (0.5 s in 004-34: 5 ms). 001's code blocks
// were lost in the stored text: 001-k follows the prose ("生产者进程通过调用put方法将0~9的数字
// 放入队列中, 消费者进程通过调用get方法从队列中获取数据, 并将其打印出来。最后, 调用put方法发送
// 结束信号, 然后等待两个进程结束").
// Exits 0 only if every section printed the Python program's lines.
#include "transcript.hpp"

#include <multiproc/arena.hpp>
#include <multiproc/fixed_string.hpp>
#include <multiproc/process.hpp>
#include <multiproc/queue.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace mp = multiproc;
using tutorial::expect;
using tutorial::expect_unordered;
using tutorial::note;
using tutorial::say;
using tutorial::section;
using tutorial::str;
using namespace std::chrono_literals;

namespace {

struct Item {  // a str, or None
  bool none;
  mp::FixedString<40> text;
  static Item None() { return {true, {}}; }
  static Item Of(const std::string& s) { return {false, mp::FixedString<40>(s)}; }
};
using Q = mp::Queue<Item>;

void nap(int lo_ms, int hi_ms) {  // time.sleep(random.randint(1, 3)), scaled down
  static thread_local std::mt19937 rng(static_cast<unsigned>(::getpid()));
  std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(lo_ms, hi_ms)(rng)));
}

bool exited_ok(mp::Process& p) {
  p.join();
  return p.exitcode() == 0;
}

// ---- 000 ---------------------------------------------------------------------------------------

// consumer(q): while True: res = q.get(); [if res is None: break]; sleep; print 吃
void consumer_000(Q& q, bool stop_at_none, std::atomic<int>& eaten) {
  for (;;) {
    const Item res = q.get();
    if (stop_at_none && res.none) break;  // 收到结束信号则结束
    nap(2, 6);
    say("\033[45m%d 吃 %s\033[0m", ::getpid(), res.text.str().c_str());
    eaten.fetch_add(1);
  }
}

// producer(name, q): for i in range(n): sleep; q.put('%s%s' % (name, i)); print 生产了
void producer_000(Q& q, std::string name, int n, bool send_none) {
  for (int i = 0; i < n; ++i) {
    nap(2, 6);
    const std::string res = name + std::to_string(i);
    q.put(Item::Of(res));
    say("\033[44m%d 生产了 %s\033[0m", ::getpid(), res.c_str());
  }
  if (send_none) q.put(Item::None());  // 发送结束信号
}

std::vector<std::string> produced(pid_t producer, const std::string& name, int n) {
  std::vector<std::string> v;
  for (int i = 0; i < n; ++i) v.push_back(str("\033[44m%d 生产了 %s%d\033[0m", producer, name.c_str(), i));
  return v;
}
std::vector<std::string> eaten_by(pid_t consumer, const std::string& name, int n) {
  std::vector<std::string> v;
  for (int i = 0; i < n; ++i) v.push_back(str("\033[45m%d 吃 %s%d\033[0m", consumer, name.c_str(), i));
  return v;
}
std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Waits (at most 10 s) until `n` items were eaten.
bool wait_eaten(const std::atomic<int>& eaten, int n) {
  for (int i = 0; i < 10'000 && eaten.load() < n; ++i) std::this_thread::sleep_for(1ms);
  return eaten.load() == n;
}

// A consumer that waits in get() for ever: show that it does, then end it.
bool still_waiting(mp::Process& c) {
  if (c.join_for(100ms)) return false;
  note("the consumer is still waiting in q.get(): the Python program never ends; terminate() it");
  c.terminate();
  c.join();
  return c.exitcode() == -SIGTERM;
}

bool no_end_signal(mp::Arena& arena, std::atomic<int>& eaten) {
  const int mark = section("000-7 基于队列实现生产者消费者模型");
  auto& q = arena.make<Q>("q0007", 16);
  eaten = 0;
  mp::Process p1(producer_000, std::ref(q), std::string("包子"), 10, false);  // 生产者们:即厨师们
  mp::Process c1(consumer_000, std::ref(q), false, std::ref(eaten));          // 消费者们:即吃货们
  p1.start();
  c1.start();
  bool ok = exited_ok(p1);
  ok = wait_eaten(eaten, 10) && ok;
  ok = still_waiting(c1) && ok;
  return expect_unordered(mark, produced(p1.pid(), "包子", 10) + eaten_by(c1.pid(), "包子", 10), "000-7") && ok;
}

bool producer_sends_none(mp::Arena& arena, std::atomic<int>& eaten) {
  const int mark = section("000-8 生产者在生产完毕后发送结束信号None");
  auto& q = arena.make<Q>("q0008", 16);
  mp::Process p1(producer_000, std::ref(q), std::string("包子"), 10, true);
  mp::Process c1(consumer_000, std::ref(q), true, std::ref(eaten));
  p1.start();
  c1.start();
  say("主");
  const bool ok = exited_ok(p1) && exited_ok(c1);  // the program's end joins them
  return expect_unordered(mark, produced(p1.pid(), "包子", 10) + eaten_by(c1.pid(), "包子", 10) + std::vector<std::string>{"主"},
                          "000-8") &&
         ok;
}

bool main_sends_none(mp::Arena& arena, std::atomic<int>& eaten) {
  const int mark = section("000-9 主进程在生产者结束后发送结束信号None");
  auto& q = arena.make<Q>("q0009", 16);
  mp::Process p1(producer_000, std::ref(q), std::string("包子"), 2, false);
  mp::Process c1(consumer_000, std::ref(q), true, std::ref(eaten));
  p1.start();
  c1.start();
  bool ok = exited_ok(p1);
  q.put(Item::None());  // 发送结束信号
  say("主");
  ok = exited_ok(c1) && ok;
  const int at = tutorial::position(mark, "主");
  const bool order = at > tutorial::position(mark, produced(p1.pid(), "包子", 2)[1]);  // produced, then 主
  return expect_unordered(mark, produced(p1.pid(), "包子", 2) + eaten_by(c1.pid(), "包子", 2) + std::vector<std::string>{"主"},
                          "000-9") &&
         order && ok;
}

bool many_producers_many_consumers(mp::Arena& arena, std::atomic<int>& eaten) {
  const int mark = section("000-10 多个生产者和多个消费者: 有几个消费者就发送几次None");
  auto& q = arena.make<Q>("q0010", 16);
  std::vector<mp::Process> producers;
  for (const char* name : {"包子", "骨头", "泔水"}) producers.emplace_back(producer_000, std::ref(q), std::string(name), 2, false);
  mp::Process c1(consumer_000, std::ref(q), true, std::ref(eaten));
  mp::Process c2(consumer_000, std::ref(q), true, std::ref(eaten));
  for (auto& p : producers) p.start();
  c1.start();
  c2.start();
  bool ok = true;
  for (auto& p : producers) ok = exited_ok(p) && ok;  // 必须保证生产者全部生产完毕,才应该发送结束信号
  q.put(Item::None());                                // 有几个消费者就应该发送几次结束信号None
  q.put(Item::None());
  say("主");
  ok = exited_ok(c1) && exited_ok(c2) && ok;
  // Who ate what varies; every item was produced once and eaten once.
  std::vector<std::string> want{"主"};
  for (int k = 0; k < 3; ++k) want = want + produced(producers[k].pid(), k == 0 ? "包子" : k == 1 ? "骨头" : "泔水", 2);
  const auto lines = tutorial::Transcript::get().since(mark);
  std::vector<std::string> got_eaten;
  std::vector<std::string> rest;
  for (const auto& l : lines) {
    const auto at = l.find(" 吃 ");
    if (at != std::string::npos) {
      const pid_t who = std::atoi(l.c_str() + 5);  // after "\033[45m"
      if (who != c1.pid() && who != c2.pid()) ok = false;
      got_eaten.push_back(l.substr(at + 5));  // "包子0\033[0m"
    } else {
      rest.push_back(l);
    }
  }
  std::sort(got_eaten.begin(), got_eaten.end());
  std::vector<std::string> want_eaten;
  for (const char* name : {"包子", "骨头", "泔水"})
    for (int i = 0; i < 2; ++i) want_eaten.push_back(str("%s%d\033[0m", name, i));
  std::sort(want_eaten.begin(), want_eaten.end());
  std::sort(rest.begin(), rest.end());
  std::sort(want.begin(), want.end());
  if (got_eaten != want_eaten || rest != want) {
    tutorial::dump("000-10: printed", lines);
    ok = false;
  }
  return ok;
}

// ---- 004 ---------------------------------------------------------------------------------------

std::string baozi(int i) { return "包子" + std::to_string(i) + "号"; }

bool first_version(mp::Arena& arena, std::atomic<int>& eaten) {
  const int mark = section("004-33 第一版");
  auto& q = arena.make<Q>("q0433", 5);
  eaten = 0;
  mp::Process pro_con(
      [](Q& qq, std::atomic<int>& n) {
        for (;;) {
          const Item info = qq.get();
          say("我吃到了%s", info.text.str().c_str());
          n.fetch_add(1);
        }
      },
      std::ref(q), std::ref(eaten));
  pro_con.start();
  mp::Process pro_pro(
      [](Q& qq) {
        for (int i = 0; i < 20; ++i) qq.put(Item::Of(baozi(i + 1)));
      },
      std::ref(q));
  pro_pro.start();
  bool ok = exited_ok(pro_pro);
  ok = wait_eaten(eaten, 20) && ok;
  ok = still_waiting(pro_con) && ok;
  std::vector<std::string> want;
  for (int i = 0; i < 20; ++i) want.push_back("我吃到了" + baozi(i + 1));
  return expect(mark, want, "004-33") && ok;
}

bool second_version(mp::Arena& arena) {
  const int mark = section("004-34 第二版");
  auto& q = arena.make<Q>("q0434", 20);
  mp::Process pro_con(
      [](Q& qq) {
        for (;;) {
          if (auto info = qq.try_get()) {  // info = q.get_nowait()
            say("我吃到了%s", info->text.str().c_str());
          } else {  // except: (queue.Empty)
            say("包子取完了");
            break;
          }
        }
      },
      std::ref(q));
  mp::Process pro_pro(
      [](Q& qq) {
        for (int i = 0; i < 20; ++i) {
          std::this_thread::sleep_for(5ms);
          const std::string info = baozi(i + 1);
          say("%s", info.c_str());
          qq.put(Item::Of(info));
        }
      },
      std::ref(q));
  pro_con.start();
  pro_pro.start();
  const bool ok = exited_ok(pro_con) && exited_ok(pro_pro);
  // 20 包子N号 lines, one 包子取完了, and the items eaten before it (in order, from 包子1号).
  const auto lines = tutorial::Transcript::get().since(mark);
  std::vector<std::string> produced_lines, eaten_lines;
  int done = 0;
  for (const auto& l : lines) {
    if (l == "包子取完了")
      ++done;
    else if (l.rfind("我吃到了", 0) == 0)
      eaten_lines.push_back(l);
    else
      produced_lines.push_back(l);
  }
  std::vector<std::string> want_produced, want_eaten;
  for (int i = 0; i < 20; ++i) want_produced.push_back(baozi(i + 1));
  for (std::size_t i = 0; i < eaten_lines.size(); ++i) want_eaten.push_back("我吃到了" + baozi(static_cast<int>(i) + 1));
  note("the consumer ate %zu of 20 before it found the queue empty and stopped", eaten_lines.size());
  const bool lines_ok = done == 1 && produced_lines == want_produced && eaten_lines == want_eaten;
  if (!lines_ok) tutorial::dump("004-34: printed", lines);
  return lines_ok && ok;
}

void consumer_004(Q& q, bool say_done) {
  for (;;) {
    const Item info = q.get();
    if (info.none) {
      if (say_done) say("包子取完了");
      break;
    }
    say("我吃到了%s", info.text.str().c_str());
  }
}

void productor_004(Q& q, bool send_none) {
  for (int i = 0; i < 20; ++i) q.put(Item::Of(baozi(i + 1)));
  if (send_none) q.put(Item::None());  // 生产结束了，放入一个结束的标志来提醒消费者
}

bool third_version(mp::Arena& arena) {
  const int mark = section("004-35 第三版");
  auto& q = arena.make<Q>("q0435", 5);
  mp::Process pro_con(consumer_004, std::ref(q), true);
  mp::Process pro_pro(productor_004, std::ref(q), true);
  pro_con.start();
  pro_pro.start();
  const bool ok = exited_ok(pro_con) && exited_ok(pro_pro);
  std::vector<std::string> want;
  for (int i = 0; i < 20; ++i) want.push_back("我吃到了" + baozi(i + 1));
  want.push_back("包子取完了");
  return expect(mark, want, "004-35") && ok;
}

bool final_version(mp::Arena& arena) {
  const int mark = section("004-36 终极版");
  auto& q = arena.make<Q>("q0436", 5);
  std::vector<mp::Process> consumers, producers;
  for (int i = 0; i < 3; ++i) consumers.emplace_back(consumer_004, std::ref(q), false);
  for (int i = 0; i < 2; ++i) producers.emplace_back(productor_004, std::ref(q), false);
  for (auto& c : consumers) c.start();
  for (auto& p : producers) p.start();
  bool ok = true;
  for (auto& p : producers) ok = exited_ok(p) && ok;  // 主进程必须等生产者生产完后再添加标识
  for (int i = 0; i < 3; ++i) q.put(Item::None());    // 有几个消费者就添加几个标识
  for (auto& c : consumers) ok = exited_ok(c) && ok;
  std::vector<std::string> want;
  for (int k = 0; k < 2; ++k)
    for (int i = 0; i < 20; ++i) want.push_back("我吃到了" + baozi(i + 1));
  return expect_unordered(mark, want, "004-36") && ok;
}

// ---- 001 ---------------------------------------------------------------------------------------

bool queue_example(mp::Arena& arena) {
  const int mark = section("001-k 队列(Queue)");
  auto& q = arena.make<mp::Queue<std::optional<int>>>("q001", 16);  // None is an empty optional
  mp::Process producer(
      [](mp::Queue<std::optional<int>>& qq) {
        for (int i = 0; i < 10; ++i) qq.put(i);
      },
      std::ref(q));
  mp::Process consumer(
      [](mp::Queue<std::optional<int>>& qq) {
        while (const std::optional<int> item = qq.get()) say("消费者获取到: %d", *item);
      },
      std::ref(q));
  producer.start();
  consumer.start();
  bool ok = exited_ok(producer);
  q.put(std::nullopt);  // 发送结束信号
  ok = exited_ok(consumer) && ok;
  std::vector<std::string> want;
  for (int i = 0; i < 10; ++i) want.push_back(str("消费者获取到: %d", i));
  return expect(mark, want, "001-k") && ok;
}

}  // namespace

int main() {
  tutorial::Transcript::open();
  mp::Arena arena = mp::Arena::create(1 << 20);
  auto& eaten = arena.make<std::atomic<int>>("eaten", 0);
  bool ok = no_end_signal(arena, eaten);
  ok = producer_sends_none(arena, eaten) && ok;
  ok = main_sends_none(arena, eaten) && ok;
  ok = many_producers_many_consumers(arena, eaten) && ok;
  ok = first_version(arena, eaten) && ok;
  ok = second_version(arena) && ok;
  ok = third_version(arena) && ok;
  ok = final_version(arena) && ok;
  ok = queue_example(arena) && ok;
  return ok ? 0 : 1;
}
