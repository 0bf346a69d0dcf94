// Model-based (stateful) test of the arena allocator against an exact model of its rule.
//
// The rule (multiproc/arena.hpp): a request (n, align) needs a payload of round_up(max(n,1),16)
// bytes at a multiple of A = max(align, 16), behind a 16-byte header. It fits a free block
// [a, b) when some such payload address p has p - 16 - a == 0 or >= 32 and p + payload <= b;
// a tail shorter than 32 bytes stays in the block. out_of_memory iff no free block fits.
//
// The allocator may choose any legal placement, so the model does not predict it: it keeps
// the exact set of free extents and live blocks, and checks every result against them —
//   * a returned block lies wholly inside one free extent (so: in bounds and disjoint from
//     every live block), is aligned, and leaves a front gap of 0 or >= 32 bytes;
//   * out_of_memory only when the rule says no extent fits (so freed space must be reused);
//   * used() equals the model's allocated bytes; stats() shows exactly the model's extents
//     (immediate coalescing) and check() passes;
//   * every live block keeps the bytes written into it until it is freed.
// The rapidcheck Model is empty: the precise model lives with the system under test, updated
// from the observed (checked) placement. rapidcheck generates and shrinks the command sequence.
#include <multiproc/arena.hpp>
#include <multiproc/error.hpp>

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <vector>

namespace mp = multiproc;

namespace {

constexpr std::uint64_t round_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

struct Live {
  std::uint64_t start, end;  // the block, header included
  std::uint64_t payload;     // offset of what allocate returned
  std::size_t n;
  std::uint64_t tag;
};

struct Shadow {
  explicit Shadow(std::size_t bytes) : arena(mp::Arena::create(bytes)) {
    begin = arena.mapped_size() - arena.size();  // the heap follows the header
    free_ext[begin] = begin + arena.size();
  }

  mp::Arena arena;
  std::uint64_t begin = 0;
  std::map<std::uint64_t, std::uint64_t> free_ext;  // start -> end, maximal free runs
  std::vector<Live> live;
  std::uint64_t used = 0;
  std::uint64_t serial = 0;

  static std::uint64_t need_of(std::size_t n) { return 16 + round_up(std::max<std::size_t>(n, 1), 16); }
  static bool fits_in(std::uint64_t a, std::uint64_t b, std::uint64_t need, std::uint64_t align) {
    std::uint64_t p = round_up(a + 16, align);
    if (p - 16 - a != 0 && p - 16 - a < 32) p += align;
    return p - 16 + need <= b;
  }
  bool anything_fits(std::size_t n, std::size_t align) const {
    for (auto [a, b] : free_ext)
      if (fits_in(a, b, need_of(n), std::max<std::size_t>(align, 16))) return true;
    return false;
  }

  void fill(const Live& l) { std::memset(arena.at<void>(l.payload), static_cast<int>(l.tag & 0xff), l.n); }
  bool intact(const Live& l) const {
    const auto* p = arena.at<unsigned char>(l.payload);
    for (std::size_t i = 0; i < l.n; ++i)
      if (p[i] != (l.tag & 0xff)) return false;
    return true;
  }

  void allocate(std::size_t n, std::size_t align) {
    void* p = nullptr;
    try {
      p = arena.allocate(n, align);
    } catch (const mp::Error& e) {
      RC_ASSERT(e.code() == mp::errc::out_of_memory);
      RC_ASSERT(!anything_fits(n, align));  // refused only when nothing fits
      return;
    }
    const std::uint64_t off = arena.offset_of(p), a16 = std::max<std::size_t>(align, 16);
    RC_ASSERT(off % a16 == 0);
    const std::uint64_t bb = off - 16, need = need_of(n);
    auto it = free_ext.upper_bound(bb);
    RC_ASSERT(it != free_ext.begin());
    --it;
    const std::uint64_t a = it->first, b = it->second;
    RC_ASSERT(bb >= a);
    RC_ASSERT(bb + need <= b);  // inside one free extent: in bounds, overlapping no live block
    const std::uint64_t gap = bb - a;
    RC_ASSERT(gap == 0 || gap >= 32);
    std::uint64_t end = bb + need;
    if (b - end < 32) end = b;
    free_ext.erase(it);
    if (gap != 0) free_ext[a] = bb;
    if (end < b) free_ext[end] = b;
    Live l{bb, end, off, n, ++serial};
    fill(l);
    live.push_back(l);
    used += end - bb;
    RC_ASSERT(arena.used() == used);
  }

  void free(std::size_t pick) {
    if (live.empty()) return;
    const std::size_t i = pick % live.size();
    const Live l = live[i];
    RC_ASSERT(intact(l));
    arena.deallocate(arena.at<void>(l.payload));
    live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
    used -= l.end - l.start;
    std::uint64_t s = l.start, e = l.end;
    if (auto next = free_ext.find(e); next != free_ext.end()) {
      e = next->second;
      free_ext.erase(next);
    }
    if (auto prev = free_ext.lower_bound(s); prev != free_ext.begin()) {
      --prev;
      if (prev->second == s) {
        s = prev->first;
        free_ext.erase(prev);
      }
    }
    free_ext[s] = e;
    RC_ASSERT(arena.used() == used);
    RC_ASSERT(arena.stats().invalid_deallocations == 0u);
  }

  /// A request that exactly fills a chosen free extent must succeed.
  void allocate_exact(std::size_t pick) {
    if (free_ext.empty()) return;
    auto it = free_ext.begin();
    std::advance(it, static_cast<std::ptrdiff_t>(pick % free_ext.size()));
    const std::uint64_t n = it->second - it->first - 16;
    const std::size_t before = live.size();
    allocate(n, 16);
    RC_ASSERT(live.size() == before + 1);
  }

  void verify() {
    try {
      arena.check();
    } catch (const mp::Error& e) {
      RC_FAIL(e.what());
    }
    const auto st = arena.stats();
    RC_ASSERT(st.free_blocks == free_ext.size());
    std::uint64_t largest = 0, bytes = 0;
    for (auto [a, b] : free_ext) {
      largest = std::max(largest, b - a);
      bytes += b - a;
    }
    RC_ASSERT(st.largest_free_block == largest);
    RC_ASSERT(st.free_bytes == bytes);
    RC_ASSERT(st.allocated_blocks == live.size());
    for (const Live& l : live) RC_ASSERT(intact(l));
  }
};

struct Model {};
using Cmd = rc::state::Command<Model, Shadow>;

struct Allocate : Cmd {
  std::size_t n = *rc::gen::oneOf(rc::gen::inRange<std::size_t>(0, 200), rc::gen::inRange<std::size_t>(0, 3000),
                                  rc::gen::inRange<std::size_t>(0, 20000));
  std::size_t align = std::size_t{1} << *rc::gen::oneOf(rc::gen::just(4), rc::gen::inRange(0, 13));
  void run(const Model&, Shadow& s) const override { s.allocate(n, align); }
  void show(std::ostream& os) const override { os << "allocate(" << n << ", " << align << ")"; }
};
struct Free : Cmd {
  std::size_t pick = *rc::gen::inRange<std::size_t>(0, 1 << 20);
  void run(const Model&, Shadow& s) const override { s.free(pick); }
  void show(std::ostream& os) const override { os << "free(#" << pick << ")"; }
};
struct AllocateExact : Cmd {
  std::size_t pick = *rc::gen::inRange<std::size_t>(0, 1 << 20);
  void run(const Model&, Shadow& s) const override { s.allocate_exact(pick); }
  void show(std::ostream& os) const override { os << "allocate_exact(extent #" << pick << ")"; }
};
struct Verify : Cmd {
  void run(const Model&, Shadow& s) const override { s.verify(); }
  void show(std::ostream& os) const override { os << "verify"; }
};

}  // namespace

// A small heap: out_of_memory and fragmentation come quickly.
RC_GTEST_PROP(ArenaAllocatorModel, SmallHeapMatchesTheModel, ()) {
  Shadow s(16 * 1024);
  rc::state::check(Model{}, s, rc::state::gen::execOneOfWithArgs<Allocate, Allocate, Free, Free, AllocateExact, Verify>());
  s.verify();
  while (!s.live.empty()) s.free(0);
  s.verify();
  RC_ASSERT(s.free_ext.size() == 1u);  // everything coalesced back
}

// A larger heap: long runs of mixed sizes and alignments.
RC_GTEST_PROP(ArenaAllocatorModel, LargerHeapMatchesTheModel, ()) {
  Shadow s(256 * 1024);
  rc::state::check(Model{}, s, rc::state::gen::execOneOfWithArgs<Allocate, Allocate, Allocate, Free, Free, AllocateExact, Verify>());
  s.verify();
}
