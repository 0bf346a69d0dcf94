// Tutorial 004, "事件机制": an Event's flag decides whether wait() blocks; a traffic light
// process sets and clears it, cars wait for green.
//
//   e = Event()
//   print(e.is_set())   # False
//   e.set(); print(e.is_set())   # True
//   e.wait(); print("aaaa")
//   e.clear(); print(e.is_set())  # False
//
//   def traffic_light(e):
//       while True:
//           if e.is_set():
//               time.sleep(5); print("红灯亮了"); e.clear()
//           else:
//               time.sleep(3); print("绿灯亮了"); e.set()
//   def Car(e, i):
//       e.wait()
//       print(f"第{str(i)}辆车通过")
//   light = Process(target=traffic_light, args=(e,)); light.start()
//   for i in range(50):
//       if i % 3 == 0: time.sleep(5)
//       Process(target=Car, args=(e, i)).start()
//
// Here: 9 cars, lights of 30 ms (green) and 20 ms (red), a car every 10 ms; the light is a
// daemon (the tutorial's runs forever). Output: the first four lines above, then 红灯亮了 /
// 绿灯亮了 lines and "第i辆车通过" for every car, each after a green light. Exits 0 only if
// every car passed, and printed so (transcript.hpp).
#include "transcript.hpp"

#include <multiproc/arena.hpp>
#include <multiproc/event.hpp>
#include <multiproc/process.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <thread>
#include <vector>

namespace mp = multiproc;
using namespace std::chrono_literals;

using tutorial::say;

namespace {

void traffic_light(mp::Event& e) {
  for (;;) {
    if (e.is_set()) {
      std::this_thread::sleep_for(30ms);
      say("红灯亮了");
      e.clear();
    } else {
      std::this_thread::sleep_for(20ms);
      say("绿灯亮了");
      e.set();
    }
  }
}

void car(mp::Event& e, int i, std::atomic<int>& passed) {
  e.wait();
  say("第%d辆车通过", i);
  passed.fetch_add(1);
}

}  // namespace

int main() {
  tutorial::Transcript::open();
  mp::Arena arena = mp::Arena::create(1 << 16);
  auto& e = arena.make<mp::Event>("e");
  auto& passed = arena.make<std::atomic<int>>("passed", 0);

  say("%s", e.is_set() ? "True" : "False");
  e.set();
  say("%s", e.is_set() ? "True" : "False");
  e.wait();
  say("aaaa");
  e.clear();
  say("%s", e.is_set() ? "True" : "False");
  bool ok = !e.is_set();

  mp::Process light(traffic_light, std::ref(e));
  light.daemon(true);
  light.start();
  std::vector<mp::Process> cars;
  for (int i = 0; i < 9; ++i) {
    if (i % 3 == 0) std::this_thread::sleep_for(10ms);
    cars.emplace_back(car, std::ref(e), i, std::ref(passed)).start();
  }
  for (auto& c : cars) {
    ok = ok && c.join_for(30s) && c.exitcode() == 0;
  }
  ok = ok && passed.load() == 9;
  // The printed lines: the Event's four, then lights and cars; the first light is green (the
  // event starts cleared), every car passes once, and only after a green light.
  const auto lines = tutorial::Transcript::get().since(0);
  ok = tutorial::expect(0, {"False", "True", "aaaa", "False"}, "004-23 (first lines)", 4) && ok;
  bool green = false;
  int cars_passed[9] = {};
  for (std::size_t k = 4; ok && k < lines.size(); ++k) {
    int car_no = -1;
    if (lines[k] == "绿灯亮了") {
      green = true;
    } else if (lines[k] == "红灯亮了") {
      ok = green;  // red follows a green
    } else if (std::sscanf(lines[k].c_str(), "第%d辆车通过", &car_no) == 1 && car_no >= 0 && car_no < 9) {
      ok = green && ++cars_passed[car_no] == 1;
    } else {
      ok = false;
    }
  }
  for (int n : cars_passed) ok = ok && n == 1;
  if (!ok) tutorial::dump("004-24: printed", lines);
  return ok ? 0 : 1;  // the light (a daemon) ends with us
}
