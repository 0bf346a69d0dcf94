// Shared memory the pool tests' tasks write to: mapped before any Pool exists, so a forked
// worker finds it at the same address through the global pointer.
#pragma once

#include <atomic>
#include <new>
#include <sys/mman.h>
#include <sys/types.h>

namespace pooltest {

struct Board {
  std::atomic<int> started{0};          // tasks that reached their body
  std::atomic<pid_t> victim{0};         // pid of the worker running the task to kill
  std::atomic<int> counter{0};
};

inline Board* board() {
  static Board* b = [] {
    void* p = ::mmap(nullptr, sizeof(Board), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    return new (p) Board;
  }();
  return b;
}

}  // namespace pooltest
