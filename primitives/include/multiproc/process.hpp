// multiproc/process.hpp — Process: run a callable in a fork()ed child, Python's
// multiprocessing.Process, with a pidfd instead of a PID.
//
// What a Process guarantees
//   * The target and its arguments are decay-copied at construction, as std::thread does;
//     start() forks and the child calls std::invoke(std::move(target), std::move(args)...). The
//     target returns int (the exit code, its low 8 bits as with exit(3)) or void (code 0). An
//     exception escaping the target prints "Process <name>: <what()>" to stderr and exits 1.
//     The child then flushes stdio (and std::cout/cerr/clog) and leaves with _exit: it never
//     returns into the caller's stack and never runs the parent's atexit handlers or static
//     destructors a second time.
//   * The parent holds a pidfd for the child (pidfd_open right after fork; see "Why fork +
//     pidfd_open" below). Signals go through pidfd_send_signal and join_for waits on the pidfd
//     with poll and one absolute steady-clock deadline: no SIGCHLD handler, no polling loop,
//     and no PID-reuse race — a pidfd names one process for as long as it is open.
//   * exitcode(): empty while the child runs; N after exit(N); -N after signal N. The child
//     is reaped (waitid(P_PIDFD)) by whichever of join/join_for/is_alive/exitcode first sees it
//     ended.
//   * Daemon children (daemon(true) before start) die when this process ends, however it ends
//     (return, exit, a signal, SIGKILL, exec), and may not start children of their own
//     (start() in a daemon throws Error(not_supported), as Python's AssertionError).
//   * No zombies. Every child is reaped by join, by the Process destructor, by the process-wide
//     supervisor thread (a child whose Process was destroyed while it ran), or at exit: when
//     this process calls exit() (or main returns), daemon children are SIGKILLed and every
//     remaining child — non-daemon ones still running, as Python does — is waited for and
//     reaped, in an atexit handler registered by the first start().
//
// Destroying a Process whose child still runs neither kills it nor blocks: the child keeps
// running (as in Python, where the object lives on in multiprocessing's child list) and is
// handed to the supervisor thread, which reaps it the moment it ends; at exit it is waited for
// (non-daemon) or killed (daemon) like any other child. Destroying a Process whose child has
// ended reaps it.
//
// Why fork + pidfd_open, not clone3(CLONE_PIDFD): the child runs arbitrary C++, so it needs
// glibc's fork() — the atfork handlers, the malloc and stdio lock resets, the TID cache and
// robust-list re-registration that a raw clone3 system call would skip. pidfd_open(pid) right
// after fork in the parent is race-free: only this process can reap its child, and this library
// reaps only through the pidfd, so the PID cannot be reused before the pidfd exists (a zombie
// still holds its PID, and pidfd_open works on a zombie). The one way to break this is outside
// the library: SIGCHLD set to SIG_IGN (or SA_NOCLDWAIT), or a waitpid(-1) elsewhere, lets the
// kernel or another reaper take the child; start() or join then throws Error naming that cause.
//
// Daemons: how "die with the parent" is made reliable
//   1. PR_SET_PDEATHSIG(SIGKILL), then a getppid() check (the parent may have died before the
//      prctl). The parent-death signal fires when the *thread* that forked the child exits, not
//      the process — so daemon children are forked by the supervisor, a library thread that
//      lives until the process ends; the calling thread waits for the fork (one thread
//      hand-off, lost in the fork's own cost: see bench-process). Thread exits in the program
//      can therefore never kill a daemon early.
//   2. A lifeline pipe, created once per process; only the parent keeps its write end (O_CLOEXEC;
//      every child this library forks closes it). The daemon arms its read end with O_ASYNC,
//      F_SETOWN(itself) and F_SETSIG(SIGKILL): when the parent process's last reference to the
//      write end goes — its exit or exec, however it happens — the kernel itself sends the
//      daemon SIGKILL. A poll() right after arming catches a parent that died before. This also
//      covers what PDEATHSIG does not: the kernel clears the parent-death signal when the daemon
//      changes its credentials (setuid) or execs a set-user-ID program.
//   Every other child inherits the write end, so every fork() closes it in the child (an
//   atfork handler, which also gives the child a fresh child registry and no supervisor).
//   Limit: a process made without glibc's fork (a raw clone, vfork without exec) keeps the
//   lifeline open until it ends; PDEATHSIG still fires then.
//
// Waiting: join/join_for sleep in poll() on the pidfd against one Deadline; the supervisor
// thread sleeps in poll() on an eventfd (fork requests, watch changes) and the watched pidfds; a
// daemon start() sleeps on a condition variable until the supervisor has forked. Nothing polls
// in a loop and no signal handler is installed.
// Memory ordering: a child's reaped status is guarded by a mutex (reaping is waitid under it);
// the process-wide registry and supervisor are published once with release/acquire.
//
// Threads: start() may be called from any thread. A Process object itself is not synchronised
// (like std::thread): use one object from one thread at a time. The child is single-threaded,
// as after any fork; in a daemon child, thread_local variables are those of the supervisor
// thread (fresh), not the caller's.
#pragma once

#include <multiproc/deadline.hpp>
#include <multiproc/error.hpp>

#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <sys/types.h>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace multiproc {

/// Online CPUs (sysconf(_SC_NPROCESSORS_ONLN)), at least 1 — what Python's cpu_count() says.
unsigned cpu_count() noexcept;

struct ProcessInfo {
  std::string name;
  pid_t pid;
};

/// This process: {"MainProcess", pid} in the program's first process; in a child started by
/// Process, the child's name ("Process-1", "Process-1:2", "ForkPoolWorker-3", or what name()
/// set) and pid.
ProcessInfo current_process();

/// The process that started this one through Process: its name and pid. Empty in the main
/// process (and in a process made by something other than Process).
std::optional<ProcessInfo> parent_process();

/// PIDs of this process's live children started through Process (pool workers included).
/// Reaps the ones that have ended first, as Python's active_children() does.
std::vector<pid_t> active_children();

namespace detail {

struct ChildState;  // process.cpp: the pid, pidfd, name, flags and reaped status of one child

struct ProcessTag {};  // selects Process's private constructor

/// A type-erased target: the child calls run() once.
class ProcessTarget {
 public:
  virtual ~ProcessTarget() = default;
  virtual int run() = 0;
};

template <class F, class... A>
class BoundTarget final : public ProcessTarget {
  static_assert(std::is_invocable_v<F, A...>,
                "a Process target must be callable with (decayed, moved) copies of the arguments given; "
                "pass std::ref(x) for a reference, as with std::thread");
  static_assert(std::is_void_v<std::invoke_result_t<F, A...>> || std::is_convertible_v<std::invoke_result_t<F, A...>, int>,
                "a Process target returns void or an int (the exit code)");

 public:
  template <class G, class... B>
  explicit BoundTarget(G&& f, B&&... args) : f_(std::forward<G>(f)), args_(std::forward<B>(args)...) {}

  int run() override {
    return std::apply(
        [this](auto&&... a) -> int {
          if constexpr (std::is_void_v<std::invoke_result_t<F, A...>>) {
            std::invoke(std::move(f_), std::move(a)...);
            return 0;
          } else {
            return static_cast<int>(std::invoke(std::move(f_), std::move(a)...));
          }
        },
        args_);
  }

 private:
  F f_;
  std::tuple<A...> args_;
};

/// Runs `on_exit` once, on the supervisor thread, when the process behind `pidfd` has ended
/// (the pidfd polls readable); it does not reap it. The supervisor watches a dup() of the fd, so
/// the caller may close its own. `on_exit` runs with the supervisor's lock held: it must be
/// short and must not block or call supervise/unsupervise. Returns an id for unsupervise.
/// Throws Error(errno) if the watch cannot be set up.
std::uint64_t supervise(int pidfd, std::function<void()> on_exit);

/// Removes a watch. After it returns, its on_exit is not running and will never run. Unknown
/// or already fired ids are ignored.
void unsupervise(std::uint64_t id) noexcept;

}  // namespace detail

class Process {
 public:
  /// A process that will run target(args...) (decayed copies). It returns int or void.
  /// Nothing runs until start().
  template <class F, class... A>
    requires(!std::is_same_v<std::remove_cvref_t<F>, Process> && !std::is_same_v<std::remove_cvref_t<F>, detail::ProcessTag>)
  explicit Process(F&& target, A&&... args)
      : Process(detail::ProcessTag{}, std::make_unique<detail::BoundTarget<std::decay_t<F>, std::decay_t<A>...>>(std::forward<F>(target),
                                                                                          std::forward<A>(args)...)) {
  }

  Process(Process&& other) noexcept;
  /// Move-assigns; what this object held is released as by the destructor.
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  /// Reaps an ended child; hands a running one to the supervisor (see the top of this file).
  ~Process();

  /// Sets the name (before start; Error otherwise). Returns *this for chaining.
  Process& name(std::string name);
  /// Sets the daemon flag (before start; Error otherwise). Returns *this for chaining.
  Process& daemon(bool daemonic);

  /// Forks the child. Throws Error(not_supported) in a daemon process, Error(invalid_argument)
  /// if already started, Error(errno) if fork/pidfd_open fail (no child is left behind then).
  void start();

  /// Blocks until the child has ended, and reaps it. Error(invalid_argument) before start()
  /// or when called in another process than the one that started it.
  void join();

  /// join() that gives up after `timeout`: true when the child ended (and is reaped), false at
  /// the deadline — never earlier. Waits in poll() on the pidfd.
  template <class Rep, class Period>
  bool join_for(const std::chrono::duration<Rep, Period>& timeout) {
    return join_until(Deadline::after(timeout));
  }
  /// join() that gives up at `deadline` (any clock; converted to the steady clock once, now).
  template <class Clock, class Duration>
  bool join_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    return join_until(Deadline::at(deadline));
  }
  bool join_until(const Deadline& deadline);

  /// True from start() until the child has ended (reaps it then). False before start().
  bool is_alive();

  /// Empty before start and while the child runs; N for exit(N); -N for signal N.
  std::optional<int> exitcode();

  /// Sends SIGTERM / SIGKILL (pidfd_send_signal). No-op once the child has ended.
  /// Error(invalid_argument) before start().
  void terminate();
  void kill();

  /// The child's PID (0 before start).
  pid_t pid() const noexcept;
  const std::string& name() const noexcept;
  bool daemon() const noexcept;
  /// The pidfd: readable (POLLIN) once the child has ended; usable with multiproc::wait().
  /// -1 before start. Owned by the Process (closed by its destructor).
  int sentinel() const noexcept;

 private:
  Process(detail::ProcessTag, std::unique_ptr<detail::ProcessTarget> target);
  detail::ChildState& state(const char* op) const;

  std::unique_ptr<detail::ProcessTarget> target_;
  std::shared_ptr<detail::ChildState> state_;
};

}  // namespace multiproc
