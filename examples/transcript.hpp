// examples/transcript.hpp — what the tutorial ports print, and the check that they printed it.
//
// A port prints through say() (printf-like, one line, flushed at once so lines from several
// processes come out whole). say() also appends the line to a Transcript that lives in shared
// memory, so after the children have ended the main process can compare what was printed, by
// anyone, with what the Python program prints: exactly and in order (expect) where Python's
// order is deterministic, or as a multiset (expect_unordered) where it depends on scheduling.
//
// Use: Transcript::open() once in main, before the first fork (Process, Pool); then say()
// anywhere; section() marks where a program's output starts. A failed expectation prints both
// listings to stderr; the example then exits 1 — that is the smoke test's output check.
//
// Layout: a fixed table of 2048 lines of at most 255 bytes and an atomic line counter, made
// in its own Arena (a memfd mapping inherited across fork). Not a library component: only
// what the examples need.
#pragma once

#include <multiproc/arena.hpp>

#include <algorithm>
#include <atomic>
#include <cstdarg>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace tutorial {

class Transcript {
 public:
  static constexpr int kLines = 2048;
  static constexpr int kWidth = 256;

  /// Makes the process-wide transcript (once, before forking).
  static Transcript& open() {
    static multiproc::Arena arena = multiproc::Arena::create(sizeof(Transcript) + (1 << 16), "transcript");
    instance_ = &arena.make<Transcript>("transcript");
    return *instance_;
  }
  static Transcript& get() { return *instance_; }

  void record(const char* text) {
    const int i = n_.fetch_add(1);
    if (i >= kLines) return;  // overflow shows up as a mismatch: size() still counts it
    const std::size_t n = std::min(std::strlen(text), std::size_t{kWidth - 1});
    std::memcpy(line_[i], text, n);
    line_[i][n] = '\0';
  }
  int size() const { return n_.load(); }
  /// Lines [mark, end) (end < 0: up to the last one).
  std::vector<std::string> since(int mark, int end = -1) const {
    std::vector<std::string> out;
    const int stop = std::min(end < 0 ? size() : end, kLines);
    for (int i = mark; i < stop; ++i) out.emplace_back(line_[i]);
    return out;
  }

 private:
  static inline Transcript* instance_ = nullptr;
  std::atomic<int> n_{0};
  char line_[kLines][kWidth];
};

/// Prints one line (a '\n' is added) to stdout, flushes, and records it.
[[gnu::format(printf, 1, 2)]] inline void say(const char* fmt, ...) {
  char buf[Transcript::kWidth * 4];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  std::printf("%s\n", buf);
  std::fflush(stdout);
  Transcript::get().record(buf);
}

[[gnu::format(printf, 1, 2)]] inline std::string str(const char* fmt, ...) {
  char buf[Transcript::kWidth * 4];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

/// Where the next program's output starts; prints a header line to stdout only (not recorded).
inline int section(const char* title) {
  std::printf("---- %s\n", title);
  std::fflush(stdout);
  return Transcript::get().size();
}

/// A remark of the port's own (not something the Python prints): to stdout, not recorded.
[[gnu::format(printf, 1, 2)]] inline void note(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::printf("  # ");
  std::vprintf(fmt, ap);
  std::printf("\n");
  va_end(ap);
  std::fflush(stdout);
}

inline void dump(const char* what, const std::vector<std::string>& lines) {
  std::fprintf(stderr, "  %s (%zu lines):\n", what, lines.size());
  for (const auto& l : lines) std::fprintf(stderr, "    |%s|\n", l.c_str());
}

/// The lines printed since `mark` (up to `end` if given) are exactly `want`, in order.
inline bool expect(int mark, const std::vector<std::string>& want, const char* title = "", int end = -1) {
  const auto got = Transcript::get().since(mark, end);
  if (got == want) return true;
  std::fprintf(stderr, "output check failed: %s\n", title);
  dump("expected", want);
  dump("printed", got);
  return false;
}

/// The lines printed since `mark` (up to `end` if given) are `want` in some order.
inline bool expect_unordered(int mark, std::vector<std::string> want, const char* title = "", int end = -1) {
  auto got = Transcript::get().since(mark, end);
  auto sorted_got = got;
  std::sort(sorted_got.begin(), sorted_got.end());
  std::sort(want.begin(), want.end());
  if (sorted_got == want) return true;
  std::fprintf(stderr, "output check failed (any order): %s\n", title);
  dump("expected", want);
  dump("printed", got);
  return false;
}

/// Position of `line` among the lines since `mark` (-1 if absent).
inline int position(int mark, const std::string& line) {
  const auto got = Transcript::get().since(mark);
  const auto it = std::find(got.begin(), got.end(), line);
  return it == got.end() ? -1 : static_cast<int>(it - got.begin());
}

/// The tutorials' producer/consumer output (000): since `mark`, producer k printed
/// "\033[44m<pid> 生产了 <name_k><i>\033[0m" for i < n, each item was printed once as
/// "\033[45m<pid> 吃 <item>\033[0m" by one of `consumers`, and "主" was printed once (last,
/// if `main_last`). Who ate what varies with scheduling.
inline bool expect_producer_consumer(int mark, const std::vector<std::pair<int, std::string>>& producers, int n,
                                     const std::vector<int>& consumers, bool main_last, const char* title) {
  std::vector<std::string> made, eaten, want_made, want_eaten;
  int mains = 0;
  bool ok = true;
  const auto lines = Transcript::get().since(mark);
  for (const auto& l : lines) {
    const auto made_at = l.find(" 生产了 "), eaten_at = l.find(" 吃 ");
    if (l == "主") {
      ++mains;
    } else if (made_at != std::string::npos) {
      made.push_back(l);
    } else if (eaten_at != std::string::npos && l.rfind("\033[45m", 0) == 0) {
      const int who = std::atoi(l.c_str() + 5);
      ok = ok && std::find(consumers.begin(), consumers.end(), who) != consumers.end();
      eaten.push_back(l.substr(eaten_at + 5));
    } else {
      ok = false;
    }
  }
  for (const auto& [pid, name] : producers)
    for (int i = 0; i < n; ++i) {
      want_made.push_back(str("\033[44m%d 生产了 %s%d\033[0m", pid, name.c_str(), i));
      want_eaten.push_back(str("%s%d\033[0m", name.c_str(), i));
    }
  for (auto* v : {&made, &eaten, &want_made, &want_eaten}) std::sort(v->begin(), v->end());
  ok = ok && made == want_made && eaten == want_eaten && mains == 1 && (!main_last || lines.back() == "主");
  if (!ok) {
    std::fprintf(stderr, "output check failed: %s\n", title);
    dump("printed", lines);
  }
  return ok;
}

/// Python's repr of a list of ints: [0, 1, 2].
template <class Range>
std::string py_list(const Range& r) {
  std::string s = "[";
  bool first = true;
  for (const auto& x : r) {
    s += (first ? "" : ", ") + std::to_string(x);
    first = false;
  }
  return s + "]";
}

}  // namespace tutorial
