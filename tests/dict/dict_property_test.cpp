// Model-based tests. Dict against std::unordered_map and List against std::vector with
// rapidcheck's stateful commands (rc::state): every call's result is checked against the model,
// and after every command the whole content (for_each) and size() are. Dicts run twice: with
// the default hash, and with a hash that piles keys onto the last chunk, so searches cross
// chunks, overflow counts climb and wrap past the last chunk.
// Then the same commands from several processes at once, each owning the keys k % P == p, so
// each can check every result against its own model while all of them share stripes and
// overflow chains; at the end the Dict must hold exactly the union of the models.
#include <multiproc/dict.hpp>

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>
#include "dict_test_util.hpp"

#include <map>
#include <unordered_map>
#include <vector>

namespace mp = multiproc;
using dicttest::InShared;

namespace {

// A terrible hash on purpose: three keys in four go to the last chunk (mix64(18) is
// 0xffcb..., so its home is the last chunk of any table below ~1300 chunks), which then
// overflows and its searches wrap around to chunk 0; the rest go to three other homes.
struct ThreeHomes {
  std::uint64_t operator()(int k) const { return k % 4 != 3 ? 18 : static_cast<std::uint64_t>(k % 3); }
};

constexpr std::size_t kCap = 24;  // keys 0..79: inserts meet out_of_memory

template <class D>
struct DictSut {
  InShared<D> d{kCap};
};

using Model = std::unordered_map<int, int>;

template <class D>
void check_all(const Model& m, D& d) {
  std::map<int, int> seen;
  bool twice = false;
  d.for_each([&](const int& k, const int& v) { twice |= !seen.emplace(k, v).second; });
  RC_ASSERT(!twice);
  RC_ASSERT((seen == std::map<int, int>(m.begin(), m.end())));
  RC_ASSERT(d.size() == m.size());
}

template <class D>
struct Insert : rc::state::Command<Model, DictSut<D>> {
  int k = *rc::gen::inRange(0, 80);
  int v = *rc::gen::arbitrary<int>();
  void apply(Model& m) const override {
    if (m.size() < kCap) m.emplace(k, v);
  }
  void run(const Model& m, DictSut<D>& s) const override {
    const bool present = m.count(k) != 0;
    if (!present && m.size() == kCap) {
      try {
        s.d->insert(k, v);
        RC_FAIL("insert into a full Dict did not throw");
      } catch (const mp::Error& e) {
        RC_ASSERT(e.code() == mp::errc::out_of_memory);
      }
    } else {
      RC_ASSERT(s.d->insert(k, v) == !present);
    }
    Model next = m;
    apply(next);
    check_all(next, *s.d);
  }
  void show(std::ostream& os) const override { os << "insert(" << k << ", " << v << ")"; }
};

template <class D>
struct Assign : rc::state::Command<Model, DictSut<D>> {
  int k = *rc::gen::inRange(0, 80);
  int v = *rc::gen::arbitrary<int>();
  void apply(Model& m) const override {
    if (m.count(k) || m.size() < kCap) m[k] = v;
  }
  void run(const Model& m, DictSut<D>& s) const override {
    if (!m.count(k) && m.size() == kCap) {
      RC_ASSERT_THROWS_AS(s.d->insert_or_assign(k, v), mp::Error);
    } else {
      s.d->insert_or_assign(k, v);
    }
    Model next = m;
    apply(next);
    check_all(next, *s.d);
  }
  void show(std::ostream& os) const override { os << "insert_or_assign(" << k << ", " << v << ")"; }
};

template <class D>
struct Get : rc::state::Command<Model, DictSut<D>> {
  int k = *rc::gen::inRange(0, 80);
  void run(const Model& m, DictSut<D>& s) const override {
    const auto it = m.find(k);
    const std::optional<int> want = it == m.end() ? std::nullopt : std::optional<int>(it->second);
    RC_ASSERT(s.d->get(k) == want);
  }
  void show(std::ostream& os) const override { os << "get(" << k << ")"; }
};

template <class D>
struct Erase : rc::state::Command<Model, DictSut<D>> {
  int k = *rc::gen::inRange(0, 80);
  void apply(Model& m) const override { m.erase(k); }
  void run(const Model& m, DictSut<D>& s) const override {
    RC_ASSERT(s.d->erase(k) == (m.count(k) != 0));
    Model next = m;
    apply(next);
    check_all(next, *s.d);
  }
  void show(std::ostream& os) const override { os << "erase(" << k << ")"; }
};

template <class D>
struct Update : rc::state::Command<Model, DictSut<D>> {
  int k = *rc::gen::inRange(0, 80);
  int delta = *rc::gen::inRange(-1000, 1000);
  void apply(Model& m) const override {
    if (auto it = m.find(k); it != m.end()) it->second += delta;
  }
  void run(const Model& m, DictSut<D>& s) const override {
    RC_ASSERT(s.d->update(k, [&](int& v) { v += delta; }) == (m.count(k) != 0));
    Model next = m;
    apply(next);
    check_all(next, *s.d);
  }
  void show(std::ostream& os) const override { os << "update(" << k << ", +" << delta << ")"; }
};

template <class D>
void run_dict_model() {
  Model model;
  DictSut<D> sut;
  rc::state::check(model, sut, rc::state::gen::execOneOfWithArgs<Insert<D>, Assign<D>, Get<D>, Erase<D>, Update<D>>());
}

}  // namespace

RC_GTEST_PROP(DictModel, MatchesUnorderedMap, ()) { run_dict_model<mp::Dict<int, int>>(); }
RC_GTEST_PROP(DictModel, MatchesUnorderedMapWithCollidingHomes, ()) { run_dict_model<mp::Dict<int, int, ThreeHomes>>(); }

// ---- List against std::vector -----------------------------------------------------------------

namespace {

constexpr std::size_t kListCap = 12;
using ListModel = std::vector<long>;
struct ListSut {
  InShared<mp::List<long>> l{kListCap};
};

void check_list(const ListModel& m, ListSut& s) {
  RC_ASSERT(s.l->snapshot() == m);
  RC_ASSERT(s.l->size() == m.size());
}

struct Push : rc::state::Command<ListModel, ListSut> {
  long v = *rc::gen::arbitrary<long>();
  void apply(ListModel& m) const override {
    if (m.size() < kListCap) m.push_back(v);
  }
  void run(const ListModel& m, ListSut& s) const override {
    if (m.size() == kListCap) {
      RC_ASSERT_THROWS_AS(s.l->push_back(v), mp::Error);
    } else {
      s.l->push_back(v);
    }
    ListModel next = m;
    apply(next);
    check_list(next, s);
  }
  void show(std::ostream& os) const override { os << "push_back(" << v << ")"; }
};

struct Pop : rc::state::Command<ListModel, ListSut> {
  void apply(ListModel& m) const override {
    if (!m.empty()) m.pop_back();
  }
  void run(const ListModel& m, ListSut& s) const override {
    const auto got = s.l->pop_back();
    RC_ASSERT(got == (m.empty() ? std::nullopt : std::optional<long>(m.back())));
    ListModel next = m;
    apply(next);
    check_list(next, s);
  }
  void show(std::ostream& os) const override { os << "pop_back()"; }
};

struct Index : rc::state::Command<ListModel, ListSut> {
  std::size_t i = *rc::gen::inRange<std::size_t>(0, kListCap + 2);
  void run(const ListModel& m, ListSut& s) const override {
    if (i < m.size()) {
      RC_ASSERT((*s.l)[i] == m[i]);
    } else {
      RC_ASSERT_THROWS_AS((*s.l)[i], mp::Error);
    }
  }
  void show(std::ostream& os) const override { os << "[" << i << "]"; }
};

struct Set : rc::state::Command<ListModel, ListSut> {
  std::size_t i = *rc::gen::inRange<std::size_t>(0, kListCap + 2);
  long v = *rc::gen::arbitrary<long>();
  void apply(ListModel& m) const override {
    if (i < m.size()) m[i] = v;
  }
  void run(const ListModel& m, ListSut& s) const override {
    if (i < m.size()) {
      s.l->set(i, v);
    } else {
      RC_ASSERT_THROWS_AS(s.l->set(i, v), mp::Error);
    }
    ListModel next = m;
    apply(next);
    check_list(next, s);
  }
  void show(std::ostream& os) const override { os << "set(" << i << ", " << v << ")"; }
};

}  // namespace

RC_GTEST_PROP(ListModel, MatchesVector, ()) {
  ListModel model;
  ListSut sut;
  rc::state::check(model, sut, rc::state::gen::execOneOfWithArgs<Push, Pop, Index, Set>());
}

// ---- the same commands from several processes, each owning its keys ----------------------------

namespace {

constexpr int kProcs = 3;
constexpr int kOwnKeys = 16;  // process p owns keys i * kProcs + p, i < kOwnKeys: all fit
constexpr int kRepeats = 20;  // each process runs its commands this many times (more overlap)

enum class Op : int { insert, assign, get, erase, update };
struct Cmd {
  Op op;
  int key;  // 0..kOwnKeys-1, mapped to an owned key
  int value;
};

template <class D>
bool apply_checked(D& d, Model& m, const Cmd& c, int p) {
  const int k = c.key * kProcs + p;
  const auto it = m.find(k);
  const bool present = it != m.end();
  switch (c.op) {
    case Op::insert:
      if (d.insert(k, c.value) != !present) return false;
      if (!present) m[k] = c.value;
      return true;
    case Op::assign:
      d.insert_or_assign(k, c.value);
      m[k] = c.value;
      return true;
    case Op::get: {
      const auto v = d.get(k);
      return v.has_value() == present && (!present || *v == it->second);
    }
    case Op::erase:
      if (d.erase(k) != present) return false;
      m.erase(k);
      return true;
    case Op::update:
      if (d.update(k, [&](int& v) { v += c.value; }) != present) return false;
      if (present) it->second += c.value;
      return true;
  }
  return false;
}

template <class D>
void run_owned_commands() {
  const auto cmds = *rc::gen::container<std::vector<std::vector<Cmd>>>(
      kProcs, rc::gen::container<std::vector<Cmd>>(rc::gen::construct<Cmd>(
                  rc::gen::element(Op::insert, Op::assign, Op::get, Op::erase, Op::update),
                  rc::gen::inRange(0, kOwnKeys), rc::gen::inRange(-100, 100))));
  InShared<D> d(kProcs * kOwnKeys);
  std::vector<pid_t> pids;
  for (int p = 0; p < kProcs; ++p)
    pids.push_back(mptest::spawn([&, p] {
      Model m;
      for (int r = 0; r < kRepeats; ++r) {
        for (std::size_t i = 0; i < cmds[p].size(); ++i)
          if (!apply_checked(*d, m, cmds[p][i], p)) return 1;
        // Its own keys, seen through for_each, are exactly its model.
        Model mine;
        d->for_each([&](const int& k, const int& v) {
          if (k % kProcs == p) mine.emplace(k, v);
        });
        if (mine != m) return 2;
      }
      return 0;
    }));
  for (pid_t pid : pids) RC_ASSERT(mptest::wait_exit(pid, std::chrono::seconds(60)) == 0);
  Model all;
  for (int p = 0; p < kProcs; ++p) {
    Model m;
    for (int r = 0; r < kRepeats; ++r)
      for (const Cmd& c : cmds[p]) {
        const int k = c.key * kProcs + p;
        const bool present = m.count(k) != 0;
        if (c.op == Op::insert && !present) m[k] = c.value;
        if (c.op == Op::assign) m[k] = c.value;
        if (c.op == Op::erase) m.erase(k);
        if (c.op == Op::update && present) m[k] += c.value;
      }
    all.insert(m.begin(), m.end());
  }
  check_all(all, *d);
}

}  // namespace

RC_GTEST_PROP(DictModel, OwnedCommandsFromSeveralProcesses, ()) { run_owned_commands<mp::Dict<int, int>>(); }
RC_GTEST_PROP(DictModel, OwnedCommandsFromSeveralProcessesWithCollidingHomes, ()) {
  run_owned_commands<mp::Dict<int, int, ThreeHomes>>();
}
