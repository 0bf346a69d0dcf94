// multiproc/fork.hpp — process plumbing: forking a child, leaving it, and the wake-up,
// pipe and signal-mask helpers a supervising thread needs.
//
// The one place the library forks, exits a child, arms parent-death signals and makes
// eventfds and pipes; Process and Pool (primitives/) go through these instead of making the
// system calls themselves. Reaping and signalling a child by handle is pidfd.hpp; descriptor
// ownership and waiting is fd.hpp.
//
// fork_process is glibc's fork(): the atfork handlers run (ids.hpp's TID/PID cache, the
// malloc and stdio lock resets, the library's own handlers), so the child may run arbitrary
// C++. The child is single-threaded: only the calling thread is copied.
//
// Dying with the parent, the two mechanisms (ForkOptions):
//   * die_with_parent: PR_SET_PDEATHSIG(SIGKILL), then getppid() is compared with the forking
//     process, so a parent that died before the prctl is caught too. The kernel sends the
//     signal when the *thread* that forked exits (not the process), and clears it when the
//     child changes credentials or execs a set-user-ID program: fork from a thread that lives
//     as long as the process, and add a lifeline.
//   * lifeline: the read end of a pipe whose write end only the parent process holds. The
//     child arms it with O_ASYNC, F_SETOWN(itself) and F_SETSIG(SIGKILL): when the parent's last
//     reference to the write end goes (exit, exec, any death), the kernel sends the child
//     SIGKILL. A non-blocking poll right after arming catches a parent that died before.
// Both are set up in the child before fork_process returns 0 there; a failed check SIGKILLs
// the child at once (it never returns into the caller).
#pragma once

#include <multiproc/fd.hpp>

#include <csignal>
#include <sys/types.h>
#include <thread>
#include <utility>

namespace multiproc {

/// Child-side setup fork_process performs in the new child before it returns 0 there.
struct ForkOptions {
  /// When set, the child's signal mask becomes *sigmask first (e.g. the mask of the thread
  /// that asked another thread to fork for it). Otherwise the forking thread's mask stays.
  const sigset_t* sigmask = nullptr;
  /// PR_SET_PDEATHSIG(SIGKILL) plus the getppid() race check (see the top of this file).
  bool die_with_parent = false;
  /// The read end of a lifeline pipe to arm (see the top of this file); -1: none. The child
  /// must have this descriptor open (the parent's atfork handlers must not close it).
  int lifeline = -1;
};

/// Forks (glibc fork(), atfork handlers included). In the parent: the child's PID (> 0), or -1
/// with errno (EAGAIN, ENOMEM) and no child. In the child: 0, after the setup `opts` asks for.
/// Never blocks beyond the fork itself; never throws. Flush stdio first (flush_stdio) or the
/// child inherits and later prints the parent's buffered output again.
pid_t fork_process(const ForkOptions& opts = {}) noexcept;

/// Flushes std::cout, std::cerr, std::clog and every C stdio stream; errors are ignored.
/// May block on a full pipe or terminal, as any write does.
void flush_stdio() noexcept;

/// Ends a forked child with status `code` (low 8 bits): flush_stdio(), then _exit(2). No
/// atexit handlers and no static destructors run (those belong to the parent's image), and
/// the call never returns into the caller's stack. Flush anything of your own first.
[[noreturn]] void exit_child(int code) noexcept;

/// This process's parent PID (getppid(2), not cached: it changes when the parent dies and the
/// process is re-parented).
pid_t parent_pid() noexcept;

/// For a child of this process that has no pidfd: SIGKILL by PID and reap it, blocking until
/// it has ended. Safe against PID reuse only because a child's PID stays ours until we reap
/// it: call it for your own unreaped child only. Never throws.
void kill_and_reap(pid_t child) noexcept;

/// Two ends of a new pipe, both O_CLOEXEC.
struct PipeEnds {
  UniqueFd read;
  UniqueFd write;
};

/// A new pipe, both ends O_CLOEXEC. Throws Error(errno) ("make_pipe: pipe2: ...") on failure
/// (EMFILE, ENFILE).
PipeEnds make_pipe();

/// A wake-up for a thread that sleeps in poll: an eventfd (O_CLOEXEC | O_NONBLOCK) a thread
/// polls for POLLIN among its other descriptors. kick() makes it readable; drain() makes it
/// unreadable again. Kicks coalesce: any number of kicks before a drain wake the poller once,
/// and a kick before the poll starts is not lost (the fd stays readable until drained).
/// Ordering: eventfd writes and reads are system calls, so a kick made after writing shared
/// state under a mutex, and a drain followed by reading that state under the same mutex,
/// never miss the update.
class WakeupFd {
 public:
  /// Throws Error(errno) ("WakeupFd: eventfd: ...") when no eventfd can be made.
  WakeupFd();
  WakeupFd(WakeupFd&&) noexcept = default;
  WakeupFd& operator=(WakeupFd&&) noexcept = default;

  /// Makes fd() readable. Never blocks (a counter already at its maximum is already readable).
  void kick() noexcept;
  /// Makes fd() unreadable until the next kick; true when there were kicks to drain. Never blocks.
  bool drain() noexcept;
  /// The descriptor to poll for POLLIN; -1 after close().
  int fd() const noexcept { return fd_.get(); }
  /// Closes the eventfd (e.g. a fork()ed child's copy); kick and drain do nothing afterwards.
  void close() noexcept { fd_.reset(); }

 private:
  UniqueFd fd_;
};

namespace detail {
/// Blocks every signal in the calling thread while it lives; restores the old mask after.
class BlockAllSignals {
 public:
  BlockAllSignals() noexcept;
  ~BlockAllSignals();
  BlockAllSignals(const BlockAllSignals&) = delete;
  BlockAllSignals& operator=(const BlockAllSignals&) = delete;

 private:
  sigset_t old_;
};
}  // namespace detail

/// The calling thread's signal mask.
sigset_t this_thread_sigmask() noexcept;

/// std::thread(f, args...) started with every signal blocked in the new thread, for library
/// threads (a supervisor, a pool's handler): signals belong to the program's threads, and a
/// library thread sleeping in poll is never interrupted by the program's handlers. The
/// caller's own mask is unchanged on return, also when the std::thread constructor throws
/// (std::system_error, as std::thread does).
template <class F, class... Args>
std::thread thread_with_signals_blocked(F&& f, Args&&... args) {
  detail::BlockAllSignals block;  // a new thread inherits its creator's mask
  return std::thread(std::forward<F>(f), std::forward<Args>(args)...);
}

}  // namespace multiproc
