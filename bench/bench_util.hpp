// Shared pieces of the bench-* binaries: objects in MAP_SHARED memory, a forked partner
// process, and the floor every cross-process latency is compared against — a raw
// FUTEX_WAIT/FUTEX_WAKE ping-pong that sleeps whenever it is not its turn.
#pragma once

#include <multiproc/futex.hpp>

#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>
#include <new>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

namespace bench {

template <class T>
T* shared_new() {
  void* p = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return new (p) T();
}

template <class T>
void shared_delete(T* p) {
  p->~T();
  ::munmap(p, sizeof(T));
}

/// Forks a child that runs f() and _exits; the caller waitpid()s it.
template <class F>
pid_t fork_partner(F f) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    f();
    ::_exit(0);
  }
  return pid;
}

/// One round trip per iteration between this process and a forked partner through one raw
/// futex word: the floor for a parked hand-off (use with ->UseRealTime()).
inline void raw_futex_ping_pong(benchmark::State& state) {
  struct S {
    std::atomic<std::uint32_t> turn{0};
    std::atomic<std::uint32_t> stop{0};
  };
  auto* s = shared_new<S>();
  const pid_t child = fork_partner([s] {
    for (;;) {
      while (s->turn.load() != 1) {
        if (s->stop.load()) return;
        multiproc::futex_wait(s->turn, 0);
      }
      s->turn.store(0);
      multiproc::futex_wake(s->turn, 1);
    }
  });
  for (auto _ : state) {
    s->turn.store(1);
    multiproc::futex_wake(s->turn, 1);
    while (s->turn.load() != 0) multiproc::futex_wait(s->turn, 1);
  }
  s->stop.store(1);
  s->turn.store(1);
  multiproc::futex_wake(s->turn, 1);
  ::waitpid(child, nullptr, 0);
  shared_delete(s);
}

/// The console reporter plus what a ratio table needs: each benchmark's items/s, bytes/s and
/// real time, by name. With --benchmark_repetitions the median stands for the benchmark
/// (aggregates follow their runs, so it overwrites the single runs' values); otherwise the one
/// run. A binary derives from it and prints its table in Finalize().
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      if (r.error_occurred) continue;
      if (r.run_type == Run::RT_Aggregate && r.aggregate_name != "median") continue;
      const std::string name = r.run_name.str();
      if (const auto it = r.counters.find("items_per_second"); it != r.counters.end()) items_[name] = it->second.value;
      if (const auto it = r.counters.find("bytes_per_second"); it != r.counters.end()) bytes_[name] = it->second.value;
      time_[name] = r.GetAdjustedRealTime();
    }
    ConsoleReporter::ReportRuns(runs);
  }

 protected:
  /// The value of the first benchmark whose name starts with `prefix`; 0 when none ran.
  static double find(const std::map<std::string, double>& m, const std::string& prefix) {
    for (const auto& [k, v] : m)
      if (k.rfind(prefix, 0) == 0) return v;
    return 0;
  }
  /// One line of the table; skipped when a side of the ratio did not run.
  static void print(const std::string& what, double ratio) {
    if (ratio > 0 && ratio < 1e9) std::printf("  %-78s %6.2fx\n", what.c_str(), ratio);
  }

  std::map<std::string, double> items_, bytes_, time_;
};

}  // namespace bench

