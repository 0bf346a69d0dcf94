// The tutorials' shared Value and Array programs (002 and 004).
//
// 002, "多进程间共享数字变量": without shared memory the child's changes stay in the child;
// with Value and Array the parent sees them.
//   def f(n, a):
//       n.value = 3.1415927
//       for i in range(len(a)): a[i] = -a[i]
//   num = Value('d', 0.0); arr = Array('i', range(10))
//   p = Process(target=f, args=(num, arr)); p.start(); p.join()
//   print num.value        # 3.1415927
//   print arr[:]           # [0, -1, -2, -3, -4, -5, -6, -7, -8, -9]
//
// 004, "Value":
//   def func(num):
//       num.value -= 1
//       print("子进程中的num值", num.value)        # 子进程中的num值 99
//   num = Value("i", 100)
//   print("父进程中一开始的num", num.value)        # 父进程中一开始的num 100
//   p = Process(target=func, args=(num,)); p.start(); p.join()
//   print("父进程中后来的num", num.value)          # 父进程中后来的num 99
//
// 004, "模拟银行卡存钱取钱": withdraw 6 x 100 and deposit 3 x 100 under one Lock.
//   money = Value("i", 1000); l = Lock()
//   p1 = Process(target=get_money, args=(l, money)); p2 = Process(target=save_money, ...)
//   ... print(money.value)   # 700
// (sleeps of 5 ms instead of 0.5 s). Exits 0 only if all three print the expected values
// (their printed lines are checked: transcript.hpp).
#include "transcript.hpp"

#include <multiproc/arena.hpp>
#include <multiproc/lock.hpp>
#include <multiproc/process.hpp>
#include <multiproc/value.hpp>

#include <chrono>
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace mp = multiproc;
using tutorial::say;
using namespace std::chrono_literals;

int main() {
  tutorial::Transcript::open();
  mp::Arena arena = mp::Arena::create(1 << 16);
  bool ok = true;

  // 002
  auto& num = arena.make<mp::Value<double>>("num", 0.0);
  auto& arr = arena.make<mp::Array<int>>("arr", 10);
  for (int i = 0; i < 10; ++i) arr[i] = i;
  mp::Process p(
      [](mp::Value<double>& n, mp::Array<int>& a) {
        n.store(3.1415927);
        for (auto& x : a) x = -x;
      },
      std::ref(num), std::ref(arr));
  p.start();
  p.join();
  say("%.7f", num.load());
  std::string list = "[";
  for (std::size_t i = 0; i < arr.size(); ++i) list += (i ? ", " : "") + std::to_string(arr[i]);
  list += "]";
  say("%s", list.c_str());
  ok = ok && num.load() == 3.1415927 && list == "[0, -1, -2, -3, -4, -5, -6, -7, -8, -9]";

  // 004, Value
  auto& count = arena.make<mp::Value<int>>("count", 100);
  say("父进程中一开始的num %d", count.load());
  mp::Process q(
      [](mp::Value<int>& n) {
        n.fetch_sub(1);
        say("子进程中的num值 %d", n.load());
      },
      std::ref(count));
  q.start();
  q.join();
  say("父进程中后来的num %d", count.load());
  ok = ok && count.load() == 99;

  // 004, the bank account: the Lock keeps each process's run of changes together.
  auto& money = arena.make<mp::Value<int>>("money", 1000);
  auto& l = arena.make<mp::Lock>("l");
  auto change = [](mp::Lock& lock, mp::Value<int>& m, int times, int by) {
    std::scoped_lock hold(lock);
    for (int i = 0; i < times; ++i) {
      m.store(m.load() + by);  // a read-modify-write: safe only under the lock
      std::this_thread::sleep_for(5ms);
    }
  };
  mp::Process get_money(change, std::ref(l), std::ref(money), 6, -100);
  mp::Process save_money(change, std::ref(l), std::ref(money), 3, 100);
  get_money.start();
  save_money.start();
  get_money.join();
  save_money.join();
  say("%d", money.load());
  ok = ok && money.load() == 700;
  ok = tutorial::expect(0,
                       {"3.1415927", "[0, -1, -2, -3, -4, -5, -6, -7, -8, -9]", "父进程中一开始的num 100", "子进程中的num值 99",
                        "父进程中后来的num 99", "700"},
                       "002-21, 004-17, 004-20") &&
       ok;
  ok = ok && p.exitcode() == 0 && q.exitcode() == 0 && get_money.exitcode() == 0 && save_money.exitcode() == 0;
  return ok ? 0 : 1;
}
