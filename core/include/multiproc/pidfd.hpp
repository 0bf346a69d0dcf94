// multiproc/pidfd.hpp — process handles that cannot be confused by PID reuse.
//
// A pidfd (pidfd_open(2), Linux 5.3+) refers to one process for as long as the fd is open:
// signals sent through it never reach a later process that reused the PID, and it becomes
// readable (POLLIN) when the process ends. glibc 2.36's <sys/pidfd.h> lacks `extern "C"`, so
// these wrappers make the system calls directly; they are the only place the library does.
#pragma once

#include <multiproc/deadline.hpp>

#include <sys/types.h>

namespace multiproc {

/// A new pidfd for `pid` (O_CLOEXEC), or -1 with errno (ESRCH: no such process; ENOSYS: kernel
/// too old). Never throws.
int pidfd_open(pid_t pid) noexcept;

/// Sends `sig` through the pidfd; 0 or -1 with errno (ESRCH once the process has ended).
int pidfd_send_signal(int pidfd, int sig) noexcept;

/// Waits until the process behind `pidfd` ends or `deadline` passes; true when it ended.
/// Restarts on EINTR against the same deadline. Does not reap it.
bool pidfd_wait(int pidfd, const Deadline& deadline = Deadline::never()) noexcept;

/// What pidfd_reap found.
enum class ReapResult {
  reaped,   // the child had ended; it is reaped now and `code` holds its status
  running,  // the child is still running (only when block is false); nothing changed
  error,    // waitid failed (errno): ECHILD when it is not our child or someone else reaped it
};

/// Reaps the ended child behind `pidfd` (waitid(P_PIDFD, WEXITED), Linux 5.4+) and stores its
/// status in `code`: N for exit(N), -N when signal N ended it. block=false adds WNOHANG; with
/// block=true it waits (restarting on EINTR). Only the child's parent process can reap it.
ReapResult pidfd_reap(int pidfd, int& code, bool block = false) noexcept;

/// Snapshot: does a process with this PID exist (a zombie counts as existing)? For liveness
/// checks of a peer recorded by PID in shared memory, where a false "alive" only delays
/// recovery. Prefer a pidfd where one can be held.
bool process_exists(pid_t pid) noexcept;

/// Snapshot: has the process with this PID ended (gone, or a zombie awaiting its reaper)?
/// Reads /proc/PID/stat for the zombie state, so a killed-but-unreaped peer counts as dead.
bool process_dead(pid_t pid) noexcept;

}  // namespace multiproc
