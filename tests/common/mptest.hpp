// Test helpers for real multi-process tests: shared anonymous memory and fork()ed children
// whose every wait is bounded. Used by tests/*; not part of the library.
#pragma once

#include <multiproc/error.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <new>
#include <sys/mman.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

namespace mptest {

/// Runs `f`, which must throw multiproc::Error, and returns what it threw (a test failure, and
/// Error(not_supported), when it throws nothing).
template <class F>
multiproc::Error catch_error(F&& f) {
  try {
    f();
  } catch (const multiproc::Error& e) {
    return e;
  }
  ADD_FAILURE() << "no multiproc::Error thrown";
  return multiproc::Error(multiproc::errc::not_supported, "nothing thrown");
}

/// `bytes` of zeroed MAP_SHARED|MAP_ANONYMOUS memory, inherited by fork()ed children.
class SharedMemory {
 public:
  explicit SharedMemory(std::size_t bytes) : size_(bytes) {
    p_ = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p_ == MAP_FAILED) throw std::bad_alloc();
  }
  ~SharedMemory() { ::munmap(p_, size_); }
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;
  void* get() const { return p_; }
  template <class T, class... A> T* make(A&&... args) { return new (p_) T(std::forward<A>(args)...); }

 private:
  void* p_;
  std::size_t size_;
};

/// A T constructed in its own shared mapping.
template <class T>
class Shared {
 public:
  template <class... A> explicit Shared(A&&... args) : mem_(sizeof(T) < 4096 ? 4096 : sizeof(T)) {
    p_ = mem_.make<T>(std::forward<A>(args)...);
  }
  T* operator->() const { return p_; }
  T& operator*() const { return *p_; }
  T* get() const { return p_; }

 private:
  SharedMemory mem_;
  T* p_;
};

/// Forks a child running fn(); the child exits with fn's return value (an escaping exception
/// prints and exits 99), never returning into the test framework.
inline pid_t spawn(std::function<int()> fn) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    int code = 99;
    try {
      code = fn();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child %d: exception: %s\n", ::getpid(), e.what());
    } catch (...) {
      std::fprintf(stderr, "child %d: unknown exception\n", ::getpid());
    }
    std::fflush(nullptr);
    ::_exit(code);
  }
  return pid;
}

inline constexpr int kTimedOut = -1000;

/// Waits for `pid` up to `timeout`; on timeout SIGKILLs and reaps it and returns kTimedOut.
/// Returns the exit status, or -N when killed by signal N.
inline int wait_exit(pid_t pid, std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0) return -2000;
    if (std::chrono::steady_clock::now() >= end) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return kTimedOut;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return -3000;
}

/// Runs fn(i) in n children at once and expects each to exit 0 within `timeout`.
inline void run_children(int n, const std::function<int(int)>& fn,
                         std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  std::vector<pid_t> pids;
  for (int i = 0; i < n; ++i) pids.push_back(spawn([&fn, i] { return fn(i); }));
  for (int i = 0; i < n; ++i) EXPECT_EQ(wait_exit(pids[i], timeout), 0) << "child " << i;
}

/// Number of kill-loop rounds: `ci_default`, or MULTIPROC_KILL_ROUNDS from the environment.
inline int kill_rounds(int ci_default) {
  const char* s = std::getenv("MULTIPROC_KILL_ROUNDS");
  return s ? std::atoi(s) : ci_default;
}

}  // namespace mptest
