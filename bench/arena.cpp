// bench-arena: the arena allocator and name directory against their peers, side by side:
//   * allocate + deallocate of 16 B .. 4 KiB: Arena, malloc/free (glibc, process-private: the
//     floor), and boost::interprocess::managed_shared_memory (the shared-memory peer, rbtree
//     best-fit under an interprocess_mutex);
//   * a batch pattern (64 live blocks, freed in another order), which walks real free lists;
//   * two threads hammering the same heap (lock contention; processes behave the same);
//   * named lookup among 100 names: Arena::find against Boost's find.
//   ./build/bench/bench-arena --benchmark_min_time=0.2
#include <multiproc/arena.hpp>

#include <benchmark/benchmark.h>
#include <boost/interprocess/managed_shared_memory.hpp>

#include <cstdlib>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

namespace mp = multiproc;
namespace bip = boost::interprocess;

namespace {

constexpr std::size_t kHeap = 64 << 20;

mp::Arena& arena() {
  static mp::Arena a = mp::Arena::create(kHeap, "bench-arena");
  return a;
}

struct BoostSegment {
  std::string name = "multiproc-bench-arena-" + std::to_string(::getpid());
  bip::managed_shared_memory segment;
  BoostSegment() {
    bip::shared_memory_object::remove(name.c_str());
    segment = bip::managed_shared_memory(bip::create_only, name.c_str(), kHeap);
  }
  ~BoostSegment() { bip::shared_memory_object::remove(name.c_str()); }
};
bip::managed_shared_memory& boost_segment() {
  static BoostSegment s;
  return s.segment;
}

// ---- one allocate + deallocate -----------------------------------------------------------------

void BM_AllocFree_Arena(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  mp::Arena& a = arena();
  for (auto _ : state) {
    void* p = a.allocate(n);
    benchmark::DoNotOptimize(p);
    a.deallocate(p);
  }
}
void BM_AllocFree_Malloc(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    void* p = std::malloc(n);
    benchmark::DoNotOptimize(p);
    std::free(p);
  }
}
void BM_AllocFree_BoostShm(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto& s = boost_segment();
  for (auto _ : state) {
    void* p = s.allocate(n);
    benchmark::DoNotOptimize(p);
    s.deallocate(p);
  }
}
BENCHMARK(BM_AllocFree_Arena)->RangeMultiplier(4)->Range(16, 4096);
BENCHMARK(BM_AllocFree_Malloc)->RangeMultiplier(4)->Range(16, 4096);
BENCHMARK(BM_AllocFree_BoostShm)->RangeMultiplier(4)->Range(16, 4096);

// ---- 64 live blocks of mixed sizes, freed in a different order ------------------------------

template <class Alloc, class Free>
void batch(benchmark::State& state, Alloc&& alloc, Free&& release) {
  const auto n = static_cast<std::size_t>(state.range(0));
  void* blocks[64];
  for (auto _ : state) {
    for (std::size_t i = 0; i < 64; ++i) blocks[i] = alloc(n + (i * 24) % n);
    for (std::size_t i = 0; i < 64; ++i) release(blocks[(i * 37) % 64]);  // 37 is coprime to 64
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 64);
}
void BM_Batch64_Arena(benchmark::State& state) {
  mp::Arena& a = arena();
  batch(state, [&](std::size_t n) { return a.allocate(n); }, [&](void* p) { a.deallocate(p); });
}
void BM_Batch64_Malloc(benchmark::State& state) {
  batch(state, [](std::size_t n) { return std::malloc(n); }, [](void* p) { std::free(p); });
}
void BM_Batch64_BoostShm(benchmark::State& state) {
  auto& s = boost_segment();
  batch(state, [&](std::size_t n) { return s.allocate(n); }, [&](void* p) { s.deallocate(p); });
}
BENCHMARK(BM_Batch64_Arena)->Arg(16)->Arg(256)->Arg(4096);
BENCHMARK(BM_Batch64_Malloc)->Arg(16)->Arg(256)->Arg(4096);
BENCHMARK(BM_Batch64_BoostShm)->Arg(16)->Arg(256)->Arg(4096);

// ---- two threads on one heap (the lock's contended path) ------------------------------------

void BM_AllocFree64_Contended_Arena(benchmark::State& state) {
  mp::Arena& a = arena();
  for (auto _ : state) {
    void* p = a.allocate(64);
    benchmark::DoNotOptimize(p);
    a.deallocate(p);
  }
}
void BM_AllocFree64_Contended_BoostShm(benchmark::State& state) {
  auto& s = boost_segment();
  for (auto _ : state) {
    void* p = s.allocate(64);
    benchmark::DoNotOptimize(p);
    s.deallocate(p);
  }
}
BENCHMARK(BM_AllocFree64_Contended_Arena)->Threads(2)->UseRealTime();
BENCHMARK(BM_AllocFree64_Contended_BoostShm)->Threads(2)->UseRealTime();

// ---- named lookup among 100 names -------------------------------------------------------------

std::vector<std::string> names() {
  std::vector<std::string> v;
  for (int i = 0; i < 100; ++i) v.push_back("object-" + std::to_string(i));
  return v;
}

void BM_Find_Arena(benchmark::State& state) {
  static const auto ns = names();
  mp::Arena& a = arena();
  for (int i = 0; i < 100; ++i) a.find_or_make<long>(ns[static_cast<std::size_t>(i)], long{i});
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(a.find<long>(ns[i]));
    i = (i + 37) % 100;
  }
}
void BM_Find_BoostShm(benchmark::State& state) {
  static const auto ns = names();
  auto& s = boost_segment();
  for (int i = 0; i < 100; ++i) s.find_or_construct<long>(ns[static_cast<std::size_t>(i)].c_str())(long{i});
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(s.find<long>(ns[i].c_str()).first);
    i = (i + 37) % 100;
  }
}
BENCHMARK(BM_Find_Arena);
BENCHMARK(BM_Find_BoostShm);

}  // namespace

BENCHMARK_MAIN();
