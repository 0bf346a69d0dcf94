// bench-sync: multiproc's Lock, Event and Semaphore side by side with the process-shared locks
// people use today, in one binary and one run.
//
// Peers
//   PthreadNormal   pthread_mutex_t, PTHREAD_PROCESS_SHARED
//   PthreadRobust   pthread_mutex_t, PTHREAD_PROCESS_SHARED + PTHREAD_MUTEX_ROBUST
//   BoostIpc        boost::interprocess::interprocess_mutex (a process-shared pthread mutex on
//                   Linux with Boost 1.74)
//   FutexMutex      the minimal futex mutex (Drepper, "Futexes Are Tricky", mutex #3): the
//                   floor for any futex lock; not robust
//   MpLock          multiproc::Lock (robust: TID word on glibc's robust list)
//   RawFutex        a bare FUTEX_WAIT/FUTEX_WAKE ping-pong: the floor for a sleeping round trip
//   PosixSem/BoostSem  sem_t (pshared) and boost::interprocess::interprocess_semaphore
//
// Measured
//   Uncontended/<lock>           lock + unlock, one thread
//   Contended/<lock>             two processes hammering one lock (a shared counter inside);
//                                ops_per_s counts both processes' critical sections
//   HandoffParked/<lock>         unlock -> the waiter (another process, parked for 1 ms) holds
//                                it: p50_ns / p99_ns
//   HandoffRecent/<lock>         the same, the waiter having started to wait ~2 µs before the
//                                unlock (it is still spinning: what spin-then-park buys)
//   PingPong/<primitive>         round trip between two processes (Event, Semaphore, floor)
//   SemaphoreUncontended/<sem>   acquire + release, one thread
//   ParkedWaiterCpu/<primitive>  CPU time a waiter blocked ~1 s uses (getrusage of the child):
//                                cpu_pct of one core
//
// Every two-process benchmark forks its partner per run; shared state is in a MAP_SHARED
// anonymous mapping. Run:  ./build/bench/bench-sync --benchmark_min_time=0.2
// The machine has 2 vCPUs shared with other work: contended and latency numbers are noisy.
#include <multiproc/condition.hpp>
#include <multiproc/event.hpp>
#include <multiproc/futex.hpp>
#include <multiproc/lock.hpp>
#include <multiproc/park.hpp>
#include <multiproc/semaphore.hpp>

#include <benchmark/benchmark.h>
#include <boost/interprocess/sync/interprocess_mutex.hpp>
#include <boost/interprocess/sync/interprocess_semaphore.hpp>

#include "bench_util.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <ctime>
#include <mutex>
#include <new>
#include <pthread.h>
#include <semaphore.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace mp = multiproc;
using namespace std::chrono_literals;

namespace {

using bench::fork_partner;
using bench::shared_delete;
using bench::shared_new;

std::int64_t now_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

// ---- the locks ----------------------------------------------------------------------------

template <bool Robust>
struct PthreadMutex {
  PthreadMutex() {
    pthread_mutexattr_t a;
    ::pthread_mutexattr_init(&a);
    ::pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (Robust) ::pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    ::pthread_mutex_init(&m, &a);
    ::pthread_mutexattr_destroy(&a);
  }
  ~PthreadMutex() { ::pthread_mutex_destroy(&m); }
  void lock() { ::pthread_mutex_lock(&m); }
  void unlock() { ::pthread_mutex_unlock(&m); }
  pthread_mutex_t m;
};
using PthreadNormal = PthreadMutex<false>;
using PthreadRobust = PthreadMutex<true>;

struct BoostIpc {
  void lock() { m.lock(); }
  void unlock() { m.unlock(); }
  boost::interprocess::interprocess_mutex m;
};

// 0 free, 1 locked, 2 locked with (possible) waiters.
struct FutexMutex {
  void lock() {
    std::uint32_t c = 0;
    if (w.compare_exchange_strong(c, 1, std::memory_order_acquire, std::memory_order_relaxed)) return;
    if (c != 2) c = w.exchange(2, std::memory_order_acquire);
    while (c != 0) {
      mp::futex_wait(w, 2);
      c = w.exchange(2, std::memory_order_acquire);
    }
  }
  void unlock() {
    if (w.fetch_sub(1, std::memory_order_release) != 1) {
      w.store(0, std::memory_order_release);
      mp::futex_wake(w, 1);
    }
  }
  std::atomic<std::uint32_t> w{0};
};

using MpLock = mp::Lock;

// ---- uncontended ---------------------------------------------------------------------------

template <class M>
void BM_Uncontended(benchmark::State& state) {
  auto* m = shared_new<M>();
  for (auto _ : state) {
    m->lock();
    m->unlock();
  }
  shared_delete(m);
}

// ---- two processes contending ----------------------------------------------------------------

template <class M>
void BM_Contended(benchmark::State& state) {
  struct S {
    M m;
    alignas(64) std::atomic<std::uint64_t> counter{0};  // changed only under m
    alignas(64) std::atomic<int> stop{0};
    std::atomic<int> ready{0};
  };
  auto* s = shared_new<S>();
  const pid_t child = fork_partner([s] {
    s->ready.store(1);
    while (!s->stop.load(std::memory_order_relaxed)) {
      s->m.lock();
      s->counter.store(s->counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      s->m.unlock();
    }
  });
  while (!s->ready.load()) std::this_thread::yield();
  const std::uint64_t start = s->counter.load();
  for (auto _ : state) {
    s->m.lock();
    s->counter.store(s->counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    s->m.unlock();
  }
  const std::uint64_t total = s->counter.load() - start;
  s->stop.store(1);
  ::waitpid(child, nullptr, 0);
  state.counters["ops_per_s"] = benchmark::Counter(static_cast<double>(total), benchmark::Counter::kIsRate);
  shared_delete(s);
}

// ---- hand-off latency ------------------------------------------------------------------------

template <class M, bool Parked>
void BM_Handoff(benchmark::State& state) {
  struct S {
    M m;
    std::atomic<int> phase{0};  // 0 idle, 1 go, 2 child locking, 3 child got it
    std::atomic<int> stop{0};
    std::atomic<std::int64_t> t0{0}, t1{0};
  };
  auto* s = shared_new<S>();
  const pid_t child = fork_partner([s] {
    for (;;) {
      while (s->phase.load() != 1) {
        if (s->stop.load()) return;
        mp::cpu_relax();
      }
      s->phase.store(2);
      s->m.lock();
      s->t1.store(now_ns());
      s->m.unlock();
      s->phase.store(3);
    }
  });
  std::vector<std::int64_t> samples;
  samples.reserve(static_cast<std::size_t>(state.max_iterations));
  for (auto _ : state) {
    s->m.lock();
    s->phase.store(1);
    while (s->phase.load() != 2) mp::cpu_relax();
    if (Parked) {
      std::this_thread::sleep_for(1ms);  // far past any spin budget: the waiter sleeps in the kernel
    } else {
      const std::int64_t until = now_ns() + 2000;
      while (now_ns() < until) mp::cpu_relax();
    }
    s->t0.store(now_ns());
    s->m.unlock();
    while (s->phase.load() != 3) mp::cpu_relax();
    s->phase.store(0);
    samples.push_back(s->t1.load() - s->t0.load());
  }
  s->stop.store(1);
  ::waitpid(child, nullptr, 0);
  std::sort(samples.begin(), samples.end());
  if (!samples.empty()) {
    state.counters["p50_ns"] = static_cast<double>(samples[samples.size() / 2]);
    state.counters["p99_ns"] = static_cast<double>(samples[samples.size() * 99 / 100]);
  }
  shared_delete(s);
}

// ---- ping-pong round trips -------------------------------------------------------------------

// The floor: sleep on the futex whenever it is not our turn, wake unconditionally.
void BM_PingPong_RawFutex(benchmark::State& state) { bench::raw_futex_ping_pong(state); }

void BM_PingPong_MpEvent(benchmark::State& state) {
  struct S {
    mp::Event ping, pong;
    std::atomic<int> stop{0};
  };
  auto* s = shared_new<S>();
  const pid_t child = fork_partner([s] {
    for (;;) {
      s->ping.wait();
      if (s->stop.load()) return;
      s->ping.clear();
      s->pong.set();
    }
  });
  for (auto _ : state) {
    s->ping.set();
    s->pong.wait();
    s->pong.clear();
  }
  s->stop.store(1);
  s->ping.set();
  ::waitpid(child, nullptr, 0);
  shared_delete(s);
}

// Semaphores, each constructed from its initial count.
struct MpSem {
  explicit MpSem(std::uint32_t n) : s(n) {}
  void acquire() { s.acquire(); }
  void release() { s.release(); }
  mp::Semaphore s;
};
struct PosixSem {
  explicit PosixSem(std::uint32_t n) { ::sem_init(&s, 1, n); }
  ~PosixSem() { ::sem_destroy(&s); }
  void acquire() {
    while (::sem_wait(&s) != 0) {
    }
  }
  void release() { ::sem_post(&s); }
  sem_t s;
};
struct BoostSem {
  explicit BoostSem(std::uint32_t n) : s(n) {}
  void acquire() { s.wait(); }
  void release() { s.post(); }
  boost::interprocess::interprocess_semaphore s;
};

template <class Sem>
void BM_PingPong_Semaphore(benchmark::State& state) {
  struct S {
    Sem ping{0}, pong{0};
    std::atomic<int> stop{0};
  };
  auto* s = shared_new<S>();
  const pid_t child = fork_partner([s] {
    for (;;) {
      s->ping.acquire();
      if (s->stop.load()) return;
      s->pong.release();
    }
  });
  for (auto _ : state) {
    s->ping.release();
    s->pong.acquire();
  }
  s->stop.store(1);
  s->ping.release();
  ::waitpid(child, nullptr, 0);
  shared_delete(s);
}

template <class Sem>
void BM_SemaphoreUncontended(benchmark::State& state) {
  struct S {
    Sem sem{1};
  };
  auto* s = shared_new<S>();
  for (auto _ : state) {
    s->sem.acquire();
    s->sem.release();
  }
  shared_delete(s);
}

// ---- CPU time of a parked waiter ---------------------------------------------------------------

// `prepare(s)` runs first; then a child blocks in `wait(s)` until the parent calls
// `release(s)` ~1 s later. The child's CPU time (user + system, from wait4's rusage) is
// reported as a percentage of that second.
template <class State, class Prepare, class Wait, class Release>
void parked_cpu(benchmark::State& state, Prepare prepare, Wait wait, Release release) {
  for (auto _ : state) {
    auto* s = shared_new<State>();
    prepare(*s);
    const pid_t child = fork_partner([s, wait] { wait(*s); });
    const auto start = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(1s);
    release(*s);
    int status = 0;
    rusage ru{};
    ::wait4(child, &status, 0, &ru);
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                       static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    state.counters["cpu_pct"] = 100.0 * cpu / elapsed;
    shared_delete(s);
  }
}

// The parent holds the lock; the child blocks in lock() until it is released.
template <class M>
void BM_ParkedWaiterCpu_Lock(benchmark::State& state) {
  parked_cpu<M>(
      state, [](M& m) { m.lock(); },
      [](M& m) {
        m.lock();
        m.unlock();
      },
      [](M& m) { m.unlock(); });
}

void BM_ParkedWaiterCpu_MpEvent(benchmark::State& state) {
  parked_cpu<mp::Event>(state, [](mp::Event&) {}, [](mp::Event& e) { e.wait(); }, [](mp::Event& e) { e.set(); });
}
void BM_ParkedWaiterCpu_MpSemaphore(benchmark::State& state) {
  struct S {
    mp::Semaphore sem{0};
  };
  parked_cpu<S>(state, [](S&) {}, [](S& s) { s.sem.acquire(); }, [](S& s) { s.sem.release(); });
}
void BM_ParkedWaiterCpu_MpCondition(benchmark::State& state) {
  struct S {
    mp::Lock lock;
    mp::Condition cond;
    int ready = 0;
  };
  parked_cpu<S>(
      state, [](S&) {},
      [](S& s) {
        std::unique_lock<mp::Lock> g(s.lock);
        s.cond.wait(g, [&] { return s.ready == 1; });
      },
      [](S& s) {
        {
          std::scoped_lock g(s.lock);
          s.ready = 1;
        }
        s.cond.notify_all();
      });
}

}  // namespace

#define SYNC_LOCKS(BM, ...)                             \
  BENCHMARK_TEMPLATE(BM, MpLock) __VA_ARGS__;           \
  BENCHMARK_TEMPLATE(BM, FutexMutex) __VA_ARGS__;       \
  BENCHMARK_TEMPLATE(BM, PthreadRobust) __VA_ARGS__;    \
  BENCHMARK_TEMPLATE(BM, PthreadNormal) __VA_ARGS__;    \
  BENCHMARK_TEMPLATE(BM, BoostIpc) __VA_ARGS__

SYNC_LOCKS(BM_Uncontended, );
SYNC_LOCKS(BM_Contended, ->UseRealTime());
BENCHMARK_TEMPLATE(BM_Handoff, MpLock, true)->Iterations(500)->UseRealTime();
BENCHMARK_TEMPLATE(BM_Handoff, FutexMutex, true)->Iterations(500)->UseRealTime();
BENCHMARK_TEMPLATE(BM_Handoff, PthreadRobust, true)->Iterations(500)->UseRealTime();
BENCHMARK_TEMPLATE(BM_Handoff, PthreadNormal, true)->Iterations(500)->UseRealTime();
BENCHMARK_TEMPLATE(BM_Handoff, BoostIpc, true)->Iterations(500)->UseRealTime();
BENCHMARK_TEMPLATE(BM_Handoff, MpLock, false)->Iterations(20000)->UseRealTime();
BENCHMARK_TEMPLATE(BM_Handoff, FutexMutex, false)->Iterations(20000)->UseRealTime();
BENCHMARK_TEMPLATE(BM_Handoff, PthreadRobust, false)->Iterations(20000)->UseRealTime();
BENCHMARK_TEMPLATE(BM_Handoff, PthreadNormal, false)->Iterations(20000)->UseRealTime();
BENCHMARK_TEMPLATE(BM_Handoff, BoostIpc, false)->Iterations(20000)->UseRealTime();
BENCHMARK(BM_PingPong_RawFutex)->UseRealTime();
BENCHMARK(BM_PingPong_MpEvent)->UseRealTime();
BENCHMARK_TEMPLATE(BM_PingPong_Semaphore, MpSem)->UseRealTime();
BENCHMARK_TEMPLATE(BM_PingPong_Semaphore, PosixSem)->UseRealTime();
BENCHMARK_TEMPLATE(BM_PingPong_Semaphore, BoostSem)->UseRealTime();
BENCHMARK_TEMPLATE(BM_SemaphoreUncontended, MpSem);
BENCHMARK_TEMPLATE(BM_SemaphoreUncontended, PosixSem);
BENCHMARK_TEMPLATE(BM_SemaphoreUncontended, BoostSem);
BENCHMARK_TEMPLATE(BM_ParkedWaiterCpu_Lock, MpLock)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_ParkedWaiterCpu_Lock, PthreadRobust)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ParkedWaiterCpu_MpEvent)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ParkedWaiterCpu_MpSemaphore)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ParkedWaiterCpu_MpCondition)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
