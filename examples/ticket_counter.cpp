// Tutorial 000, "文件当数据库，模拟抢票": clients race for one ticket recorded in a JSON file
// (db.txt holds {"count":1}); reading is free, buying happens under a Lock, so exactly one
// client succeeds.
//
//   def search():
//       dic = json.load(open('db.txt'))
//       print('\033[43m剩余票数%s\033[0m' % dic['count'])
//   def get():
//       dic = json.load(open('db.txt'))
//       time.sleep(0.1)                      # network delay reading
//       if dic['count'] > 0:
//           dic['count'] -= 1
//           time.sleep(0.2)                  # network delay writing
//           json.dump(dic, open('db.txt', 'w'))
//           print('\033[43m购票成功\033[0m')
//   def task(lock):
//       search(); lock.acquire(); get(); lock.release()
//   lock = Lock()
//   for i in range(100): Process(target=task, args=(lock,)).start()
//
// Output: 100 lines "剩余票数1" (some may read 0 if they search after the sale), and exactly
// one "购票成功". Here: 10 clients, 10 ms / 20 ms delays, and db.txt in a temporary directory.
// Exits 0 only if exactly one purchase happened (and was printed: transcript.hpp) and the file
// ends at {"count": 0}.
#include "ticket_db.hpp"
#include "transcript.hpp"

#include <multiproc/arena.hpp>
#include <multiproc/lock.hpp>
#include <multiproc/process.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace mp = multiproc;
using tutorial::say;
using namespace std::chrono_literals;
using tutorial::dump_count;
using tutorial::load_count;

namespace {

void search(const std::string& db) {
  say("\033[43m剩余票数%d\033[0m", load_count(db));
}

void get(const std::string& db, std::atomic<int>& sold) {
  int count = load_count(db);
  std::this_thread::sleep_for(10ms);
  if (count > 0) {
    --count;
    std::this_thread::sleep_for(20ms);
    dump_count(db, count);
    say("\033[43m购票成功\033[0m");
    sold.fetch_add(1);
  }
}

void task(const std::string& db, mp::Lock& lock, std::atomic<int>& sold) {
  search(db);
  std::scoped_lock hold(lock);
  get(db, sold);
}

}  // namespace

int main() {
  tutorial::Transcript::open();
  char dir[] = "/tmp/multiproc-tickets-XXXXXX";
  if (!::mkdtemp(dir)) return 1;
  const std::string db = std::string(dir) + "/db.txt";
  dump_count(db, 1);

  mp::Arena arena = mp::Arena::create(1 << 16);
  mp::Lock& lock = arena.make<mp::Lock>("lock");
  auto& sold = arena.make<std::atomic<int>>("sold", 0);
  std::vector<mp::Process> clients;
  for (int i = 0; i < 10; ++i) clients.emplace_back(task, db, std::ref(lock), std::ref(sold));
  for (auto& c : clients) c.start();
  bool ok = true;
  for (auto& c : clients) {
    c.join();
    ok = ok && c.exitcode() == 0;
  }
  ok = ok && sold.load() == 1 && load_count(db) == 0;
  int searches = 0, purchases = 0;  // the printed lines: 10 searches (1 or 0 left), one purchase
  for (const auto& line : tutorial::Transcript::get().since(0)) {
    searches += line == "\033[43m剩余票数1\033[0m" || line == "\033[43m剩余票数0\033[0m";
    purchases += line == "\033[43m购票成功\033[0m";
  }
  ok = ok && searches == 10 && purchases == 1 && tutorial::Transcript::get().size() == 11;
  std::remove(db.c_str());
  ::rmdir(dir);
  return ok ? 0 : 1;
}
