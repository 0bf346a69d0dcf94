// The README's main demo: the same four workloads done with Python's multiprocessing (through
// python3, scripts/demo_python.py) and with multiproc, side by side, with the ratio.
//
//   build-demo/examples/demo            all four
//   build-demo/examples/demo --no-python multiproc only
#include <multiproc/multiproc.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#ifndef MULTIPROC_DEMO_PY
#define MULTIPROC_DEMO_PY "scripts/demo_python.py"
#endif

namespace mp = multiproc;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// One producer process, one consumer process, 8-byte items through a 1024-slot queue.
double queue_msgs_per_s(mp::Arena& arena, long n) {
  auto& q = arena.make_anonymous<mp::Queue<long>>(1024);
  mp::Process consumer([&q, n] {
    long sum = 0;
    for (long i = 0; i < n; ++i) sum += q.get();
    return sum == n * (n - 1) / 2 ? 0 : 1;
  });
  consumer.start();
  const auto t = Clock::now();
  for (long i = 0; i < n; ++i) q.put(i);
  consumer.join();
  const double dt = seconds_since(t);
  if (consumer.exitcode() != 0) throw mp::Error(mp::errc::bad_message, "demo: the queue lost or corrupted items");
  arena.destroy(q);
  return n / dt;
}

// 8-byte messages echoed by a child: microseconds per round trip.
double pipe_round_trip_us(long n) {
  auto ends = mp::Pipe();
  mp::Connection& a = ends.first;
  mp::Connection& b = ends.second;
  mp::Process echo([&b, n] {
    for (long i = 0; i < n; ++i) b.send_bytes(b.recv_bytes());
  });
  echo.start();
  b.close();
  const std::byte msg[8] = {};
  const auto t = Clock::now();
  for (long i = 0; i < n; ++i) {
    a.send_bytes(msg);
    (void)a.recv_bytes();
  }
  const double dt = seconds_since(t);
  echo.join();
  return dt / static_cast<double>(n) * 1e6;
}

double lock_ops_per_s(mp::Arena& arena, long n) {
  auto& lock = arena.make_anonymous<mp::Lock>();
  const auto t = Clock::now();
  for (long i = 0; i < n; ++i) {
    lock.lock();
    lock.unlock();
  }
  const double dt = seconds_since(t);
  arena.destroy(lock);
  return n / dt;
}

long square(long x) { return x * x; }

double pool_map_tasks_per_s(long n) {
  mp::Pool pool(2);
  std::vector<long> warm(100), inputs(static_cast<std::size_t>(n));
  for (long i = 0; i < n; ++i) inputs[static_cast<std::size_t>(i)] = i;
  (void)pool.map(square, warm);  // start the workers, as the Python side does
  const auto t = Clock::now();
  const std::vector<long> out = pool.map(square, inputs);
  const double dt = seconds_since(t);
  if (out.back() != (n - 1) * (n - 1)) throw mp::Error(mp::errc::bad_message, "demo: Pool.map returned wrong results");
  pool.close();
  pool.join();
  return n / dt;
}

std::map<std::string, double> python_results() {
  std::map<std::string, double> out;
  std::FILE* p = ::popen("python3 " MULTIPROC_DEMO_PY " 2>/dev/null", "r");
  if (!p) return out;
  char name[32];
  double value;
  while (std::fscanf(p, "%31s %lf", name, &value) == 2) out[name] = value;
  ::pclose(p);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const bool with_python = !(argc > 1 && std::strcmp(argv[1], "--no-python") == 0);
  auto arena = mp::Arena::create(16 << 20, "demo");

  std::printf("multiproc demo: the same work with Python's multiprocessing and with multiproc\n");
  std::printf("(2 processes unless noted; Python %s)\n\n", with_python ? "via python3 scripts/demo_python.py" : "skipped");
  const auto py = with_python ? python_results() : std::map<std::string, double>{};

  struct Row {
    const char* key;
    const char* what;
    const char* unit;
    bool lower_is_better;
    double ours;
  };
  const Row rows[] = {
      {"queue", "Queue put->get, 8 B items", "msgs/s", false, queue_msgs_per_s(arena, 2'000'000)},
      {"pipe", "Pipe round trip, 8 B", "us", true, pipe_round_trip_us(20'000)},
      {"lock", "Lock acquire+release (1 process)", "ops/s", false, lock_ops_per_s(arena, 5'000'000)},
      {"pool", "Pool(2).map, 100k trivial tasks", "tasks/s", false, pool_map_tasks_per_s(100'000)},
  };
  std::printf("%-36s %16s %16s %9s\n", "workload", "Python", "multiproc", "ratio");
  for (const Row& r : rows) {
    char pys[32] = "-", ratio[32] = "-";
    if (auto it = py.find(r.key); it != py.end() && it->second > 0) {
      std::snprintf(pys, sizeof pys, "%.4g %s", it->second, r.unit);
      std::snprintf(ratio, sizeof ratio, "%.1fx", r.lower_is_better ? it->second / r.ours : r.ours / it->second);
    }
    char ours[32];
    std::snprintf(ours, sizeof ours, "%.4g %s", r.ours, r.unit);
    std::printf("%-36s %16s %16s %9s\n", r.what, pys, ours, ratio);
  }
  std::printf("\nratio: how many times faster multiproc is on this machine, in this run.\n");
  return 0;
}
