// Process: fork + pidfd, the process-wide child registry, the at-exit join, and the
// supervisor thread (daemon forks, reaping of detached children, exit notifications).
// The design and its guarantees are described at the top of process.hpp.
#include <multiproc/fd.hpp>
#include <multiproc/fork.hpp>
#include <multiproc/ids.hpp>
#include <multiproc/pidfd.hpp>
#include <multiproc/pipe.hpp>
#include <multiproc/process.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <mutex>
#include <pthread.h>
#include <thread>
#include <unistd.h>

namespace multiproc {
namespace detail {

struct ChildState {
  std::string name;
  std::vector<int> identity;  // Python's _identity: the name's numbers, parent's first
  bool daemon = false;

  // Set once by start(), read-only afterwards.
  bool started = false;
  pid_t pid = 0;
  pid_t owner = 0;  // the process that started it: the only one that may reap it
  int pidfd = -1;

  std::mutex m;               // guards the reaped status below; waitid runs under it
  std::optional<int> code;    // the exit status once reaped
  int reap_errno = 0;         // waitid failed (the child was reaped behind our back)

  ChildState() = default;
  ChildState(const ChildState&) = delete;
  ChildState& operator=(const ChildState&) = delete;
  ~ChildState() {
    close_fd(pidfd);
  }

  bool ended() {
    std::lock_guard g(m);
    return code.has_value() || reap_errno != 0;
  }
};

namespace {

// ---- this process's identity ---------------------------------------------------------------

struct Self {
  std::string name = "MainProcess";
  std::vector<int> identity;           // empty in the main process
  std::atomic<int> counter{0};         // children named so far
  bool daemon = false;                 // this process is a daemon child: may not start children
  bool has_parent = false;
  ProcessInfo parent{};
};
Self g_self;

std::string name_of(const std::vector<int>& identity, const char* prefix) {
  std::string s = prefix;
  char sep = '-';
  for (int i : identity) {
    s += sep;
    s += std::to_string(i);
    sep = ':';
  }
  return s;
}

// ---- the registry: every started, not yet forgotten child of this process ------------------

struct Registry {
  Registry* previous = nullptr;  // the parent's, left behind by fork (kept reachable, never used)
  std::mutex m;
  std::vector<std::shared_ptr<ChildState>> children;
  std::atomic<bool> exiting{false};  // the at-exit handler runs: no new children
};

// Leaked on purpose: the at-exit handler and the supervisor thread may use it while static
// destructors run. Replaced (the old one leaked) in a fork()ed child, which has no children.
std::atomic<Registry*> g_registry{nullptr};
Registry* g_registry_left = nullptr;  // the parent's registry in a fork()ed child
std::once_flag g_atexit_once;  // atexit handlers are inherited by fork: register once per image

Registry& registry() {
  // Acquire / acq_rel: whoever finds the registry sees it fully constructed.
  Registry* r = g_registry.load(std::memory_order_acquire);
  if (r) return *r;
  auto* fresh = new Registry;
  fresh->previous = g_registry_left;
  if (g_registry.compare_exchange_strong(r, fresh, std::memory_order_acq_rel)) return *fresh;
  delete fresh;
  return *r;
}

/// Reaps `s` if it has ended (block: waits for it). True once it is reaped (or unreapable).
bool reap(ChildState& s, bool block) {
  std::lock_guard g(s.m);
  if (s.code || s.reap_errno) return true;
  int code = 0;
  switch (pidfd_reap(s.pidfd, code, block)) {
    case ReapResult::reaped: s.code = code; return true;
    case ReapResult::running: return false;
    case ReapResult::error: s.reap_errno = errno ? errno : ECHILD; return true;
  }
  return false;
}

void forget(const std::shared_ptr<ChildState>& s) {
  Registry& r = registry();
  std::lock_guard g(r.m);
  std::erase(r.children, s);
}

/// Python's _cleanup(): reap the children that have ended and forget them.
void sweep(Registry& r) {
  std::lock_guard g(r.m);
  std::erase_if(r.children, [](const std::shared_ptr<ChildState>& s) { return reap(*s, false); });
}

/// At exit (and when a child's target returns): SIGKILL the daemon children, then wait for
/// and reap every child — Python's _exit_function.
void finish_children() noexcept {
  Registry* r = g_registry.load(std::memory_order_acquire);  // as registry()
  if (!r) return;
  r->exiting.store(true);
  std::vector<std::shared_ptr<ChildState>> kids;
  {
    std::lock_guard g(r->m);
    kids = r->children;
  }
  for (auto& s : kids)
    if (s->daemon && !s->ended()) (void)pidfd_send_signal(s->pidfd, SIGKILL);
  for (auto& s : kids) (void)reap(*s, true);
  std::lock_guard g(r->m);
  r->children.clear();
}

// ---- the supervisor ------------------------------------------------------------------------

struct SpawnRequest {
  ChildState* state;
  ProcessTarget* target;
  sigset_t mask;  // the requesting thread's: the child gets it back (the supervisor blocks all)
  pid_t parent;
  pid_t pid = 0;
  int err = 0;
  bool done = false;
};

/// One per process, created on first need, never destroyed (see Registry). Its thread blocks
/// every signal and sleeps in poll() on an eventfd (requests) and the watched pidfds.
class Supervisor {
 public:
  explicit Supervisor(Supervisor* previous) : previous_(previous), lifeline_(make_pipe()) {
    thread_with_signals_blocked(&Supervisor::loop, this).detach();
  }

  pid_t fork_daemon(ChildState& st, ProcessTarget& target) {
    SpawnRequest req{&st, &target, this_thread_sigmask(), this_pid()};
    std::unique_lock lk(m_);
    requests_.push_back(&req);
    kick();
    cv_.wait(lk, [&] { return req.done; });
    if (req.pid < 0) throw_errno(req.err, "Process::start: fork");
    return req.pid;
  }

  std::uint64_t watch(int pidfd, std::function<void()> fn) {
    const int fd = dup_cloexec(pidfd);
    if (fd < 0) throw_errno(errno, "Process: dup of a pidfd for the supervisor");
    std::lock_guard g(m_);
    const std::uint64_t id = ++next_id_;
    try {
      watches_.push_back({id, fd, std::move(fn)});
    } catch (...) {
      close_fd(fd);
      throw;
    }
    kick();
    return id;
  }

  void unwatch(std::uint64_t id) noexcept {
    std::lock_guard g(m_);
    auto it = std::find_if(watches_.begin(), watches_.end(), [id](const Watch& w) { return w.id == id; });
    if (it == watches_.end()) return;
    close_fd(it->fd);  // the loop rebuilds its poll set by id: a closed or reused number is harmless
    watches_.erase(it);
    kick();
  }

  /// In a fork()ed child (atfork handler, single-threaded): drop the parent's fds. A daemon
  /// child forked by this supervisor keeps the lifeline's read end (returned), others close it.
  int release_in_child(bool keep_lifeline) noexcept {
    wake_.close();
    lifeline_.write.reset();
    if (keep_lifeline) return lifeline_.read.release();
    lifeline_.read.reset();
    return -1;
  }

  /// The lifeline's read end, for the daemon child to arm (it keeps this descriptor open).
  int lifeline_read() const noexcept { return lifeline_.read.get(); }

 private:
  struct Watch {
    std::uint64_t id;
    int fd;
    std::function<void()> fn;
  };

  void kick() noexcept { wake_.kick(); }

  void loop();
  void spawn(SpawnRequest& req);

  [[maybe_unused]] Supervisor* previous_;  // the parent's, left behind by fork (kept reachable, never used)
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<SpawnRequest*> requests_;
  std::vector<Watch> watches_;
  std::uint64_t next_id_ = 0;
  WakeupFd wake_;     // requests and watch changes
  PipeEnds lifeline_;  // only this process holds the write end (see process.hpp)
};

std::atomic<Supervisor*> g_supervisor{nullptr};
Supervisor* g_supervisor_left = nullptr;  // the parent's supervisor in a fork()ed child
std::mutex g_supervisor_create;  // only serialises creation; replaced in a child with the rest

thread_local bool t_forking_daemon = false;  // set by the supervisor thread around its fork()

Supervisor& supervisor() {
  // Acquire / release: a supervisor is published once, fully constructed (creation is
  // serialised by g_supervisor_create).
  Supervisor* s = g_supervisor.load(std::memory_order_acquire);
  if (s) return *s;
  std::lock_guard g(g_supervisor_create);
  s = g_supervisor.load(std::memory_order_acquire);
  if (!s) {
    s = new Supervisor(g_supervisor_left);
    g_supervisor.store(s, std::memory_order_release);
  }
  return *s;
}

/// pthread_atfork child handler: the child of any fork() (ours or the program's) has no
/// children and no supervisor thread, and must not keep the parent's lifeline open.
void after_fork_child() noexcept {
  // The parent's objects may be locked by threads that do not exist here: leave them (kept
  // reachable through the `left` pointers, so leak checkers stay quiet) and start afresh.
  // Relaxed throughout: the child has one thread, the one running this handler.
  if (Registry* r = g_registry.load(std::memory_order_relaxed)) g_registry_left = r;
  g_registry.store(nullptr, std::memory_order_relaxed);
  Supervisor* s = g_supervisor.load(std::memory_order_relaxed);
  if (s) g_supervisor_left = s;
  g_supervisor.store(nullptr, std::memory_order_relaxed);
  new (&g_supervisor_create) std::mutex;  // the parent's may have been held by another thread
  // A daemon child keeps the lifeline's read end open: fork_process arms it next.
  if (s) (void)s->release_in_child(t_forking_daemon);
}

void register_atfork() {
  static std::once_flag once;
  std::call_once(once, [] { ::pthread_atfork(nullptr, nullptr, &after_fork_child); });
}

[[noreturn]] void child_main(ChildState& st, ProcessTarget& target) noexcept;

/// The daemon child (on the supervisor thread's copy): fork_process has restored the
/// requester's signal mask and armed both parent-death mechanisms (see process.hpp).
[[noreturn]] void daemon_child_main(SpawnRequest& req) noexcept {
  g_self.daemon = true;
  child_main(*req.state, *req.target);
}

void Supervisor::spawn(SpawnRequest& req) {
  // 1. Parent-death signal, armed from the supervisor thread (which lives as long as the
  //    process), with the check for a parent that died before the prctl.
  // 2. The lifeline: the kernel sends the daemon SIGKILL when this process's write end goes.
  //    after_fork_child keeps the read end open in this child (t_forking_daemon).
  ForkOptions opts;
  opts.sigmask = &req.mask;
  opts.die_with_parent = true;
  opts.lifeline = lifeline_read();
  t_forking_daemon = true;
  const pid_t pid = fork_process(opts);
  const int err = errno;
  t_forking_daemon = false;
  if (pid == 0) daemon_child_main(req);
  req.pid = pid;
  req.err = pid < 0 ? err : 0;
}

void Supervisor::loop() {
  std::vector<pollfd> fds;
  std::vector<std::uint64_t> ids;
  for (;;) {
    {
      std::unique_lock lk(m_);
      while (!requests_.empty()) {
        SpawnRequest* req = requests_.front();
        requests_.pop_front();
        // Forking with m_ held is fine: the child never touches this Supervisor (the atfork
        // handler replaces it), and callers only wait for `done`.
        spawn(*req);
        req->done = true;
      }
      cv_.notify_all();
      fds.assign(1, pollfd{wake_.fd(), POLLIN, 0});
      ids.assign(1, 0);
      for (const Watch& w : watches_) {
        fds.push_back({w.fd, POLLIN, 0});
        ids.push_back(w.id);
      }
    }
    if (poll_until(fds, Deadline::never()) < 0) continue;  // ENOMEM: try again
    if (fds[0].revents) (void)wake_.drain();
    std::lock_guard g(m_);
    for (std::size_t i = 1; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      auto it = std::find_if(watches_.begin(), watches_.end(), [&](const Watch& w) { return w.id == ids[i]; });
      if (it == watches_.end()) continue;  // removed since the poll set was built
      Watch w = std::move(*it);
      watches_.erase(it);
      close_fd(w.fd);
      try {
        w.fn();
      } catch (...) {  // a callback must not throw; never let it end this thread
      }
    }
  }
}

// ---- the child side --------------------------------------------------------------------------

[[noreturn]] void child_main(ChildState& st, ProcessTarget& target) noexcept {
  // Who we are now. (The atfork handler has already dropped the parent's registry.)
  ProcessInfo parent{g_self.name, parent_pid()};
  g_self.has_parent = true;
  g_self.parent = std::move(parent);
  g_self.name = st.name;
  g_self.identity = st.identity;
  g_self.counter.store(0, std::memory_order_relaxed);  // single-threaded here (fresh child)
  int code = 0;
  try {
    code = target.run();
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "Process %s: %s\n", g_self.name.c_str(), e.what());
    code = 1;
  } catch (...) {
    std::fflush(stdout);
    std::fprintf(stderr, "Process %s: unknown exception\n", g_self.name.c_str());
    code = 1;
  }
  multiproc::detail::flush_connections();  // coalesced Connection sends (pipe.hpp), as exit() would
  flush_stdio();
  finish_children();  // this child's own children, as Python's child does at its end
  exit_child(code);
}

}  // namespace

std::uint64_t supervise(int pidfd, std::function<void()> on_exit) {
  register_atfork();
  return supervisor().watch(pidfd, std::move(on_exit));
}

void unsupervise(std::uint64_t id) noexcept {
  if (Supervisor* s = g_supervisor.load(std::memory_order_acquire)) s->unwatch(id);  // as supervisor()
}

}  // namespace detail

// ---- free functions ------------------------------------------------------------------------------

unsigned cpu_count() noexcept {
  const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<unsigned>(n) : 1u;
}

ProcessInfo current_process() { return {detail::g_self.name, this_pid()}; }

std::optional<ProcessInfo> parent_process() {
  if (!detail::g_self.has_parent) return std::nullopt;
  return detail::g_self.parent;
}

std::vector<pid_t> active_children() {
  detail::Registry& r = detail::registry();
  detail::sweep(r);
  std::lock_guard g(r.m);
  std::vector<pid_t> out;
  out.reserve(r.children.size());
  for (auto& s : r.children) out.push_back(s->pid);
  return out;
}

// ---- Process ----------------------------------------------------------------------------------

Process::Process(detail::ProcessTag, std::unique_ptr<detail::ProcessTarget> target)
    : target_(std::move(target)), state_(std::make_shared<detail::ChildState>()) {
  state_->identity = detail::g_self.identity;
  // Relaxed: a counter for names only; each construction gets a distinct number.
  state_->identity.push_back(detail::g_self.counter.fetch_add(1, std::memory_order_relaxed) + 1);
  state_->name = detail::name_of(state_->identity, "Process");
}

Process::Process(Process&& other) noexcept = default;

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    Process old(std::move(*this));  // released as by the destructor
    target_ = std::move(other.target_);
    state_ = std::move(other.state_);
  }
  return *this;
}

Process::~Process() {
  if (!state_ || !state_->started || state_->owner != this_pid()) return;
  if (detail::reap(*state_, false)) {
    detail::forget(state_);
    return;
  }
  // Still running: the supervisor reaps it when it ends (and forgets it, closing the pidfd).
  try {
    std::weak_ptr<detail::ChildState> weak = state_;
    detail::supervise(state_->pidfd, [weak] {
      if (auto s = weak.lock()) {
        detail::reap(*s, false);
        detail::forget(s);
      }
    });
  } catch (...) {
    // No supervisor (out of threads/fds): the registry still holds it; the next start(),
    // active_children() or the at-exit handler reaps it.
  }
}

detail::ChildState& Process::state(const char* op) const {
  if (!state_) throw Error(std::make_error_code(std::errc::invalid_argument), std::string(op) + ": moved-from Process");
  return *state_;
}

Process& Process::name(std::string n) {
  detail::ChildState& s = state("Process::name");
  if (s.started) throw Error(std::make_error_code(std::errc::invalid_argument), "Process::name: already started");
  s.name = std::move(n);
  return *this;
}

Process& Process::daemon(bool d) {
  detail::ChildState& s = state("Process::daemon");
  if (s.started) throw Error(std::make_error_code(std::errc::invalid_argument), "Process::daemon: already started");
  s.daemon = d;
  return *this;
}

void Process::start() {
  detail::ChildState& s = state("Process::start");
  if (s.started)
    throw Error(std::make_error_code(std::errc::invalid_argument), "Process::start: " + s.name + " was already started");
  if (detail::g_self.daemon)
    throw Error(errc::not_supported, "Process::start: daemonic processes are not allowed to have children");
  detail::Registry& r = detail::registry();
  if (r.exiting.load())
    throw Error(errc::not_supported, "Process::start: the process is exiting (its at-exit handler runs)");
  detail::register_atfork();
  std::call_once(detail::g_atexit_once, [] { std::atexit(&detail::finish_children); });
  detail::sweep(r);
  flush_stdio();  // or the child would print the parent's buffered output again
  pid_t pid;
  if (s.daemon) {
    pid = detail::supervisor().fork_daemon(s, *target_);
  } else {
    pid = fork_process();
    if (pid < 0) detail::throw_errno(errno, "Process::start: fork");
    if (pid == 0) detail::child_main(s, *target_);
  }
  const int fd = pidfd_open(pid);
  if (fd < 0) {
    const int e = errno;
    if (e == ESRCH)  // already gone *and reaped*: only an ignored SIGCHLD does that
      throw Error(std::error_code(e, std::system_category()),
                  "Process::start: the child was reaped before pidfd_open (SIGCHLD is ignored or SA_NOCLDWAIT "
                  "is set): Process needs to reap its children itself");
    kill_and_reap(pid);  // alive (or a zombie: the PID is still ours), but we have no handle
    detail::throw_errno(e, "Process::start: pidfd_open");
  }
  s.pid = pid;
  s.pidfd = fd;
  s.owner = this_pid();
  s.started = true;
  std::lock_guard g(r.m);
  r.children.push_back(state_);
}

namespace {
detail::ChildState& joinable(const std::shared_ptr<detail::ChildState>& st, const char* op) {
  if (!st) throw Error(std::make_error_code(std::errc::invalid_argument), std::string(op) + ": moved-from Process");
  if (!st->started) throw Error(std::make_error_code(std::errc::invalid_argument), std::string(op) + ": " + st->name + " was not started");
  if (st->owner != this_pid())
    throw Error(std::make_error_code(std::errc::invalid_argument),
                std::string(op) + ": " + st->name + " is not a child of this process");
  return *st;
}

void check_reaped(detail::ChildState& s, const char* op) {
  std::lock_guard g(s.m);
  if (s.reap_errno)
    throw Error(std::error_code(s.reap_errno, std::system_category()),
                std::string(op) + ": " + s.name + " (pid " + std::to_string(s.pid) +
                    ") was reaped outside multiproc (SIGCHLD ignored, SA_NOCLDWAIT or a waitpid(-1)): its exit status is lost");
}
}  // namespace

void Process::join() { (void)join_until(Deadline::never()); }

bool Process::join_until(const Deadline& deadline) {
  detail::ChildState& s = joinable(state_, "Process::join");
  if (!s.ended()) {
    if (!pidfd_wait(s.pidfd, deadline)) return false;
    detail::reap(s, true);  // it has ended: waitid returns at once
  }
  check_reaped(s, "Process::join");
  detail::forget(state_);
  return true;
}

bool Process::is_alive() {
  if (!state_ || !state_->started) return false;
  detail::ChildState& s = joinable(state_, "Process::is_alive");
  return !detail::reap(s, false);
}

std::optional<int> Process::exitcode() {
  if (!state_ || !state_->started) return std::nullopt;
  detail::ChildState& s = joinable(state_, "Process::exitcode");
  if (!detail::reap(s, false)) return std::nullopt;
  check_reaped(s, "Process::exitcode");
  std::lock_guard g(s.m);
  return s.code;
}

namespace {
void send(const std::shared_ptr<detail::ChildState>& st, int sig, const char* op) {
  detail::ChildState& s = joinable(st, op);
  if (s.ended()) return;
  if (pidfd_send_signal(s.pidfd, sig) != 0 && errno != ESRCH)
    detail::throw_errno(errno, std::string(op) + ": pidfd_send_signal to " + s.name);
}
}  // namespace

void Process::terminate() { send(state_, SIGTERM, "Process::terminate"); }
void Process::kill() { send(state_, SIGKILL, "Process::kill"); }

pid_t Process::pid() const noexcept { return state_ ? state_->pid : 0; }

const std::string& Process::name() const noexcept {
  static const std::string none;
  return state_ ? state_->name : none;
}

bool Process::daemon() const noexcept { return state_ && state_->daemon; }

int Process::sentinel() const noexcept { return state_ && state_->started ? state_->pidfd : -1; }

}  // namespace multiproc
