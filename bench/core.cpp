// bench-core: the floors every other benchmark is compared against, measured in the same run:
// a raw FUTEX_WAIT/FUTEX_WAKE ping-pong between two processes, the same through ParkingLot
// (spin-then-park), a FUTEX_WAKE nobody waits for, getppid() as "a syscall", and the uncontended
// RobustMutex against a robust process-shared pthread mutex.
#include <multiproc/futex.hpp>
#include <multiproc/park.hpp>
#include <multiproc/robust_mutex.hpp>

#include <benchmark/benchmark.h>

#include "bench_util.hpp"

#include <atomic>
#include <csignal>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace mp = multiproc;

namespace {

using bench::shared_new;

void BM_Syscall_getppid(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(syscall(SYS_getppid));
}
BENCHMARK(BM_Syscall_getppid);

void BM_FutexWake_NobodyWaiting(benchmark::State& state) {
  std::atomic<std::uint32_t> word{0};
  for (auto _ : state) benchmark::DoNotOptimize(mp::futex_wake(word, 1));
}
BENCHMARK(BM_FutexWake_NobodyWaiting);

void BM_ParkingLot_Notify_NobodyWaiting(benchmark::State& state) {
  mp::ParkingLot lot;
  for (auto _ : state) lot.notify_one();
}
BENCHMARK(BM_ParkingLot_Notify_NobodyWaiting);

// Round trip between two processes: the parent sets turn=1, the child answers turn=0.
struct PingPong {
  std::atomic<std::uint32_t> turn{0};
  std::atomic<std::uint32_t> stop{0};
  mp::ParkingLot lot;
};

// The floor: a raw futex that sleeps immediately whenever it is not its turn.
void BM_RoundTrip_RawFutex(benchmark::State& state) { bench::raw_futex_ping_pong(state); }
BENCHMARK(BM_RoundTrip_RawFutex)->UseRealTime();

// ParkingLot: spin briefly, then park; notify only when someone sleeps.
void BM_RoundTrip_ParkingLot(benchmark::State& state) {
  auto* s = shared_new<PingPong>();
  const pid_t child = fork();
  if (child == 0) {
    for (;;) {
      s->lot.wait_until([&] { return s->turn.load() == 1 || s->stop.load(); });
      if (s->stop.load()) _exit(0);
      s->turn.store(0);
      s->lot.notify_all();
    }
  }
  for (auto _ : state) {
    s->turn.store(1);
    s->lot.notify_all();
    s->lot.wait_until([&] { return s->turn.load() == 0; });
  }
  s->stop.store(1);
  s->lot.notify_all();
  waitpid(child, nullptr, 0);
  munmap(s, sizeof *s);
}
BENCHMARK(BM_RoundTrip_ParkingLot)->UseRealTime();

void BM_Uncontended_RobustMutex(benchmark::State& state) {
  auto* m = shared_new<mp::RobustMutex>();
  for (auto _ : state) {
    m->lock();
    m->unlock();
  }
}
BENCHMARK(BM_Uncontended_RobustMutex);

void BM_Uncontended_PthreadRobust(benchmark::State& state) {
  auto* m = shared_new<pthread_mutex_t>();
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(m, &a);
  for (auto _ : state) {
    pthread_mutex_lock(m);
    pthread_mutex_unlock(m);
  }
}
BENCHMARK(BM_Uncontended_PthreadRobust);

}  // namespace

BENCHMARK_MAIN();
