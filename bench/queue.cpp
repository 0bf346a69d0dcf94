// bench-queue: multiproc::Queue against its peers in the same run, between real processes.
//
// Peers
//   Boost      boost::interprocess::message_queue (mutex + condition variables in shared memory)
//   Vyukov     a bare Vyukov bounded MPMC ring in a memfd, busy-spinning when full or empty: no
//              blocking, no close, no death handling — the ceiling a ring can reach here
//   Socket     an AF_UNIX SOCK_SEQPACKET socketpair, one write(2) and one read(2) per message
//   (1P1C 8 B only, the ceilings:)
//   PackedCas  Queue's packed layout (16-byte {state, item} slots, four a line) and its one
//              cmpxchg16b per put and per get, and nothing else: no hints, no blocking, no close —
//              the ceiling of this design here
//   PlainSpsc  single-producer single-consumer ring of the same 16-byte slots published by plain
//              release stores: no locked instruction at all — the ceiling of any ring here
//   RawFutex   (latency cases) FUTEX_WAIT / FUTEX_WAKE on one word, nothing else
// Cases
//   Throughput 1P1C, 8 B and 64 B items, producer pinned to CPU 0 and consumer to CPU 1.
//   Throughput 2P2C, 8 B items, unpinned (4 processes on however many CPUs there are).
//   Parked wake-up: the consumer has been blocked for 200 µs (surely parked: past any spin),
//              then one item is put; the time from just before the put to just after the get
//              returns, against the same through a raw futex word.
//   Round trip: ping-pong through two queues (each side blocks in get) against a raw futex
//              ping-pong, pinned.
//   Line round trip: one cache line bounced between the two pinned CPUs by plain stores and
//              spinning loads (no pause): half of it is the cost of one line transfer, the unit
//              every ring's per-message cost is made of.
//   Unpinned 1P1C 8 B, Queue and Boost: for reference (Boost's mutex hand-off depends a lot on
//              where the scheduler puts the two processes).
// Every ring has capacity 1024. An iteration is one item got by the measuring consumer (the
// parent); with two consumers, items_per_second counts both.
//
//   ./build/bench/bench-queue --benchmark_min_time=0.2 --benchmark_repetitions=5
//       --benchmark_enable_random_interleaving=true        (one command line)
// A ratio table against the peers of this same run is printed at the end (from the medians when
// repeated). The machine may be shared (2 vCPUs, other people compiling): compare ratios within
// one run, and interleave repetitions so that a burst of foreign load hits every peer alike.
#include "bench_util.hpp"

#include <multiproc/arena.hpp>
#include <multiproc/futex.hpp>
#include <multiproc/park.hpp>
#include <multiproc/queue.hpp>

#include <benchmark/benchmark.h>
#include <boost/interprocess/ipc/message_queue.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <sched.h>
#include <string>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace mp = multiproc;
namespace bip = boost::interprocess;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kCapacity = 1024;

template <std::size_t N>
struct Item {
  std::uint64_t words[N / 8];
};

// A 1P1C case that silently ran unpinned (or both sides on one CPU) would not be the case it
// names: fail loudly instead.
void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  const int c = cpu % static_cast<int>(std::thread::hardware_concurrency());
  CPU_SET(c, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0 || sched_getcpu() != c) {
    std::perror("bench-queue: pinning to a CPU failed");
    std::abort();
  }
}
void unpin() {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (unsigned c = 0; c < std::thread::hardware_concurrency(); ++c) CPU_SET(c, &set);
  sched_setaffinity(0, sizeof set, &set);
}

void* shared_bytes(std::size_t n) {
  void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) std::abort();
  return p;
}

template <class F>
pid_t fork_child(F&& body) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    body();
    _exit(0);
  }
  return pid;
}

// ---- the peers: put/get of one T between processes (made before fork) ---------------------------

template <class T>
struct MpQueue {
  static constexpr const char* name = "Queue";
  mp::Arena arena = mp::Arena::create(kCapacity * mp::Queue<T>::slot_stride + (1 << 16));
  mp::Queue<T>& q = arena.make_anonymous<mp::Queue<T>>(kCapacity);
  void put(const T& v) { q.put(v); }
  void get(T& v) { v = q.get(); }
};

template <class T>
struct BoostQueue {
  static constexpr const char* name = "Boost";
  std::string id = "mpbench-" + std::to_string(getpid()) + "-" + std::to_string(counter()++);
  std::unique_ptr<bip::message_queue> q;
  BoostQueue() {
    bip::message_queue::remove(id.c_str());
    q = std::make_unique<bip::message_queue>(bip::create_only, id.c_str(), kCapacity, sizeof(T));
  }
  ~BoostQueue() {
    q.reset();
    bip::message_queue::remove(id.c_str());
  }
  void put(const T& v) { q->send(&v, sizeof v, 0); }
  void get(T& v) {
    bip::message_queue::size_type got;
    unsigned prio;
    q->receive(&v, sizeof v, got, prio);
  }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

/// Dmitry Vyukov's bounded MPMC queue, as published (unpadded cells, power-of-two size), in a
/// memfd; full/empty spin.
template <class T>
struct VyukovRing {
  static constexpr const char* name = "Vyukov";
  struct Cell {
    std::atomic<std::size_t> seq;
    T data;
  };
  struct Shared {
    alignas(64) std::atomic<std::size_t> enqueue_pos;
    alignas(64) std::atomic<std::size_t> dequeue_pos;
    alignas(64) Cell cells[kCapacity];
  };
  static_assert((kCapacity & (kCapacity - 1)) == 0, "Vyukov's ring needs a power-of-two size");
  int fd = memfd_create("vyukov", MFD_CLOEXEC);
  Shared* s;
  VyukovRing() {
    if (fd < 0 || ftruncate(fd, sizeof(Shared)) != 0) std::abort();
    s = static_cast<Shared*>(mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    for (std::size_t i = 0; i < kCapacity; ++i) s->cells[i].seq.store(i, std::memory_order_relaxed);
    s->enqueue_pos.store(0);
    s->dequeue_pos.store(0);
  }
  ~VyukovRing() {
    munmap(s, sizeof(Shared));
    close(fd);
  }
  bool try_put(const T& v) {
    std::size_t pos = s->enqueue_pos.load(std::memory_order_relaxed);
    Cell* c;
    for (;;) {
      c = &s->cells[pos & (kCapacity - 1)];
      const std::size_t seq = c->seq.load(std::memory_order_acquire);
      const auto dif = static_cast<std::intptr_t>(seq) - static_cast<std::intptr_t>(pos);
      if (dif == 0) {
        if (s->enqueue_pos.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
      } else if (dif < 0) {
        return false;
      } else {
        pos = s->enqueue_pos.load(std::memory_order_relaxed);
      }
    }
    c->data = v;
    c->seq.store(pos + 1, std::memory_order_release);
    return true;
  }
  bool try_get(T& v) {
    std::size_t pos = s->dequeue_pos.load(std::memory_order_relaxed);
    Cell* c;
    for (;;) {
      c = &s->cells[pos & (kCapacity - 1)];
      const std::size_t seq = c->seq.load(std::memory_order_acquire);
      const auto dif = static_cast<std::intptr_t>(seq) - static_cast<std::intptr_t>(pos + 1);
      if (dif == 0) {
        if (s->dequeue_pos.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
      } else if (dif < 0) {
        return false;
      } else {
        pos = s->dequeue_pos.load(std::memory_order_relaxed);
      }
    }
    v = c->data;
    c->seq.store(pos + kCapacity, std::memory_order_release);
    return true;
  }
  // Busy spin; a yield now and then so 4 spinners on 2 CPUs still make progress.
  void put(const T& v) {
    for (unsigned i = 1; !try_put(v); ++i)
      if (i % 4096 == 0) sched_yield(); else mp::cpu_relax();
  }
  void get(T& v) {
    for (unsigned i = 1; !try_get(v); ++i)
      if (i % 4096 == 0) sched_yield(); else mp::cpu_relax();
  }
};

/// Bare packed ring: what Queue<T> (packed) does per message, without anything around it.
template <class T>
struct PackedCasRing {
  static constexpr const char* name = "PackedCas";
  static_assert(sizeof(T) == 8);
  struct Shared {
    alignas(64) std::atomic<std::uint64_t> tail;
    alignas(64) std::atomic<std::uint64_t> head;
    alignas(64) mp::detail::PackedSlot slots[kCapacity];
  };
  Shared* s = new (shared_bytes(sizeof(Shared))) Shared{};  // all zero: every slot empty, lap 0
  ~PackedCasRing() { munmap(s, sizeof(Shared)); }
  static std::uint64_t lap(std::uint64_t t) { return t / kCapacity; }
  void put(const T& v) {
    std::uint64_t w;
    std::memcpy(&w, &v, 8);
    for (;;) {
      const std::uint64_t t = s->tail.load(std::memory_order_relaxed);
      std::uint64_t st = lap(t) * 2, it = 0;  // state: lap * 2 + full
      mp::detail::PackedSlot& slot = s->slots[t % kCapacity];
      if (mp::detail::cas16(slot, st, it, lap(t) * 2 + 1, w)) {
        s->tail.store(t + 1, std::memory_order_relaxed);
        return;
      }
      // Full: wait with loads (CAS retries would take the line from the consumer each time).
      while (slot.state.load(std::memory_order_relaxed) == st) mp::cpu_relax();
    }
  }
  void get(T& v) {
    for (;;) {
      const std::uint64_t h = s->head.load(std::memory_order_relaxed);
      mp::detail::PackedSlot& slot = s->slots[h % kCapacity];
      std::uint64_t st = slot.state.load(std::memory_order_relaxed);
      if (st == lap(h) * 2 + 1) {
        std::uint64_t it = slot.item.load(std::memory_order_relaxed);
        if (mp::detail::cas16(slot, st, it, (lap(h) + 1) * 2, 0)) {
          s->head.store(h + 1, std::memory_order_relaxed);
          std::memcpy(&v, &it, 8);
          return;
        }
      }
      mp::cpu_relax();
    }
  }
};

/// Lamport-style SPSC ring of the same 16-byte slots: plain release stores, no locked instruction.
template <class T>
struct PlainSpscRing {
  static constexpr const char* name = "PlainSpsc";
  static_assert(sizeof(T) == 8);
  struct Slot {
    alignas(16) std::atomic<std::uint64_t> seq;  // t: free for ticket t; t + 1: holds ticket t
    std::uint64_t item;
  };
  struct Shared {
    alignas(64) Slot slots[kCapacity];
  };
  Shared* s = new (shared_bytes(sizeof(Shared))) Shared{};
  std::uint64_t tail = 0, head = 0;  // each side's own (the parent's copy is the consumer's)
  PlainSpscRing() {
    for (std::uint64_t i = 0; i < kCapacity; ++i) s->slots[i].seq.store(i, std::memory_order_relaxed);
  }
  ~PlainSpscRing() { munmap(s, sizeof(Shared)); }
  void put(const T& v) {
    Slot& slot = s->slots[tail % kCapacity];
    while (slot.seq.load(std::memory_order_acquire) != tail) mp::cpu_relax();
    std::memcpy(&slot.item, &v, 8);
    slot.seq.store(tail + 1, std::memory_order_release);
    ++tail;
  }
  void get(T& v) {
    Slot& slot = s->slots[head % kCapacity];
    while (slot.seq.load(std::memory_order_acquire) != head + 1) mp::cpu_relax();
    std::memcpy(&v, &slot.item, 8);
    slot.seq.store(head + kCapacity, std::memory_order_release);
    ++head;
  }
};

template <class T>
struct SocketQueue {
  static constexpr const char* name = "Socket";
  int fds[2];
  SocketQueue() {
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) std::abort();
  }
  ~SocketQueue() {
    close(fds[0]);
    close(fds[1]);
  }
  void put(const T& v) {
    if (write(fds[0], &v, sizeof v) != static_cast<ssize_t>(sizeof v)) std::abort();
  }
  void get(T& v) {
    if (read(fds[1], &v, sizeof v) != static_cast<ssize_t>(sizeof v)) std::abort();
  }
};

// ---- throughput ---------------------------------------------------------------------------------

// P producers and P consumers (the parent is one consumer); `pinned`: 1P1C on CPUs 0 and 1.
template <template <class> class Peer, std::size_t N>
void BM_Throughput(benchmark::State& state) {
  using T = Item<N>;
  const int pairs = static_cast<int>(state.range(0));
  const bool pinned = state.range(1) != 0;
  Peer<T> peer;
  const auto n = static_cast<std::uint64_t>(state.max_iterations);
  std::vector<pid_t> kids;
  for (int p = 0; p < pairs; ++p)
    kids.push_back(fork_child([&, p] {
      if (pinned) pin(0);
      T v{};
      for (std::uint64_t i = 0; i < n; ++i) {
        v.words[0] = i;
        peer.put(v);
      }
      (void)p;
    }));
  for (int c = 1; c < pairs; ++c)
    kids.push_back(fork_child([&] {
      T v;
      for (std::uint64_t i = 0; i < n; ++i) peer.get(v);
    }));
  if (pinned) pin(1);
  T v;
  for (auto _ : state) {
    peer.get(v);
    benchmark::DoNotOptimize(v);
  }
  if (pinned) unpin();
  for (pid_t k : kids) waitpid(k, nullptr, 0);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * pairs);
  state.SetLabel(Peer<T>::name);
}

#define THROUGHPUT(PEER)                                                                       \
  BENCHMARK_TEMPLATE(BM_Throughput, PEER, 8)->Name("BM_1P1C_8B/" #PEER)->Args({1, 1})->UseRealTime();   \
  BENCHMARK_TEMPLATE(BM_Throughput, PEER, 64)->Name("BM_1P1C_64B/" #PEER)->Args({1, 1})->UseRealTime(); \
  BENCHMARK_TEMPLATE(BM_Throughput, PEER, 8)->Name("BM_2P2C_8B/" #PEER)->Args({2, 0})->UseRealTime();
THROUGHPUT(MpQueue)
THROUGHPUT(VyukovRing)
THROUGHPUT(BoostQueue)
THROUGHPUT(SocketQueue)
BENCHMARK_TEMPLATE(BM_Throughput, PackedCasRing, 8)->Name("BM_1P1C_8B/PackedCasRing")->Args({1, 1})->UseRealTime();
BENCHMARK_TEMPLATE(BM_Throughput, PlainSpscRing, 8)->Name("BM_1P1C_8B/PlainSpscRing")->Args({1, 1})->UseRealTime();
BENCHMARK_TEMPLATE(BM_Throughput, MpQueue, 8)->Name("BM_1P1C_8B_unpinned/MpQueue")->Args({1, 0})->UseRealTime();
BENCHMARK_TEMPLATE(BM_Throughput, BoostQueue, 8)->Name("BM_1P1C_8B_unpinned/BoostQueue")->Args({1, 0})->UseRealTime();

// ---- one cache line, bounced ----------------------------------------------------------------------

// Round trip of one line between CPUs 0 and 1: each side spins (plain loads, no pause, so no
// pause latency is added) until the word is its turn, then stores the next turn.
void BM_LineRoundTrip(benchmark::State& state) {
  struct alignas(64) Line {
    std::atomic<std::uint64_t> turn{0};
  };
  auto* line = new (shared_bytes(sizeof(Line))) Line();
  const auto n = static_cast<std::uint64_t>(state.max_iterations);
  const pid_t kid = fork_child([&] {
    pin(1);
    for (std::uint64_t i = 0; i < n; ++i) {
      while (line->turn.load(std::memory_order_acquire) != 2 * i + 1) {
      }
      line->turn.store(2 * i + 2, std::memory_order_release);
    }
  });
  pin(0);
  std::uint64_t i = 0;
  for (auto _ : state) {
    line->turn.store(2 * i + 1, std::memory_order_release);
    while (line->turn.load(std::memory_order_acquire) != 2 * i + 2) {
    }
    ++i;
  }
  unpin();
  waitpid(kid, nullptr, 0);
  munmap(line, sizeof(Line));
}
BENCHMARK(BM_LineRoundTrip)->UseRealTime();

// ---- parked wake-up latency -----------------------------------------------------------------------

struct Report {
  std::atomic<std::uint64_t> seq{0};
  std::atomic<std::int64_t> woke_ns{0};
  std::atomic<std::uint32_t> word{0};  // the raw futex peer's word
};

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// One hand-off per iteration to a consumer blocked for 200 µs; manual time = put..get returned.
template <class Handoff>
void parked_wakeup(benchmark::State& state, Handoff& h, const char* label) {
  auto* r = new (shared_bytes(sizeof(Report))) Report();
  const auto n = static_cast<std::uint64_t>(state.max_iterations);
  const pid_t kid = fork_child([&] {
    pin(1);
    for (std::uint64_t i = 1; i <= n; ++i) {
      h.wait(*r, i);
      r->woke_ns.store(now_ns());
      r->seq.store(i);
    }
  });
  pin(0);
  std::uint64_t i = 0;
  for (auto _ : state) {
    ++i;
    std::this_thread::sleep_for(200us);  // the consumer is parked by now
    const std::int64_t t0 = now_ns();
    h.wake(*r, i);
    while (r->seq.load() != i) mp::cpu_relax();
    state.SetIterationTime(static_cast<double>(r->woke_ns.load() - t0) * 1e-9);
  }
  unpin();
  waitpid(kid, nullptr, 0);
  munmap(r, sizeof(Report));
  state.SetLabel(label);
}

struct QueueHandoff {
  MpQueue<Item<8>> peer;
  void wait(Report&, std::uint64_t) {
    Item<8> v;
    peer.get(v);
  }
  void wake(Report&, std::uint64_t i) { peer.put(Item<8>{{i}}); }
};
struct FutexHandoff {
  void wait(Report& r, std::uint64_t i) {
    while (r.word.load() != static_cast<std::uint32_t>(i)) mp::futex_wait(r.word, static_cast<std::uint32_t>(i - 1));
  }
  void wake(Report& r, std::uint64_t i) {
    r.word.store(static_cast<std::uint32_t>(i));
    mp::futex_wake(r.word, 1);
  }
};
template <template <class> class Peer>
struct PeerHandoff {
  Peer<Item<8>> peer;
  void wait(Report&, std::uint64_t) {
    Item<8> v;
    peer.get(v);
  }
  void wake(Report&, std::uint64_t i) { peer.put(Item<8>{{i}}); }
};

void BM_ParkedWakeup_Queue(benchmark::State& state) {
  QueueHandoff h;
  parked_wakeup(state, h, "Queue");
}
void BM_ParkedWakeup_RawFutex(benchmark::State& state) {
  FutexHandoff h;
  parked_wakeup(state, h, "RawFutex");
}
void BM_ParkedWakeup_Boost(benchmark::State& state) {
  PeerHandoff<BoostQueue> h;
  parked_wakeup(state, h, "Boost");
}
void BM_ParkedWakeup_Socket(benchmark::State& state) {
  PeerHandoff<SocketQueue> h;
  parked_wakeup(state, h, "Socket");
}
BENCHMARK(BM_ParkedWakeup_RawFutex)->UseManualTime();
BENCHMARK(BM_ParkedWakeup_Queue)->UseManualTime();
BENCHMARK(BM_ParkedWakeup_Boost)->UseManualTime();
BENCHMARK(BM_ParkedWakeup_Socket)->UseManualTime();

// ---- round trip ----------------------------------------------------------------------------------

void BM_RoundTrip_RawFutex(benchmark::State& state) {
  struct PingPong {
    std::atomic<std::uint32_t> turn{0}, stop{0};
  };
  auto* s = new (shared_bytes(sizeof(PingPong))) PingPong();
  const pid_t kid = fork_child([&] {
    pin(1);
    for (;;) {
      while (s->turn.load() != 1) {
        if (s->stop.load()) return;
        mp::futex_wait(s->turn, 0);
      }
      s->turn.store(0);
      mp::futex_wake(s->turn, 1);
    }
  });
  pin(0);
  for (auto _ : state) {
    s->turn.store(1);
    mp::futex_wake(s->turn, 1);
    while (s->turn.load() != 0) mp::futex_wait(s->turn, 1);
  }
  unpin();
  s->stop.store(1);
  s->turn.store(1);
  mp::futex_wake(s->turn, 1);
  waitpid(kid, nullptr, 0);
  munmap(s, sizeof(PingPong));
}
BENCHMARK(BM_RoundTrip_RawFutex)->UseRealTime();

void BM_RoundTrip_Queue(benchmark::State& state) {
  MpQueue<Item<8>> there, back;
  const auto n = static_cast<std::uint64_t>(state.max_iterations);
  const pid_t kid = fork_child([&] {
    pin(1);
    Item<8> v;
    for (std::uint64_t i = 0; i < n; ++i) {
      there.get(v);
      back.put(v);
    }
  });
  pin(0);
  Item<8> v{};
  for (auto _ : state) {
    there.put(v);
    back.get(v);
  }
  unpin();
  waitpid(kid, nullptr, 0);
}
BENCHMARK(BM_RoundTrip_Queue)->UseRealTime();

// ---- the ratio table ------------------------------------------------------------------------------

class Table : public bench::RatioReporter {
 public:
  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf("\nRatios in this run (target in brackets):\n");
    for (const char* c : {"BM_1P1C_8B/", "BM_1P1C_64B", "BM_2P2C_8B", "BM_1P1C_8B_unpinned"}) {
      const std::string base = c;
      const bool p1 = base == "BM_1P1C_8B/", p2 = base.find("2P2C") != std::string::npos;
      const std::string sep = base.back() == '/' ? "" : "/";
      const double q = find(items_, base + sep + "MpQueue");
      print(base + ": Queue / Boost message_queue" + (p1 ? " [>= 20]" : p2 ? " [>= 5]" : ""),
            q / find(items_, base + sep + "BoostQueue"));
      print(base + ": Queue / bare Vyukov ring" + (p1 ? " [>= 0.7]" : ""), q / find(items_, base + sep + "VyukovRing"));
      print(base + ": Queue / socketpair, a write per message", q / find(items_, base + sep + "SocketQueue"));
      if (p1) {
        print(base + ": Queue / bare packed-CAS ring (this design's ceiling)", q / find(items_, base + "PackedCasRing"));
        print(base + ": bare packed-CAS ring / Boost message_queue", find(items_, base + "PackedCasRing") / find(items_, base + "BoostQueue"));
        print(base + ": plain-store SPSC ring / Boost (no locked instruction)", find(items_, base + "PlainSpscRing") / find(items_, base + "BoostQueue"));
      }
    }
    print("parked wake-up: Queue / raw futex, time [<= 1.3]",
          find(time_, "BM_ParkedWakeup_Queue") / find(time_, "BM_ParkedWakeup_RawFutex"));
    print("parked wake-up: Boost message_queue / raw futex, time",
          find(time_, "BM_ParkedWakeup_Boost") / find(time_, "BM_ParkedWakeup_RawFutex"));
    print("parked wake-up: socketpair / raw futex, time",
          find(time_, "BM_ParkedWakeup_Socket") / find(time_, "BM_ParkedWakeup_RawFutex"));
    print("round trip: Queue / raw futex ping-pong, time",
          find(time_, "BM_RoundTrip_Queue") / find(time_, "BM_RoundTrip_RawFutex"));
    // The ceiling: a 1P1C message costs the consumer's interval; in units of one line transfer.
    if (const double rt = find(time_, "BM_LineRoundTrip"); rt > 0) {
      std::printf("  one cache-line transfer (half the line round trip): %.1f ns\n", rt / 2);
      for (const char* peer : {"MpQueue", "PackedCasRing", "PlainSpscRing", "VyukovRing", "BoostQueue"})
        if (const double r = find(items_, std::string("BM_1P1C_8B/") + peer); r > 0)
          std::printf("  1P1C 8 B %-14s %7.1f ns a message = %5.2f line transfers\n", peer, 1e9 / r, 1e9 / r / (rt / 2));
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  Table reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
