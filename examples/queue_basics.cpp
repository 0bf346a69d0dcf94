// The tutorials' Queue programs, apart from the producer/consumer ones (000, 004, 002):
// put/get, full/empty, the non-blocking forms and their Full/Empty errors, and queues
// between processes.
//
//   000-6  Queue(3)                put 3 three times; full() -> True; get x3 -> 3; empty() -> True
//   004-25 put                     a full Queue(3); put(236, False) raises queue.Full
//   004-26 get                     123 / abc / [1, 2, 3]; get(False) on the empty queue raises queue.Empty
//   004-27 put_nowait              the same as put(236, False): queue.Full
//   004-28 get_nowait              the same as get(False): queue.Empty
//   004-29 进程中使用队列           a child puts '我是四川的'; the parent's blocking get() prints it
//   004-30 put_func / get_func     10 processes put "pid\t:\trandom", 10 others get and print one each
//   002-13 offer                   a child sleeps, then puts "Hello World"; the parent prints q.get(); done!
//   002-14 write / read            the writer puts A, B, C; the reader drains while not q.empty()
//
// Differences:
//   * A Queue holds one trivially copyable type; Python's holds any object. 004-25..28 put 123,
//     "abc" and [1, 2, 3]: here each item is its printed form, a FixedString (str(item)).
//   * Python's Queue() without maxsize grows without bound; a multiproc Queue has a capacity
//     (16 where the Python one is unbounded: more than these programs ever hold).
//   * put(x, False) / put_nowait / get(False) / get_nowait are try_put / try_get, which return
//     false / nothing instead of raising; where Python dies of queue.Full / queue.Empty (an
//     uncaught exception: the traceback goes to stderr), the port writes that line to stderr
//     and goes on with the next section.
//   * Sleeps: 002-13's 10 s is 50 ms; 002-14's writer sleeps up to 10 ms and the reader first
//     200 ms then 20 ms between gets (1 s in Python: time for the writer to finish first).
// Exits 0 only if every section printed the Python program's lines.
#include "transcript.hpp"

#include <multiproc/arena.hpp>
#include <multiproc/fixed_string.hpp>
#include <multiproc/process.hpp>
#include <multiproc/queue.hpp>

#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <set>
#include <string>
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
using Str = mp::FixedString<48>;

namespace {

const char* py_bool(bool b) { return b ? "True" : "False"; }

void raised(const char* error) { std::fprintf(stderr, "Traceback (most recent call last): ... %s\n", error); }

bool queue_of_three(mp::Arena& arena) {
  const int mark = section("000-6 Queue(3): put, get, full, empty");
  auto& q = arena.make<mp::Queue<int>>("q3", 3);
  q.put(3);
  q.put(3);
  q.put(3);
  say("%s", py_bool(q.full()));  // 满了
  say("%d", q.get());
  say("%d", q.get());
  say("%d", q.get());
  say("%s", py_bool(q.empty()));  // 空了
  return expect(mark, {"True", "3", "3", "3", "True"}, "000-6");
}

mp::Queue<Str>& filled(mp::Arena& arena, const char* name) {
  auto& q = arena.make<mp::Queue<Str>>(name, 3);  // 参数为规定队列中最多可以存放的数据个数
  q.put(Str("123"));
  q.put(Str("abc"));
  q.put(Str("[1, 2, 3]"));
  return q;
}

bool put_when_full(mp::Arena& arena, bool nowait) {
  const int mark = section(nowait ? "004-27 put_nowait" : "004-25 put");
  auto& q = filled(arena, nowait ? "q_put_nowait" : "q_put");
  say("到此为止队列已经存满了");
  // q.put(236) would block until a slot frees; put(236, False) / put_nowait(236) raise queue.Full
  if (!q.try_put(Str("236"))) raised("queue.Full");
  return expect(mark, {"到此为止队列已经存满了"}, nowait ? "004-27" : "004-25") && q.size() == 3;
}

bool get_when_empty(mp::Arena& arena, bool nowait) {
  const int mark = section(nowait ? "004-28 get_nowait" : "004-26 get");
  auto& q = filled(arena, nowait ? "q_get_nowait" : "q_get");
  for (int i = 0; i < 3; ++i) say("%s", q.get().str().c_str());
  say("此时队列已经全部取完了");
  // q.get() would block until an item arrives; get(False) / get_nowait() raise queue.Empty
  if (auto item = q.try_get())
    say("%s", item->str().c_str());
  else
    raised("_queue.Empty");
  return expect(mark, {"123", "abc", "[1, 2, 3]", "此时队列已经全部取完了"}, nowait ? "004-28" : "004-26");
}

bool queue_in_process(mp::Arena& arena) {
  const int mark = section("004-29 进程中使用队列");
  auto& q = arena.make<mp::Queue<Str>>("q5", 5);
  mp::Process p([](mp::Queue<Str>& qq) { qq.put(Str("我是四川的")); }, std::ref(q));
  p.start();
  say("%s", q.get().str().c_str());  // get是阻塞获取数据，如果队列没有就等着
  p.join();
  return expect(mark, {"我是四川的"}, "004-29") && p.exitcode() == 0;
}

bool put_and_get_funcs(mp::Arena& arena) {
  const int mark = section("004-30 put_func / get_func");
  auto& q = arena.make<mp::Queue<Str>>("q_funcs", 5);
  std::vector<mp::Process> l_put;
  for (int i = 0; i < 10; ++i) {
    l_put.emplace_back(
        [](mp::Queue<Str>& qq) {
          std::mt19937 rng(static_cast<unsigned>(::getpid()));
          qq.put(Str(str("%d\t:\t%d", ::getpid(), std::uniform_int_distribution<int>(0, 100)(rng))));
        },
        std::ref(q));
    l_put.back().start();
  }
  std::vector<mp::Process> l_get;
  for (int i = 0; i < 10; ++i) {
    l_get.emplace_back(
        [](mp::Queue<Str>& qq) { say("%d 获取到数据 ：\033[33m; %s \033[0m", ::getpid(), qq.get().str().c_str()); }, std::ref(q));
    l_get.back().start();
  }
  bool ok = true;
  for (auto* l : {&l_put, &l_get})
    for (auto& p : *l) {
      p.join();
      ok = ok && p.exitcode() == 0;
    }
  // Each getter printed one line, and between them they got one item from every putter.
  std::set<int> getters, putters, got_from;
  for (auto& p : l_get) getters.insert(p.pid());
  for (auto& p : l_put) putters.insert(p.pid());
  const auto lines = tutorial::Transcript::get().since(mark);
  for (const auto& line : lines) {
    int getter = 0, putter = 0, n = -1;
    if (std::sscanf(line.c_str(), "%d 获取到数据 ：\033[33m; %d\t:\t%d", &getter, &putter, &n) == 3 && getters.count(getter) &&
        n >= 0 && n <= 100) {
      getters.erase(getter);
      got_from.insert(putter);
    }
  }
  const bool lines_ok = lines.size() == 10 && getters.empty() && got_from == putters;
  if (!lines_ok) tutorial::dump("004-30: not one line per getter with one item per putter", lines);
  return lines_ok && ok;
}

bool offer(mp::Arena& arena) {
  const int mark = section("002-13 同步进程(消息队列Queue)");
  auto& q = arena.make<mp::Queue<Str>>("q_offer", 16);  // Queue(): unbounded in Python
  mp::Process p(
      [](mp::Queue<Str>& queue) {
        std::this_thread::sleep_for(50ms);
        queue.put(Str("Hello World"));  // 入队列
      },
      std::ref(q));
  p.start();
  say("%s", q.get().str().c_str());  // 出队列
  p.join();
  say("done!");
  return expect(mark, {"Hello World", "done!"}, "002-13") && p.exitcode() == 0;
}

bool write_read(mp::Arena& arena) {
  const int mark = section("002-14 进程同步(使用queue)");
  auto& q = arena.make<mp::Queue<char>>("q_abc", 16);  // 父进程创建Queue,并传给各个子进程
  mp::Process pw(
      [](mp::Queue<char>& qq) {
        std::mt19937 rng(static_cast<unsigned>(::getpid()));
        for (char value : {'A', 'B', 'C'}) {
          say("Put %c to queue...", value);
          qq.put(value);
          std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 10)(rng)));
        }
      },
      std::ref(q));
  mp::Process pr(
      [](mp::Queue<char>& qq) {
        std::this_thread::sleep_for(200ms);
        while (!qq.empty()) {
          say("Get %c from queue.", qq.get());
          std::this_thread::sleep_for(20ms);  // 目的是等待写队列完成
        }
      },
      std::ref(q));
  pw.start();  // 启动子进程pw,写入
  pr.start();  // 启动子进程pr,读取
  pw.join();   // 等待pw结束
  pr.join();
  return expect(mark, {"Put A to queue...", "Put B to queue...", "Put C to queue...", "Get A from queue.", "Get B from queue.", "Get C from queue."},
                "002-14") &&
         pw.exitcode() == 0 && pr.exitcode() == 0;
}

}  // namespace

int main() {
  tutorial::Transcript::open();
  mp::Arena arena = mp::Arena::create(1 << 20);
  bool ok = queue_of_three(arena);
  ok = put_when_full(arena, false) && ok;
  ok = get_when_empty(arena, false) && ok;
  ok = put_when_full(arena, true) && ok;
  ok = get_when_empty(arena, true) && ok;
  ok = queue_in_process(arena) && ok;
  ok = put_and_get_funcs(arena) && ok;
  ok = offer(arena) && ok;
  ok = write_read(arena) && ok;
  return ok ? 0 : 1;
}
