// LeakSanitizer runs its check in any process that calls exit(), forked children included. A
// child forked from a multi-threaded test (the supervisor and pool handler threads) holds
// objects that only those threads' stacks referenced — threads that do not exist in the child —
// so the check reports them and turns the child's exit code into 23. The tests that call exit()
// in a child to test at-exit behaviour keep the check for the test process itself only.
// Include in exactly one translation unit per test binary.
#pragma once

#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
namespace lsan_children {
inline const pid_t main_pid = ::getpid();
}
extern "C" int __lsan_is_turned_off() { return ::getpid() != lsan_children::main_pid; }
#endif
