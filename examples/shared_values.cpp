// What a child changes stays in the child unless it lives in shared memory: the tutorials'
// programs that show it, and the Value and Manager ones that value_array.cpp and
// manager_dict.cpp do not cover (004, 002, 001).
//
//   004-15 进程间无法共享内存     5 children each do num -= 1 on their copy; print(num) -> 100
//   002-20 不使用共享变量         f(n, a): n = 3.1415927; a[i] = -a[i] in the child;
//                                 print num -> 0; print arr[:] -> [0, 1, ..., 9]
//   001-m  Value                  two processes each add 1 to a Value('i', 0) and print it -> 1 / 2
//   002-22 共享字符串变量          manager.Value(c_char_p, "Hello"); the child appends ", World!"
//                                 print shareStr.value -> Hello, World!
//   001-n  Manager dict / list    five processes each set d[i] = i * i and append i to l
//                                 -> {0: 0, 1: 1, 2: 4, 3: 9, 4: 16} / [0, 1, 2, 3, 4]
//
// Python's Manager runs a server process and hands out proxies; here the shared string is a
// Value<FixedString<32>> and the dict and list are a Dict<int, int> and a List<int> in an
// Arena, reached directly by every process. 001's code blocks were lost in the stored text:
// 001-m and 001-n follow the prose around them ("创建了两个进程,每个进程都会将共享内存中的值加1,
// 并将其打印出来"; "利用Manager创建字典,列表等对象,传入进程,在各进程所对应的方法中修改"). A Manager
// dict prints in insertion order, which the processes race for: the port prints it sorted by
// key, as the reconstructed Python program does (dict(sorted(d.items()))).
// Exits 0 only if every section printed the Python program's lines.
#include "transcript.hpp"

#include <multiproc/arena.hpp>
#include <multiproc/dict.hpp>
#include <multiproc/fixed_string.hpp>
#include <multiproc/list.hpp>
#include <multiproc/process.hpp>
#include <multiproc/value.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace mp = multiproc;
using tutorial::expect;
using tutorial::say;
using tutorial::section;

namespace {

bool join_all(std::vector<mp::Process>& ps) {
  bool ok = true;
  for (auto& p : ps) p.start();
  for (auto& p : ps) {
    p.join();
    ok = ok && p.exitcode() == 0;
  }
  return ok;
}

bool no_shared_memory() {
  const int mark = section("004-15 进程间无法共享内存");
  int num = 100;
  std::vector<mp::Process> p_l;
  for (int i = 0; i < 5; ++i)
    p_l.emplace_back(
        [](int n) {
          n -= 1;  // the child's own copy
          return n == 99 ? 0 : 1;
        },
        num);
  const bool ok = join_all(p_l);
  say("%d", num);
  return expect(mark, {"100"}, "004-15") && ok;
}

bool no_shared_variable() {
  const int mark = section("002-20 示例1:不使用共享变量");
  double num = 0;
  std::array<int, 10> arr{};
  for (int i = 0; i < 10; ++i) arr[i] = i;
  // Process(target=f, args=(num, arr)): the child gets copies (the fork's copy of the memory)
  mp::Process p(
      [](double& n, std::array<int, 10>& a) {
        n = 3.1415927;
        for (auto& x : a) x = -x;
      },
      std::ref(num), std::ref(arr));
  p.start();
  p.join();
  say("%g", num);
  say("%s", tutorial::py_list(arr).c_str());
  return expect(mark, {"0", "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"}, "002-20") && p.exitcode() == 0;
}

bool value_counter(mp::Arena& arena) {
  const int mark = section("001-m 共享内存 Value: 两个进程各加1");
  auto& counter = arena.make<mp::Value<int>>("counter", 0);
  std::vector<mp::Process> ps;
  for (int i = 0; i < 2; ++i)
    ps.emplace_back(
        [](mp::Value<int>& v) {
          std::scoped_lock hold(v.get_lock());  // with v.get_lock(): v.value += 1; print(v.value)
          v.store(v.load() + 1);
          say("%d", v.load());
        },
        std::ref(counter));
  const bool ok = join_all(ps);
  return expect(mark, {"1", "2"}, "001-m") && counter.load() == 2 && ok;
}

using Str = mp::FixedString<32>;

bool shared_string(mp::Arena& arena) {
  const int mark = section("002-22 多进程间共享字符串变量");
  auto& shareStr = arena.make<mp::Value<Str>>("shareStr", Str("Hello"));
  mp::Process process(
      [](mp::Value<Str>& s) { s.store(Str(s.load().str() + ", World!")); },  // greet
      std::ref(shareStr));
  process.start();
  process.join();
  say("%s", shareStr.load().str().c_str());
  return expect(mark, {"Hello, World!"}, "002-22") && process.exitcode() == 0;
}

bool manager_dict_list(mp::Arena& arena) {
  const int mark = section("001-n Manager 创建字典,列表 并在各进程中修改");
  auto& d = arena.make<mp::Dict<int, int>>("d", 16);
  auto& l = arena.make<mp::List<int>>("l", 16);
  std::vector<mp::Process> ps;
  for (int i = 0; i < 5; ++i)
    ps.emplace_back(
        [](mp::Dict<int, int>& dd, mp::List<int>& ll, int n) {
          dd.insert_or_assign(n, n * n);
          ll.push_back(n);
        },
        std::ref(d), std::ref(l), i);
  const bool ok = join_all(ps);
  std::vector<std::pair<int, int>> items;
  d.for_each([&](const int& k, const int& v) { items.emplace_back(k, v); });
  std::sort(items.begin(), items.end());
  std::string dict = "{";
  for (std::size_t i = 0; i < items.size(); ++i)
    dict += (i ? ", " : "") + std::to_string(items[i].first) + ": " + std::to_string(items[i].second);
  dict += "}";
  std::vector<int> list = l.snapshot();
  std::sort(list.begin(), list.end());
  say("%s", dict.c_str());
  say("%s", tutorial::py_list(list).c_str());
  return expect(mark, {"{0: 0, 1: 1, 2: 4, 3: 9, 4: 16}", "[0, 1, 2, 3, 4]"}, "001-n") && ok;
}

}  // namespace

int main() {
  tutorial::Transcript::open();
  mp::Arena arena = mp::Arena::create(1 << 20);
  bool ok = no_shared_memory();
  ok = no_shared_variable() && ok;
  ok = value_counter(arena) && ok;
  ok = shared_string(arena) && ok;
  ok = manager_dict_list(arena) && ok;
  return ok ? 0 : 1;
}
