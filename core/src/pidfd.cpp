#include <multiproc/pidfd.hpp>

#include <multiproc/fd.hpp>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

namespace multiproc {

int pidfd_open(pid_t pid) noexcept { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

int pidfd_send_signal(int pidfd, int sig) noexcept {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

bool pidfd_wait(int pidfd, const Deadline& deadline) noexcept {
  return poll_one(pidfd, POLLIN, deadline) > 0;  // a pidfd becomes readable when the process ends
}

ReapResult pidfd_reap(int pidfd, int& code, bool block) noexcept {
  for (;;) {
    siginfo_t info{};
    const int rc = ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info,
                            WEXITED | (block ? 0 : WNOHANG));
    if (rc < 0) {
      if (errno == EINTR) continue;
      return ReapResult::error;
    }
    if (info.si_pid == 0) return ReapResult::running;  // WNOHANG and not ended yet
    code = info.si_code == CLD_EXITED ? info.si_status : -info.si_status;
    return ReapResult::reaped;
  }
}

bool process_exists(pid_t pid) noexcept { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

bool process_dead(pid_t pid) noexcept {
  if (!process_exists(pid)) return true;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT;
  char buf[512];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  // "pid (comm) S ...": the state follows the last ')' (comm may itself hold parentheses).
  const char* close_paren = nullptr;
  for (const char* c = buf; *c; ++c)
    if (*c == ')') close_paren = c;
  return close_paren && close_paren[1] == ' ' && (close_paren[2] == 'Z' || close_paren[2] == 'X');
}

}  // namespace multiproc
