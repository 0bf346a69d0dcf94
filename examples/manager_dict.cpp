// The tutorials' Manager().dict() / Manager().list() programs, with multiproc::Dict and List in
// an Arena instead of a manager server process. Three programs, in the tutorials' order:
//
// Tutorial 000 ("进程间通信 ... Manager"): 100 processes each take one from a shared counter.
//   def work(d, lock):
//       # with lock:   # without the lock the shared data gets corrupted
//           d['count'] -= 1
//   with Manager() as m:
//       dic = m.dict({'count': 100})
//       for i in range(100): Process(target=work, args=(dic, lock)).start() ... join()
//       print(dic)     # {'count': 94} — the tutorial's point: without the lock, updates are lost
// Dict::update runs the decrement atomically for the key (it is the lock the tutorial comments
// out), so this prints what the locked Python program prints: {'count': 0}.
//
// Tutorial 002 ("多进程间共享不同类型的数据结构对象"): a child fills a dict and reverses a list.
//   def f(shareDict, shareList):
//       shareDict[1] = '1'; shareDict['2'] = 2; shareDict[0.25] = None; shareList.reverse()
//   shareDict = manager.dict(); shareList = manager.list(range(10))
//   p = Process(target=f, args=(shareDict, shareList)); p.start(); p.join()
//   print shareDict    # {1: '1', '2': 2, 0.25: None}
//   print shareList    # [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
// Python values are dynamically typed; here a small trivially copyable PyValue (None, int,
// float or a string of up to 15 bytes) plays that part, with its own Hash (it has padding, so
// hashing its bytes would not do). A Python dict keeps insertion order; a Dict has none, so
// each value carries its insertion number and the printout sorts by it.
//
// Tutorial 004 ("进程间直接的数据共享 - Manager"): a child writes into a shared list.
//   def func(lst):
//       lst[0] = "aaa"
//       print("子进程中的列表", lst)             # 子进程中的列表 ['aaa', 22, 33]
//   lst = m.list([11, 22, 33])
//   print("父进程中一开始的列表", lst)           # 父进程中一开始的列表 [11, 22, 33]
//   p = Process(target=func, args=(lst,)); p.start(); p.join()
//   print("父进程中后来的列表", lst)             # 父进程中后来的列表 ['aaa', 22, 33]
//
// Exits 0 only if every printed result is the expected one (and printed: transcript.hpp).
#include "transcript.hpp"

#include <multiproc/arena.hpp>
#include <multiproc/dict.hpp>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace mp = multiproc;
using tutorial::say;

namespace {

// ---- a Python value, trivially copyable ---------------------------------------------------------

struct PyValue {
  enum class Kind : std::uint8_t { none, integer, real, text };
  Kind kind = Kind::none;
  std::int64_t i = 0;
  double f = 0;
  mp::FixedString<15> s;

  static PyValue None() { return {}; }
  static PyValue Int(std::int64_t v) { return {Kind::integer, v, 0, {}}; }
  static PyValue Float(double v) { return {Kind::real, 0, v, {}}; }
  static PyValue Str(std::string_view v) { return {Kind::text, 0, 0, mp::FixedString<15>(v)}; }

  friend bool operator==(const PyValue& a, const PyValue& b) {
    if (a.kind != b.kind) return false;
    switch (a.kind) {
      case Kind::none: return true;
      case Kind::integer: return a.i == b.i;
      case Kind::real: return a.f == b.f;
      case Kind::text: return a.s == b.s;
    }
    return false;
  }

  /// What Python's repr() prints.
  std::string repr() const {
    switch (kind) {
      case Kind::none: return "None";
      case Kind::integer: return std::to_string(i);
      case Kind::real: {
        char buf[32];
        const auto r = std::to_chars(buf, buf + sizeof buf, f);  // shortest round-trip, as Python
        std::string out(buf, r.ptr);
        if (out.find_first_of(".e") == std::string::npos) out += ".0";
        return out;
      }
      case Kind::text: return "'" + s.str() + "'";
    }
    return "?";
  }
};

// Stateless, the same in every process: what Dict needs of a Hash.
struct PyHash {
  std::uint64_t operator()(const PyValue& v) const {
    switch (v.kind) {
      case PyValue::Kind::none: return 0;
      case PyValue::Kind::integer: return std::hash<std::int64_t>{}(v.i);
      case PyValue::Kind::real: return std::hash<double>{}(v.f) ^ 0x5bd1e995;
      case PyValue::Kind::text: return std::hash<mp::FixedString<15>>{}(v.s);
    }
    return 0;
  }
};

// A dict value with its insertion number (Python dicts print in insertion order).
struct Slot {
  std::uint32_t order;
  PyValue value;
};

using PyDict = mp::Dict<PyValue, Slot, PyHash>;
using PyList = mp::List<PyValue>;

std::string repr(const PyDict& d) {
  std::vector<std::pair<PyValue, Slot>> items;
  d.for_each([&](const PyValue& k, const Slot& v) { items.emplace_back(k, v); });
  std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.second.order < b.second.order; });
  std::string out = "{";
  for (std::size_t n = 0; n < items.size(); ++n)
    out += (n ? ", " : "") + items[n].first.repr() + ": " + items[n].second.value.repr();
  return out + "}";
}

std::string repr(const PyList& l) {
  std::string out = "[";
  const std::vector<PyValue> items = l.snapshot();
  for (std::size_t n = 0; n < items.size(); ++n) out += (n ? ", " : "") + items[n].repr();
  return out + "]";
}

// ---- processes --------------------------------------------------------------------------------

// Process(target=fn).start(): fn runs in a fork()ed child, which exits 0, or 1 if fn throws.
template <class F>
pid_t start(F fn) {
  std::fflush(stdout);
  const pid_t pid = ::fork();
  if (pid == 0) {
    int code = 0;
    try {
      fn();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: %s\n", e.what());
      code = 1;
    }
    std::fflush(stdout);
    ::_exit(code);
  }
  return pid;
}

// join(); true if the child exited 0.
bool join(pid_t pid) {
  int status = 0;
  return ::waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

bool expect(const std::string& got, const std::string& want) {
  if (got == want) return true;
  std::fprintf(stderr, "expected %s, got %s\n", want.c_str(), got.c_str());
  return false;
}

// ---- the three programs ---------------------------------------------------------------------

bool counter(mp::Arena& arena) {
  auto& dic = arena.make<PyDict>("dic", 8);
  dic.insert(PyValue::Str("count"), Slot{0, PyValue::Int(100)});
  std::vector<pid_t> p_l;
  for (int i = 0; i < 100; ++i)
    p_l.push_back(start([&] { dic.update(PyValue::Str("count"), [](Slot& s) { s.value.i -= 1; }); }));
  bool ok = true;
  for (pid_t p : p_l) ok &= join(p);
  const std::string out = repr(dic);
  say("%s", out.c_str());
  return ok && expect(out, "{'count': 0}");
}

bool dict_and_list(mp::Arena& arena) {
  auto& shareDict = arena.make<PyDict>("shareDict", 16);
  auto& shareList = arena.make<PyList>("shareList", 16);
  for (int i = 0; i < 10; ++i) shareList.push_back(PyValue::Int(i));
  const pid_t p = start([&] {
    shareDict.insert_or_assign(PyValue::Int(1), Slot{0, PyValue::Str("1")});
    shareDict.insert_or_assign(PyValue::Str("2"), Slot{1, PyValue::Int(2)});
    shareDict.insert_or_assign(PyValue::Float(0.25), Slot{2, PyValue::None()});
    const std::size_t n = shareList.size();  // shareList.reverse()
    for (std::size_t i = 0; i < n / 2; ++i) {
      const PyValue a = shareList[i], b = shareList[n - 1 - i];
      shareList.set(i, b);
      shareList.set(n - 1 - i, a);
    }
  });
  const bool ok = join(p);
  const std::string d = repr(shareDict), l = repr(shareList);
  say("%s", d.c_str());
  say("%s", l.c_str());
  return ok && expect(d, "{1: '1', '2': 2, 0.25: None}") && expect(l, "[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]");
}

bool child_writes_list(mp::Arena& arena) {
  auto& lst = arena.make<PyList>("lst", 8);
  for (int v : {11, 22, 33}) lst.push_back(PyValue::Int(v));
  const std::string before = repr(lst);
  say("父进程中一开始的列表 %s", before.c_str());
  const pid_t p = start([&] {
    lst.set(0, PyValue::Str("aaa"));
    say("子进程中的列表 %s", repr(lst).c_str());
  });
  const bool ok = join(p);
  const std::string after = repr(lst);
  say("父进程中后来的列表 %s", after.c_str());
  return ok && expect(before, "[11, 22, 33]") && expect(after, "['aaa', 22, 33]");
}

}  // namespace

int main() {
  tutorial::Transcript::open();
  auto arena = mp::Arena::create(1 << 20);
  bool ok = counter(arena);
  ok = dict_and_list(arena) && ok;
  ok = child_writes_list(arena) && ok;
  ok = tutorial::expect(0,
                        {"{'count': 0}", "{1: '1', '2': 2, 0.25: None}", "[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]",
                         "父进程中一开始的列表 [11, 22, 33]", "子进程中的列表 ['aaa', 22, 33]", "父进程中后来的列表 ['aaa', 22, 33]"},
                        "000-12, 002-23, 004-16") &&
       ok;
  return ok ? 0 : 1;
}
