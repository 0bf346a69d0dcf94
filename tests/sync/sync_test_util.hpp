// Helpers shared by the sync tests (tests/sync only).
#pragma once

#include <gtest/gtest.h>

#include <multiproc/error.hpp>

#include <chrono>
#include <cstddef>
#include <system_error>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

namespace synctest {

/// From here on, any system call but exit/exit_group (and clock_gettime, which the vDSO serves
/// without entering the kernel unless the clock source forbids it) kills this process with SIGSYS.
/// Call it in a fork()ed child (mptest::spawn) and have the parent expect exit code 0: the code
/// run after it provably made no system call. Returns false if seccomp is unavailable.
inline bool forbid_syscalls() {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_exit_group, 3, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_exit, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clock_gettime, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof(filter) / sizeof(filter[0])), filter};
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return false;
  return ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

/// Runs `give_up()` (a timed wait that cannot succeed, returning false) and checks it returned
/// false no earlier than `timeout` after the call. No upper bound: timing asserts flake.
template <class F>
void expect_gives_up_no_earlier(F give_up, std::chrono::milliseconds timeout = std::chrono::milliseconds(100)) {
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(give_up());
  EXPECT_GE(std::chrono::steady_clock::now() - start, timeout);
}

/// The error code `f()` throws as a multiproc::Error (an OwnerDead must be one of that type).
/// A call that throws nothing is a test failure.
template <class F>
std::error_code error_of(F&& f) {
  try {
    f();
  } catch (const multiproc::Error& e) {
    if (e.code() == multiproc::errc::owner_dead && dynamic_cast<const multiproc::OwnerDead*>(&e) == nullptr)
      ADD_FAILURE() << "owner_dead thrown as a plain Error";
    return e.code();
  }
  ADD_FAILURE() << "expected a multiproc::Error";
  return {};
}

}  // namespace synctest
