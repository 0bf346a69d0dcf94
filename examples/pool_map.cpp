// The tutorials' Pool.map / Pool.apply / starmap programs (001, 002, 004).
//
// 002, "创建简单的进程池":
//   def f(x): return x * x
//   pool = Pool(processes=4)
//   result = pool.apply_async(f, [10]); print result.get(timeout=1)    # 100
//   print pool.map(f, range(10))                                       # [0, 1, 4, ..., 81]
//
// 002, "测试单进程和多进程程序执行的效率":
//   def m1(x): time.sleep(0.01); return x * x
//   pool = multiprocessing.Pool(multiprocessing.cpu_count())
//   t = time.time(); pool.map(m1, range(1000)); print 'time elapse:', time.time() - t
//   t = time.time(); map(m1, range(1000));      print 'time elapse:', time.time() - t
//
// 004, "map / apply":
//   def func(num): num += 1; print(num); return num
//   p = Pool(5); res = p.map(func, [i for i in range(100)]); p.close(); p.join()
//   print('主进程中map的返回值', res)                      # [1, 2, ..., 100]
//   for i in range(100): res = pool.apply(func, args=(i,)); print(res)
//
// 001, "starmap": pool.starmap(func, [(1, 2), (3, 4)])   # [3, 7]
//
// Sizes here: 100 sleeps of 2 ms for the timing, 10 items for the printing ones. Exits 0 only
// if every result is the expected one (and the pool beats the serial loop on time), and the
// printed lines are the Python programs' (transcript.hpp).
#include "transcript.hpp"

#include <multiproc/pool.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace mp = multiproc;
using tutorial::say;
using tutorial::str;
using namespace std::chrono_literals;

namespace {

int f(int x) { return x * x; }
int m1(int x) {
  std::this_thread::sleep_for(2ms);
  return x * x;
}
int func(int num) {
  num += 1;
  say("%d", num);
  return num;
}
int add(int a, int b) { return a + b; }

template <class T>
std::string py_list(const std::vector<T>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

std::vector<int> range(int n) {
  std::vector<int> v(n);
  for (int i = 0; i < n; ++i) v[i] = i;
  return v;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

int main() {
  tutorial::Transcript::open();
  bool ok = true;
  int mark = 0;
  {
    mp::Pool pool(4);
    auto result = pool.apply_async(f, 10);
    const auto got = result.get_for(1s);
    say("%d", got.value_or(-1));
    ok = ok && got == 100;
    const auto squares = pool.map(f, range(10));
    say("%s", py_list(squares).c_str());
    ok = ok && py_list(squares) == "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]";
  }
  ok = tutorial::expect(mark, {"100", "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]"}, "002-11") && ok;
  mark = tutorial::Transcript::get().size();
  {
    mp::Pool pool(mp::cpu_count());
    auto t = std::chrono::steady_clock::now();
    const auto a = pool.map(m1, range(100));
    const double parallel = seconds_since(t);
    say("time elapse: %f", parallel);
    t = std::chrono::steady_clock::now();
    std::vector<int> b;
    for (int x : range(100)) b.push_back(m1(x));
    const double serial = seconds_since(t);
    say("time elapse: %f", serial);
    ok = ok && a == b;
    if (mp::cpu_count() > 1) ok = ok && parallel < serial;
  }
  for (const auto& line : tutorial::Transcript::get().since(mark)) ok = ok && line.rfind("time elapse: ", 0) == 0;
  ok = ok && tutorial::Transcript::get().size() == mark + 2;
  mark = tutorial::Transcript::get().size();
  {
    mp::Pool p(5);
    const auto res = p.map(func, range(10));
    p.close();
    p.join();
    say("主进程中map的返回值 %s", py_list(res).c_str());
    ok = ok && py_list(res) == "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]";
  }
  {  // func's prints come from the workers in any order; the result line comes last
    std::vector<std::string> want;
    for (int i = 1; i <= 10; ++i) want.push_back(std::to_string(i));
    want.push_back("主进程中map的返回值 [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]");
    ok = tutorial::expect_unordered(mark, want, "004-38") && tutorial::Transcript::get().since(mark).back() == want.back() && ok;
  }
  mark = tutorial::Transcript::get().size();
  {
    mp::Pool pool(mp::cpu_count() + 1);
    for (int i = 0; i < 10; ++i) {
      const int res = pool.apply(func, i);  // synchronous: one task at a time
      say("%d", res);
      ok = ok && res == i + 1;
    }
    const auto sums = pool.starmap(add, std::vector<std::pair<int, int>>{{1, 2}, {3, 4}});
    say("%s", py_list(sums).c_str());
    ok = ok && py_list(sums) == "[3, 7]";
  }
  {  // apply is synchronous: the worker's print, then the parent's, task after task
    std::vector<std::string> want;
    for (int i = 1; i <= 10; ++i) want.insert(want.end(), 2, std::to_string(i));
    want.push_back("[3, 7]");
    ok = tutorial::expect(mark, want, "004-39, starmap") && ok;
  }
  return ok ? 0 : 1;
}
