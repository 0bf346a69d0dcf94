#include <multiproc/error.hpp>
#include <multiproc/fork.hpp>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <fcntl.h>
#include <iostream>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace multiproc {

namespace {
/// The child side of fork_process; SIGKILLs the child when a parent-death check fails.
void setup_child(const ForkOptions& opts, pid_t parent) noexcept {
  if (opts.sigmask) ::pthread_sigmask(SIG_SETMASK, opts.sigmask, nullptr);
  if (opts.die_with_parent) {
    // Armed first, then checked: a parent that died before the prctl has re-parented us.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::raise(SIGKILL);
  }
  if (const int fd = opts.lifeline; fd >= 0) {
    // Armed first, then checked, so a parent that died in between is seen by the poll.
    ::fcntl(fd, F_SETOWN, ::getpid());
    ::fcntl(fd, F_SETSIG, SIGKILL);
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_ASYNC);
    const short ev = poll_one(fd, POLLIN, Deadline::after(std::chrono::nanoseconds(0)));
    if (ev > 0 && (ev & (POLLHUP | POLLIN))) ::raise(SIGKILL);
  }
}
}  // namespace

pid_t fork_process(const ForkOptions& opts) noexcept {
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) setup_child(opts, parent);
  return pid;
}

void flush_stdio() noexcept {
  try {
    std::cout.flush();
    std::cerr.flush();
    std::clog.flush();
  } catch (...) {
  }
  std::fflush(nullptr);
}

void exit_child(int code) noexcept {
  flush_stdio();
  ::_exit(code);
}

pid_t parent_pid() noexcept { return ::getppid(); }

void kill_and_reap(pid_t child) noexcept {
  (void)::kill(child, SIGKILL);
  while (::waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
  }
}

PipeEnds make_pipe() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) detail::throw_errno(errno, "make_pipe: pipe2");
  return {UniqueFd(p[0]), UniqueFd(p[1])};
}

WakeupFd::WakeupFd() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (!fd_) detail::throw_errno(errno, "WakeupFd: eventfd");
}

void WakeupFd::kick() noexcept {
  if (!fd_) return;
  const std::uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(fd_.get(), &one, sizeof one);  // EAGAIN: already readable
}

bool WakeupFd::drain() noexcept {
  if (!fd_) return false;
  std::uint64_t v = 0;
  return ::read(fd_.get(), &v, sizeof v) == static_cast<ssize_t>(sizeof v);  // resets the counter
}

namespace detail {
BlockAllSignals::BlockAllSignals() noexcept {
  sigset_t all;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old_);
}
BlockAllSignals::~BlockAllSignals() { ::pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
}  // namespace detail

sigset_t this_thread_sigmask() noexcept {
  sigset_t m;
  ::sigemptyset(&m);
  ::pthread_sigmask(SIG_SETMASK, nullptr, &m);
  return m;
}

}  // namespace multiproc
