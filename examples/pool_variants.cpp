// The tutorials' Pool programs that pool_map.cpp and pool_apply_async.cpp do not cover (002, 001).
//
//   002-10 进程池 程序实例     m1(x) sleeps random() * 4 s, prints "pid: <pid> x*x" in its worker;
//                             print pool.map(m1, range(8)) -> [0, 1, 4, 9, 16, 25, 36, 49]
//   001-d  Pool.map           Pool(4); pool.map(worker, range(10)); close(); join(): the 4
//                             workers each run several tasks (进程复用), printing their pid
//   001-e  apply / apply_async apply blocks and returns the result; apply_async returns at
//                             once, and its callback receives the result
//   001-f  map / map_async    map blocks for the list; map_async's callback receives the list
//                             (and starmap / starmap_async, which 001 lists next to them)
//
// Differences: m1 sleeps up to 40 ms instead of 4 s. 001's code blocks were lost in the stored
// text: 001-d/e/f follow the prose around them (the Pool of 4 and range(10) are the prose's).
// Python runs an apply_async callback before get() returns; here a callback runs on the pool's
// handler thread once the result is in, so get() may return first: these programs print the
// callback's line and then get()'s, as Python does, by closing and joining the pool (which waits
// for the callbacks) before they print what get() returned.
// Exits 0 only if every section printed the Python program's lines.
#include "transcript.hpp"

#include <multiproc/pool.hpp>
#include <multiproc/process.hpp>

#include <chrono>
#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

namespace mp = multiproc;
using tutorial::expect;
using tutorial::note;
using tutorial::py_list;
using tutorial::say;
using tutorial::section;
using tutorial::str;

namespace {

std::vector<int> range(int n) {
  std::vector<int> v(n);
  for (int i = 0; i < n; ++i) v[i] = i;
  return v;
}

int m1(int x) {
  static thread_local std::mt19937 rng(static_cast<unsigned>(::getpid()));
  std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 40)(rng)));
  say("pid: %d %d", ::getpid(), x * x);
  return x * x;
}

// The lines since `mark` that start with `prefix`, as (pid, rest) — which process printed what.
std::vector<std::pair<int, std::string>> by_pid(int mark, const char* fmt_prefix) {
  std::vector<std::pair<int, std::string>> out;
  for (const auto& line : tutorial::Transcript::get().since(mark)) {
    int pid = 0, n = 0;
    if (std::sscanf(line.c_str(), fmt_prefix, &pid, &n) == 2) out.emplace_back(pid, std::to_string(n));
  }
  return out;
}

bool pool_pids() {
  const int mark = section("002-10 进程池: 程序实例");
  mp::Pool pool(mp::cpu_count());
  const std::vector<int> result = pool.map(m1, range(8));
  say("%s", py_list(result).c_str());
  const auto lines = tutorial::Transcript::get().since(mark);
  const auto workers = by_pid(mark, "pid: %d %d");
  std::multiset<std::string> squares;
  bool in_workers = true;
  for (const auto& [pid, sq] : workers) {
    squares.insert(sq);
    in_workers = in_workers && pid != ::getpid();
  }
  const bool ok = lines.size() == 9 && lines.back() == "[0, 1, 4, 9, 16, 25, 36, 49]" && in_workers &&
                  squares == std::multiset<std::string>{"0", "1", "4", "9", "16", "25", "36", "49"};
  if (!ok) tutorial::dump("002-10: printed", lines);
  pool.close();
  pool.join();
  return ok;
}

int worker(int x) {
  say("子进程(pid:%d) 执行 worker(%d)", ::getpid(), x);
  return x * x;
}

bool pool_map_example() {
  const int mark = section("001-d Pool 类 创建进程池 和 使用的简单示例");
  say("主进程(pid:%d)", ::getpid());
  mp::Pool pool(4);  // 进程池的大小为4
  const std::vector<int> results = pool.map(worker, range(10));
  pool.close();
  pool.join();
  say("%s", py_list(results).c_str());
  const auto lines = tutorial::Transcript::get().since(mark);
  std::set<int> pids;
  std::multiset<std::string> done;
  for (const auto& [pid, x] : by_pid(mark, "子进程(pid:%d) 执行 worker(%d)")) {
    pids.insert(pid);
    done.insert(x);
  }
  std::multiset<std::string> want;
  for (int i = 0; i < 10; ++i) want.insert(std::to_string(i));
  note("%zu worker processes ran the 10 tasks", pids.size());
  const bool ok = lines.size() == 12 && lines.front() == str("主进程(pid:%d)", ::getpid()) &&
                  lines.back() == "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]" && done == want && !pids.empty() && pids.size() <= 4 &&
                  !pids.count(::getpid());
  if (!ok) tutorial::dump("001-d: printed", lines);
  return ok;
}

int square(int x) { return x * x; }
int add(int a, int b) { return a + b; }

bool apply_and_apply_async() {
  const int mark = section("001-e apply 和 apply_async");
  mp::Pool pool(4);
  say("%d", pool.apply(square, 3));  // 同步执行: 阻塞直到任务完成
  auto r = pool.apply_async(square, 4);  // 异步执行: 立即返回
  r.then([](int v) { say("回调函数收到: %d", v); });
  pool.close();
  pool.join();  // waits for the task and its callback
  say("%d", r.get());
  return expect(mark, {"9", "回调函数收到: 16", "16"}, "001-e");
}

bool map_and_map_async() {
  const int mark = section("001-f map 和 map_async (starmap 和 starmap_async)");
  mp::Pool pool(4);
  say("%s", py_list(pool.map(square, range(5))).c_str());  // 同步映射
  auto r = pool.map_async(square, range(5));               // 异步映射
  r.then([](const std::vector<int>& res) { say("map_async 回调: %s", py_list(res).c_str()); });
  const std::vector<std::pair<int, int>> pairs{{1, 2}, {3, 4}, {5, 6}};
  say("%s", py_list(pool.starmap(add, pairs)).c_str());
  auto s = pool.starmap_async(add, pairs);
  pool.close();
  pool.join();
  say("%s", py_list(r.get()).c_str());
  say("%s", py_list(s.get()).c_str());
  const auto lines = tutorial::Transcript::get().since(mark);
  // The map_async callback runs when that result is in: after the map line, before the join.
  const int cb = tutorial::position(mark, "map_async 回调: [0, 1, 4, 9, 16]");
  const bool ok = lines.size() == 5 && cb >= 1 && cb <= 2 && lines[0] == "[0, 1, 4, 9, 16]" &&
                  lines[cb == 1 ? 2 : 1] == "[3, 7, 11]" && lines[3] == "[0, 1, 4, 9, 16]" && lines[4] == "[3, 7, 11]";
  if (!ok) tutorial::dump("001-f: printed", lines);
  return ok;
}

}  // namespace

int main() {
  tutorial::Transcript::open();
  bool ok = pool_pids();
  ok = pool_map_example() && ok;
  ok = apply_and_apply_async() && ok;
  ok = map_and_map_async() && ok;
  return ok ? 0 : 1;
}
