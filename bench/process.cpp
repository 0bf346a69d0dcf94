// bench-process: what Process and Pool cost, next to their peers.
//
//   * Process start + join (fork, pidfd_open, poll on the pidfd, waitid) of a child that does
//     nothing, vs raw fork + _exit + waitpid, vs posix_spawn("/bin/true") + waitpid (an exec:
//     what a spawn-based launcher pays), and the daemon path (the fork is handed to the
//     supervisor thread).
//   * Pool.map of a trivial function (x * x) over 100 k ints, cpu_count() workers.
//   * Pool.apply and Executor submit().get() round trips of a trivial task; the cost of the
//     submit() call alone (1000 submits, then wait for all).
//   * Python 3 on the same work (multiprocessing.Pool.map over range(100000) with the default
//     chunksize, Pool.apply, ProcessPoolExecutor.submit().result()), run through python3
//     before our benchmarks; the ratios are printed at the end. BENCH_PROCESS_NO_PYTHON=1
//     skips it.
//
// Numbers are noisy on a shared 2-core machine: compare the ratios of one run.
#include <multiproc/pool.hpp>
#include <multiproc/process.hpp>

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <numeric>
#include <spawn.h>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace mp = multiproc;

namespace {

constexpr int kMapItems = 100'000;

int square(int x) { return x * x; }

// ---- starting processes ----------------------------------------------------------------------

void BM_Process_StartJoin(benchmark::State& state) {
  for (auto _ : state) {
    mp::Process p([] {});
    p.start();
    p.join();
    if (p.exitcode() != 0) state.SkipWithError("child failed");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Process_StartJoin)->UseRealTime();

void BM_Process_DaemonStartJoin(benchmark::State& state) {
  for (auto _ : state) {
    mp::Process p([] {});
    p.daemon(true).start();
    p.join();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Process_DaemonStartJoin)->UseRealTime();

void BM_Raw_ForkWaitpid(benchmark::State& state) {
  for (auto _ : state) {
    const pid_t pid = ::fork();
    if (pid == 0) ::_exit(0);
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Raw_ForkWaitpid)->UseRealTime();

void BM_PosixSpawn_True(benchmark::State& state) {
  char arg0[] = "true";
  char* argv[] = {arg0, nullptr};
  for (auto _ : state) {
    pid_t pid = 0;
    if (::posix_spawn(&pid, "/bin/true", nullptr, nullptr, argv, environ) != 0) {
      state.SkipWithError("posix_spawn /bin/true failed");
      return;
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PosixSpawn_True)->UseRealTime();

// ---- pools -------------------------------------------------------------------------------------

mp::Pool& pool() {
  static mp::Pool* p = new mp::Pool(mp::cpu_count());  // lives for the whole run
  return *p;
}

void BM_Pool_Map100k(benchmark::State& state) {
  std::vector<int> in(kMapItems);
  std::iota(in.begin(), in.end(), 0);
  (void)pool().map(square, in);  // warm: workers started, arena pages touched
  for (auto _ : state) {
    auto out = pool().map(square, in);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * kMapItems);
}
BENCHMARK(BM_Pool_Map100k)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_Pool_ApplyRoundTrip(benchmark::State& state) {
  (void)pool().apply(square, 1);
  int i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(pool().apply(square, ++i));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Pool_ApplyRoundTrip)->UseRealTime()->Unit(benchmark::kMicrosecond);

mp::Executor& executor() {
  static mp::Executor* e = new mp::Executor(mp::cpu_count());
  return *e;
}

void BM_Executor_SubmitGet(benchmark::State& state) {
  (void)executor().submit(square, 1).get();
  int i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(executor().submit(square, ++i).get());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Executor_SubmitGet)->UseRealTime()->Unit(benchmark::kMicrosecond);

/// The submit() call alone: 1000 submits back to back (timed), then wait for all (not timed).
void BM_Executor_SubmitCall(benchmark::State& state) {
  std::vector<mp::Future<int>> fs;
  fs.reserve(1000);
  for (auto _ : state) {
    fs.clear();
    for (int i = 0; i < 1000; ++i) fs.push_back(executor().submit(square, i));
    state.PauseTiming();
    for (auto& f : fs) benchmark::DoNotOptimize(f.get());
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_Executor_SubmitCall)->Unit(benchmark::kMicrosecond);

// ---- Python ----------------------------------------------------------------------------------

constexpr const char* kPython = R"PY(
import multiprocessing as mp, sys, time
from concurrent.futures import ProcessPoolExecutor

def f(x):
    return x * x

def best(fn, reps):
    b = float('inf')
    for _ in range(reps):
        t = time.perf_counter(); fn(); b = min(b, time.perf_counter() - t)
    return b

if __name__ == '__main__':
    mp.set_start_method('fork')
    n, workers, k = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    data = list(range(n))
    with mp.Pool(workers) as p:
        p.map(f, data)
        print('map', n / best(lambda: p.map(f, data), 5), flush=True)
        p.apply(f, (1,))
        print('apply', best(lambda: [p.apply(f, (i,)) for i in range(k)], 3) / k, flush=True)
    with ProcessPoolExecutor(workers) as ex:
        ex.submit(f, 1).result()
        print('submit', best(lambda: [ex.submit(f, i).result() for i in range(k)], 3) / k, flush=True)
    def start_join():
        q = mp.Process(target=f, args=(1,)); q.start(); q.join()
    print('process', best(lambda: [start_join() for _ in range(200)], 3) / 200, flush=True)
)PY";

std::map<std::string, double> g_python;  // map: items/s; apply, submit, process: seconds each

void run_python() {
  if (std::getenv("BENCH_PROCESS_NO_PYTHON") != nullptr) return;
  char script[] = "/tmp/multiproc-bench-process-XXXXXX.py";
  const int fd = ::mkstemps(script, 3);
  if (fd < 0) return;
  const std::string text = kPython;
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (ok) {
    const std::string cmd = std::string("python3 ") + script + " " + std::to_string(kMapItems) + " " +
                            std::to_string(mp::cpu_count()) + " 2000 2>/dev/null";
    if (FILE* p = ::popen(cmd.c_str(), "r")) {
      char what[32];
      double v;
      while (std::fscanf(p, "%31s %lf", what, &v) == 2) g_python[what] = v;
      ::pclose(p);
    }
  }
  ::unlink(script);
}

void BM_Python(benchmark::State& state, const char* key) {
  for (auto _ : state) state.SetIterationTime(1.0);
  const auto it = g_python.find(key);
  if (it == g_python.end()) {
    state.SkipWithError("python3 not run (BENCH_PROCESS_NO_PYTHON) or failed");
    return;
  }
  if (std::string(key) == "map")
    state.counters["items_per_second"] = it->second;
  else
    state.counters["us_each"] = it->second * 1e6;
}
BENCHMARK_CAPTURE(BM_Python, Pool_Map100k, "map")->Iterations(1)->UseManualTime();
BENCHMARK_CAPTURE(BM_Python, Pool_ApplyRoundTrip, "apply")->Iterations(1)->UseManualTime();
BENCHMARK_CAPTURE(BM_Python, Executor_SubmitResult, "submit")->Iterations(1)->UseManualTime();
BENCHMARK_CAPTURE(BM_Python, Process_StartJoin, "process")->Iterations(1)->UseManualTime();

// ---- ratios -------------------------------------------------------------------------------------

class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs)
      if (!r.error_occurred) seconds_[r.run_name.function_name] = r.GetAdjustedRealTime() / unit(r.time_unit);
    ConsoleReporter::ReportRuns(runs);
  }
  void print_ratios() const {
    std::printf("\nratios (same run; time per operation, lower is better for multiproc when the ratio is > 1)\n");
    const double start = get("BM_Process_StartJoin");
    auto row = [&](const char* what, double ours, double peer, const char* peer_name) {
      if (ours > 0 && peer > 0)
        std::printf("  %-34s multiproc %9.1f us   %-32s %9.1f us   peer/multiproc %6.2fx\n", what, ours * 1e6, peer_name,
                    peer * 1e6, peer / ours);
    };
    row("Process start+join", start, get("BM_Raw_ForkWaitpid"), "raw fork+_exit+waitpid");
    row("Process start+join", start, get("BM_PosixSpawn_True"), "posix_spawn(/bin/true)+waitpid");
    row("Process daemon start+join", get("BM_Process_DaemonStartJoin"), get("BM_Raw_ForkWaitpid"), "raw fork+_exit+waitpid");
    if (g_python.count("process")) row("Process start+join", start, g_python.at("process"), "Python Process start+join");
    const double map = get("BM_Pool_Map100k");
    if (map > 0 && g_python.count("map"))
      std::printf("  %-34s multiproc %9.2f M items/s   Python Pool.map %6.2f M items/s   multiproc/Python %6.1fx\n",
                  "Pool.map x*x over 100k ints", kMapItems / map / 1e6, g_python.at("map") / 1e6,
                  (kMapItems / map) / g_python.at("map"));
    if (g_python.count("apply")) row("Pool.apply round trip", get("BM_Pool_ApplyRoundTrip"), g_python.at("apply"), "Python Pool.apply");
    if (g_python.count("submit"))
      row("Executor submit().get()", get("BM_Executor_SubmitGet"), g_python.at("submit"), "Python submit().result()");
  }

 private:
  static double unit(benchmark::TimeUnit u) {
    switch (u) {
      case benchmark::kNanosecond: return 1e9;
      case benchmark::kMicrosecond: return 1e6;
      case benchmark::kMillisecond: return 1e3;
      default: return 1.0;
    }
  }
  double get(const std::string& name) const {
    const auto it = seconds_.find(name);
    return it == seconds_.end() ? 0.0 : it->second;
  }
  std::map<std::string, double> seconds_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  run_python();  // first, while nothing else of ours runs
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_ratios();
  benchmark::Shutdown();
  return 0;
}
