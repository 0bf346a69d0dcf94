// Pool, Future and Executor: the parent-side PoolCore (dispatch, the handler thread, worker
// deaths and replacement, close/join/terminate) and the worker loop. The design is described
// at the top of pool.hpp.
#include <multiproc/arena.hpp>
#include <multiproc/fork.hpp>
#include <multiproc/pool.hpp>
#include <multiproc/queue.hpp>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <cxxabi.h>
#include <typeinfo>
#include <unordered_map>

namespace multiproc {

// ---- task errors ---------------------------------------------------------------------------------

namespace {
class TaskCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "multiproc.task"; }
  std::string message(int code) const override {
    switch (static_cast<task_errc>(code)) {
      case task_errc::exception: return "the task threw an exception";
      case task_errc::unknown_exception: return "the task threw something that is not a std::exception";
    }
    return "unknown task error " + std::to_string(code);
  }
};
}  // namespace

const std::error_category& task_category() noexcept {
  static const TaskCategory category;
  return category;
}

std::error_code make_error_code(task_errc e) noexcept { return {static_cast<int>(e), task_category()}; }

TaskError::TaskError(std::error_code code, const std::string& type, const std::string& message)
    : Error(code, type.empty() ? message : type + ": " + message), type_(type) {}

namespace detail {
namespace {

constexpr unsigned kDepth = 2;                       // tasks given to one worker at a time
constexpr std::size_t kChunkBytes = 4u << 20;        // the auto chunk size stays below this
constexpr std::size_t kMaxWorkers = 1u << 12;

/// A worker's task queue item: the task id and its block's offset in the arena.
struct TaskRef {
  std::uint64_t task;
  std::uint64_t block;
};

/// The result queue item. kResult from a worker; kWake from the parent (posted jobs, deaths).
struct PoolMsg {
  enum Kind : std::uint32_t { kResult = 1, kWake = 2 };
  std::uint64_t task;
  std::uint32_t slot;
  std::uint32_t kind;
};

/// One per worker slot, in the arena: what a worker whose initializer threw leaves behind.
struct WorkerRecord {
  std::atomic<std::uint32_t> init_failed;
  std::uint32_t len;
  char text[kErrorText];
};

/// What a worker process needs: plain pointers into the arena, valid in the fork.
struct WorkerBoot {
  std::byte* base;
  Queue<TaskRef>* tasks;
  Queue<PoolMsg>* results;
  WorkerRecord* record;
  std::uint32_t slot;
  unsigned max_tasks;
  void (*initializer)();
};

std::string demangle(const char* name) {
  int status = 0;
  char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string out = status == 0 && d ? d : name;
  std::free(d);
  return out;
}

void copy_text(char* dst, std::size_t cap, std::uint32_t& len, std::string_view s) noexcept {
  const std::size_t n = std::min(s.size(), cap);
  std::memcpy(dst, s.data(), n);
  len = static_cast<std::uint32_t>(n);
}

/// In the worker: describes the exception `e` in the task block.
void report(ErrorReport& r, std::exception_ptr e) noexcept {
  r.kind = ErrorReport::unknown;
  r.value = 0;
  r.type_len = r.text_len = 0;
  try {
    std::rethrow_exception(e);
  } catch (const std::system_error& x) {
    const std::error_category& c = x.code().category();
    r.kind = &c == &std::generic_category() ? ErrorReport::generic
             : &c == &std::system_category() ? ErrorReport::system
             : &c == &error_category()       ? ErrorReport::multiproc
                                             : ErrorReport::exception;
    r.value = x.code().value();
    std::string_view what = x.what();
    const std::string suffix = ": " + x.code().message();  // system_error appends it; so will we
    if (r.kind != ErrorReport::exception && what.size() >= suffix.size() && what.ends_with(suffix))
      what.remove_suffix(suffix.size());
    copy_text(r.type, kTypeText, r.type_len, demangle(typeid(x).name()));
    copy_text(r.text, kErrorText, r.text_len, what);
  } catch (const std::exception& x) {
    r.kind = ErrorReport::exception;
    try {
      copy_text(r.type, kTypeText, r.type_len, demangle(typeid(x).name()));
    } catch (...) {
    }
    copy_text(r.text, kErrorText, r.text_len, x.what());
  } catch (...) {
    r.kind = ErrorReport::unknown;
  }
}

/// In the parent: the TaskError a report describes.
std::exception_ptr task_error(const ErrorReport& r) {
  std::error_code code;
  switch (r.kind) {
    case ErrorReport::generic: code = {r.value, std::generic_category()}; break;
    case ErrorReport::system: code = {r.value, std::system_category()}; break;
    case ErrorReport::multiproc: code = {r.value, error_category()}; break;
    case ErrorReport::unknown: code = make_error_code(task_errc::unknown_exception); break;
    default: code = make_error_code(task_errc::exception); break;
  }
  const auto tl = std::min<std::size_t>(r.type_len, kTypeText), xl = std::min<std::size_t>(r.text_len, kErrorText);
  return std::make_exception_ptr(TaskError(code, std::string(r.type, tl),
                                           r.kind == ErrorReport::unknown ? "unknown exception" : std::string(r.text, xl)));
}

/// The worker process: run tasks from its own queue until it is closed (or max_tasks ran).
int worker_main(WorkerBoot b) {
  if (b.initializer) {
    std::string why;
    try {
      b.initializer();
    } catch (const std::exception& e) {
      why = demangle(typeid(e).name()) + ": " + e.what();
    } catch (...) {
      why = "unknown exception";
    }
    if (!why.empty()) {
      copy_text(b.record->text, kErrorText, b.record->len, why);
      b.record->init_failed.store(1, std::memory_order_release);  // read after our death
      return 3;
    }
  }
  unsigned ran = 0;
  for (;;) {
    TaskRef r;
    try {
      r = b.tasks->get();
    } catch (const Closed&) {
      return 0;  // the pool stops
    }
    auto* h = std::launder(reinterpret_cast<TaskHeader*>(b.base + r.block));
    std::uint64_t expect = TaskHeader::pack(TaskHeader::kAssigned, b.slot, r.task);
    // Acquire: the parent wrote the block before storing assigned (release). Failure: a ref
    // to a stolen task, or to a block freed and reused since; skip it.
    if (!h->state.compare_exchange_strong(expect, TaskHeader::pack(TaskHeader::kRunning, b.slot, r.task),
                                          std::memory_order_acq_rel, std::memory_order_relaxed))
      continue;
    TaskHeader::Phase phase = TaskHeader::kDone;
    try {
      h->run(*h);
    } catch (...) {
      report(h->error, std::current_exception());
      phase = TaskHeader::kFailed;
    }
    // Release: the results (or the report) before the phase the parent acquires.
    h->state.store(TaskHeader::pack(phase, b.slot, r.task), std::memory_order_release);
    b.results->put(PoolMsg{r.task, b.slot, PoolMsg::kResult});
    if (b.max_tasks && ++ran >= b.max_tasks) return 0;  // replaced by a fresh worker
  }
}

std::string describe_exit(int code) {
  if (code < 0) {
    const char* name = ::sigabbrev_np(-code);
    return "killed by signal " + std::to_string(-code) + (name ? std::string(" (SIG") + name + ")" : std::string());
  }
  return "exited with code " + std::to_string(code);
}

}  // namespace

// ---- PoolCore ------------------------------------------------------------------------------------

class PoolCore : public std::enable_shared_from_this<PoolCore> {
 public:
  PoolCore(unsigned n, const PoolOptions& o)
      : arena_(Arena::create(arena_bytes(n), "multiproc-pool")), opts_(o), n_(n) {}

  void start(const char* who);
  ~PoolCore();

  void submit(std::vector<TaskSpec>&& specs, const char* op);
  bool post(std::function<void()>&& job);
  void close();
  void join(const char* op);
  void terminate();
  void shutdown_when_done();

  std::thread::id handler_id() const noexcept { return handler_id_; }
  unsigned workers() const noexcept { return n_; }

 private:
  struct Worker {
    std::optional<Process> proc;
    Queue<TaskRef>* queue = nullptr;
    WorkerRecord* record = nullptr;
    std::uint64_t watch = 0;
    std::vector<std::uint64_t> assigned;  // given to this incarnation, not yet handed back
    unsigned given = 0;                   // assigned minus stolen (max_tasks_per_child)
    bool alive = false;
    std::atomic<bool> died{false};        // set by the supervisor thread
  };
  struct Task {
    TaskSpec spec;
    std::uint64_t block = 0;  // arena offset of its block; 0 until first assigned
    int worker = -1;
  };
  struct Delivery {
    std::shared_ptr<Completion> done;
    std::size_t index;
    std::uint64_t block;       // 0: none
    std::exception_ptr error;  // set: fail with it (broken_pool, closed, out_of_memory)
  };

  static std::size_t arena_bytes(unsigned n) {
    return std::max<std::size_t>(64u << 20, std::size_t{n} * kDepth * 2 * kChunkBytes + (16u << 20));
  }

  void spawn_locked(std::uint32_t slot);
  void note_death(std::uint32_t slot) noexcept;
  void wake() noexcept;
  void handler_main(std::shared_ptr<PoolCore> self);
  void on_result(const PoolMsg& m);
  void on_deaths();
  void dispatch_locked(std::vector<Delivery>& out);
  void steal_locked();
  void fail_pending_locked(const std::exception_ptr& e, std::vector<Delivery>& out);
  Delivery take_locked(std::uint64_t id, std::exception_ptr error);
  void deliver(std::vector<Delivery>& ds);
  void deliver_here(std::vector<Delivery>& ds);
  void stop_workers_locked(bool kill);
  void maybe_stop_when_done_locked();
  void join_handler();
  TaskHeader& header(std::uint64_t block) { return *arena_.at<TaskHeader>(block); }

  Arena arena_;
  PoolOptions opts_;
  unsigned n_;
  Queue<PoolMsg>* results_ = nullptr;

  std::mutex m_;
  std::condition_variable cv_;  // undelivered_ reached 0
  std::vector<std::unique_ptr<Worker>> workers_;  // n_ slots, fixed once started
  std::unordered_map<std::uint64_t, Task> tasks_;  // submitted and not yet delivered
  std::deque<std::uint64_t> pending_;              // not given to a worker, in order
  std::uint64_t next_task_ = 0;
  std::size_t undelivered_ = 0;  // submitted minus delivered (callbacks included)
  std::size_t blocks_ = 0;       // task blocks allocated in the arena
  bool closed_ = false, terminated_ = false, stopped_ = false, stop_when_done_ = false;
  bool handler_running_ = false;
  std::string broken_;  // why the pool is broken (initializer threw, no worker can start)
  std::deque<std::function<void()>> posted_;

  std::atomic<bool> deaths_{false};       // some worker's `died` is set
  std::atomic<bool> wake_pending_{false};  // a kWake is in the result queue

  std::mutex handler_join_m_;
  std::thread handler_;
  std::thread::id handler_id_;
};

void PoolCore::start(const char* who) {
  results_ = &arena_.make_anonymous<Queue<PoolMsg>>(std::size_t{n_} * kDepth * 4 + 4 * n_ + 16);
  auto* records = static_cast<WorkerRecord*>(arena_.allocate(sizeof(WorkerRecord) * n_, alignof(WorkerRecord)));
  for (unsigned i = 0; i < n_; ++i) {
    workers_.push_back(std::make_unique<Worker>());
    workers_.back()->record = ::new (records + i) WorkerRecord{};
  }
  // The handler thread blocks every signal (as the supervisor does): signals belong to the
  // program's threads, and callbacks should not be interrupted by its handlers.
  handler_ = thread_with_signals_blocked(&PoolCore::handler_main, this, shared_from_this());
  handler_id_ = handler_.get_id();
  std::unique_lock lk(m_);
  handler_running_ = true;
  try {
    for (std::uint32_t i = 0; i < n_; ++i) spawn_locked(i);
  } catch (const std::exception& e) {
    stop_workers_locked(true);
    stopped_ = closed_ = terminated_ = true;
    lk.unlock();
    results_->close();
    join_handler();
    throw Error(errc::not_supported, std::string(who) + ": cannot start the worker processes: " + e.what());
  }
}

PoolCore::~PoolCore() {
  {
    std::lock_guard g(m_);
    if (!stopped_) {
      stop_workers_locked(true);
      stopped_ = true;
    }
  }
  // The handler holds a reference until it ends: by now it has ended, or this destructor runs
  // on it (the last reference was its own).
  if (handler_.joinable()) {
    if (handler_.get_id() == std::this_thread::get_id())
      handler_.detach();
    else
      handler_.join();
  }
}

void PoolCore::spawn_locked(std::uint32_t slot) {
  Worker& w = *workers_[slot];
  if (w.queue) arena_.destroy(*w.queue);  // the previous incarnation's; nobody uses it now
  w.queue = nullptr;
  w.queue = &arena_.make_anonymous<Queue<TaskRef>>(2 * kDepth);
  w.record->init_failed.store(0, std::memory_order_relaxed);  // no worker yet: fork publishes it
  w.record->len = 0;
  w.given = 0;
  w.died.store(false);
  const WorkerBoot boot{static_cast<std::byte*>(arena_.base()), w.queue, results_, w.record, slot,
                        opts_.max_tasks_per_child, opts_.initializer};
  Process p(&worker_main, boot);
  p.name("ForkPoolWorker" + p.name().substr(std::string_view("Process").size()));
  p.daemon(true);
  p.start();
  w.proc.emplace(std::move(p));
  w.alive = true;
  try {
    w.watch = supervise(w.proc->sentinel(), [this, slot] { note_death(slot); });
  } catch (...) {
    w.proc->kill();
    w.proc->join();
    w.proc.reset();
    w.alive = false;
    throw;
  }
}

void PoolCore::note_death(std::uint32_t slot) noexcept {
  // On the supervisor thread, under its lock: flags and a non-blocking put only.
  workers_[slot]->died.store(true);
  deaths_.store(true);
  wake();
}

void PoolCore::wake() noexcept {
  if (wake_pending_.exchange(true)) return;
  bool put = false;
  try {
    put = results_->try_put(PoolMsg{0, 0, PoolMsg::kWake});
  } catch (...) {  // closed: the handler is draining and stops anyway
  }
  // Full: the handler has messages to take and checks every flag after each one; let the
  // next wake() try again rather than trust a kWake that never went in.
  if (!put) wake_pending_.store(false);
}

bool PoolCore::post(std::function<void()>&& job) {
  {
    std::lock_guard g(m_);
    if (!handler_running_) return false;
    posted_.push_back(std::move(job));
  }
  wake();
  return true;
}

void PoolCore::handler_main(std::shared_ptr<PoolCore> self) {
  auto run_posted = [this] {
    for (;;) {
      std::function<void()> job;
      {
        std::lock_guard g(m_);
        if (posted_.empty()) return;
        job = std::move(posted_.front());
        posted_.pop_front();
      }
      try {
        job();
      } catch (...) {
        report_callback_exception(std::current_exception());
      }
    }
  };
  for (;;) {
    PoolMsg m;
    try {
      m = results_->get();
    } catch (const Closed&) {
      break;
    }
    if (m.kind == PoolMsg::kResult) {
      on_result(m);
    } else {
      wake_pending_.store(false);
    }
    if (deaths_.exchange(false)) on_deaths();
    run_posted();
    std::lock_guard g(m_);
    maybe_stop_when_done_locked();
  }
  run_posted();
  {
    std::lock_guard g(m_);
    handler_running_ = false;
  }
  run_posted();  // anything posted before the flag fell
  self.reset();  // may destroy the core, here (see ~PoolCore)
}

void PoolCore::maybe_stop_when_done_locked() {
  if (stop_when_done_ && undelivered_ == 0 && !stopped_) {
    stop_workers_locked(false);
    stopped_ = true;
    results_->close();  // the handler drains and ends
  }
}

PoolCore::Delivery PoolCore::take_locked(std::uint64_t id, std::exception_ptr error) {
  auto it = tasks_.find(id);
  Delivery d{std::move(it->second.spec.done), it->second.spec.index, it->second.block, std::move(error)};
  tasks_.erase(it);
  return d;
}

void PoolCore::on_result(const PoolMsg& m) {
  std::vector<Delivery> ds;
  {
    std::lock_guard g(m_);
    auto it = tasks_.find(m.task);
    if (it == tasks_.end() || it->second.worker < 0) return;  // already delivered (its worker died)
    Worker& w = *workers_[static_cast<std::size_t>(it->second.worker)];
    std::erase(w.assigned, m.task);
    ds.push_back(take_locked(m.task, nullptr));
    dispatch_locked(ds);
  }
  deliver(ds);
}

void PoolCore::on_deaths() {
  std::vector<Delivery> ds;
  {
    std::lock_guard g(m_);
    for (std::uint32_t slot = 0; slot < n_; ++slot) {
      Worker& w = *workers_[slot];
      if (!w.died.exchange(false) || !w.alive) continue;
      w.alive = false;
      if (w.watch) unsupervise(w.watch);  // fired already; nothing to remove
      w.watch = 0;
      int code = 0;
      std::string who = w.proc->name() + " (pid " + std::to_string(w.proc->pid()) + ")";
      try {
        w.proc->join();  // it has ended: reaps at once
        code = w.proc->exitcode().value_or(0);
      } catch (const std::exception&) {
        code = 0;
      }
      w.proc.reset();
      const std::string how = describe_exit(code);
      // Its tasks, newest first, so that re-queued ones keep their order at the front.
      for (auto id = w.assigned.rbegin(); id != w.assigned.rend(); ++id) {
        Task& t = tasks_.at(*id);
        // Acquire: pairs with the dead worker's release of done/failed (its results).
        const std::uint64_t s = header(t.block).state.load(std::memory_order_acquire);
        const auto phase = TaskHeader::phase_of(s);
        if (phase == TaskHeader::kDone || phase == TaskHeader::kFailed) {
          ds.push_back(take_locked(*id, nullptr));
        } else if (phase == TaskHeader::kRunning && TaskHeader::slot_of(s) == slot) {
          ds.push_back(take_locked(
              *id, std::make_exception_ptr(Error(errc::broken_pool, "Pool: worker " + who + " died running this task: " + how))));
        } else {  // assigned, never started: another worker will run it
          t.worker = -1;
          pending_.push_front(*id);
        }
      }
      w.assigned.clear();
      if (w.record->init_failed.load(std::memory_order_acquire) && broken_.empty())  // its text
        broken_ = "Pool: the initializer threw in worker " + who + ": " +
                  std::string(w.record->text, std::min<std::size_t>(w.record->len, kErrorText));
      if (stopped_ || !broken_.empty()) continue;
      try {
        spawn_locked(slot);
      } catch (const std::exception& e) {
        const bool any = std::any_of(workers_.begin(), workers_.end(), [](const auto& x) { return x->alive; });
        if (!any) broken_ = std::string("Pool: no worker process can be started: ") + e.what();
      }
    }
    if (!broken_.empty()) fail_pending_locked(std::make_exception_ptr(Error(errc::broken_pool, broken_)), ds);
    dispatch_locked(ds);
  }
  deliver(ds);
}

void PoolCore::fail_pending_locked(const std::exception_ptr& e, std::vector<Delivery>& out) {
  for (std::uint64_t id : pending_) out.push_back(take_locked(id, e));
  pending_.clear();
}

void PoolCore::dispatch_locked(std::vector<Delivery>& out) {
  while (!pending_.empty()) {
    Worker* best = nullptr;
    std::uint32_t slot = 0;
    for (std::uint32_t i = 0; i < n_; ++i) {
      Worker& w = *workers_[i];
      if (!w.alive || w.assigned.size() >= kDepth) continue;
      if (opts_.max_tasks_per_child && w.given >= opts_.max_tasks_per_child) continue;  // retiring
      if (!best || w.assigned.size() < best->assigned.size()) best = &w, slot = i;
    }
    if (!best) break;
    const std::uint64_t id = pending_.front();
    Task& t = tasks_.at(id);
    if (t.block == 0) {
      void* p = nullptr;
      try {
        p = arena_.allocate(t.spec.bytes, alignof(TaskHeader));
      } catch (const Error& e) {
        if (blocks_ > 0) break;  // memory comes back as tasks complete
        pending_.pop_front();
        out.push_back(take_locked(id, std::make_exception_ptr(Error(errc::out_of_memory,
            "Pool: a task of " + std::to_string(t.spec.bytes) + " bytes does not fit the pool's arena of " +
            std::to_string(arena_.size()) + " bytes"))));
        continue;
      }
      ++blocks_;
      auto* h = ::new (p) TaskHeader{};
      h->run = t.spec.run;
      h->count = t.spec.count;
      h->fn_offset = t.spec.fn_offset;
      h->in_offset = t.spec.in_offset;
      h->out_offset = t.spec.out_offset;
      std::memcpy(h->bytes(t.spec.fn_offset), t.spec.image.data(), t.spec.image.size());
      std::vector<std::byte>().swap(t.spec.image);
      t.block = arena_.offset_of(p);
    }
    // Release: the block's contents before the state the worker acquires.
    header(t.block).state.store(TaskHeader::pack(TaskHeader::kAssigned, slot, id), std::memory_order_release);
    if (!best->queue->try_put(TaskRef{id, t.block})) break;  // cannot happen: capacity 2 * kDepth
    best->assigned.push_back(id);
    ++best->given;
    t.worker = static_cast<int>(slot);
    pending_.pop_front();
  }
  if (pending_.empty()) steal_locked();
}

void PoolCore::steal_locked() {
  for (std::uint32_t thief = 0; thief < n_; ++thief) {
    Worker& t = *workers_[thief];
    if (!t.alive || !t.assigned.empty()) continue;
    if (opts_.max_tasks_per_child && t.given >= opts_.max_tasks_per_child) continue;
    for (std::uint32_t victim = 0; victim < n_; ++victim) {
      Worker& v = *workers_[victim];
      if (victim == thief || !v.alive || v.assigned.size() < 2) continue;
      const std::uint64_t id = v.assigned.back();  // queued behind the one it runs
      Task& task = tasks_.at(id);
      std::uint64_t expect = TaskHeader::pack(TaskHeader::kAssigned, victim, id);
      // acq_rel: like the worker's claim; exactly one of us and the victim wins.
      if (!header(task.block).state.compare_exchange_strong(expect, TaskHeader::pack(TaskHeader::kAssigned, thief, id),
                                                            std::memory_order_acq_rel, std::memory_order_relaxed))
        continue;
      v.assigned.pop_back();
      --v.given;
      if (!t.queue->try_put(TaskRef{id, task.block})) {  // cannot happen; give it back
        header(task.block).state.store(TaskHeader::pack(TaskHeader::kAssigned, victim, id),
                                       std::memory_order_release);  // as when first assigned
        v.assigned.push_back(id);
        ++v.given;
        break;
      }
      t.assigned.push_back(id);
      ++t.given;
      task.worker = static_cast<int>(thief);
      break;
    }
  }
}

void PoolCore::deliver(std::vector<Delivery>& ds) {
  if (ds.empty()) return;
  if (std::this_thread::get_id() == handler_id_) {
    deliver_here(ds);
    return;
  }
  // Callbacks run on the handler thread; once it has ended (the pool stopped), here.
  auto shared = std::make_shared<std::vector<Delivery>>(std::move(ds));
  if (!post([this, shared] { deliver_here(*shared); })) deliver_here(*shared);
}

void PoolCore::deliver_here(std::vector<Delivery>& ds) {
  std::size_t freed = 0;
  for (Delivery& d : ds) {
    try {
      if (d.error) {
        d.done->fail(d.index, d.error);
      } else {
        TaskHeader& h = header(d.block);
        // Acquire: pairs with the worker's release of done/failed (its results or report).
        if (TaskHeader::phase_of(h.state.load(std::memory_order_acquire)) == TaskHeader::kDone)
          d.done->complete(d.index, h.bytes(h.out_offset));
        else
          d.done->fail(d.index, task_error(h.error));
      }
    } catch (...) {
      report_callback_exception(std::current_exception());
    }
    if (d.block) {
      arena_.deallocate(&header(d.block));
      ++freed;
    }
  }
  std::vector<Delivery> more;  // tasks that waited for arena memory and cannot fit at all
  {
    std::lock_guard g(m_);
    blocks_ -= freed;
    undelivered_ -= ds.size();
    if (undelivered_ == 0) cv_.notify_all();
    if (freed) dispatch_locked(more);  // memory came back: tasks that waited for it may go now
  }
  ds.clear();
  if (!more.empty()) deliver_here(more);
}

void PoolCore::submit(std::vector<TaskSpec>&& specs, const char* op) {
  std::vector<Delivery> ds;
  {
    std::lock_guard g(m_);
    if (!broken_.empty()) throw Error(errc::broken_pool, std::string(op) + ": " + broken_);
    if (closed_) throw Error(errc::closed, std::string(op) + ": the pool is closed");
    tasks_.reserve(tasks_.size() + specs.size());
    for (TaskSpec& s : specs) {
      const std::uint64_t id = ++next_task_;
      tasks_.emplace(id, Task{std::move(s), 0, -1});
      pending_.push_back(id);
    }
    undelivered_ += specs.size();
    dispatch_locked(ds);
  }
  deliver(ds);
}

void PoolCore::close() {
  std::lock_guard g(m_);
  closed_ = true;
}

void PoolCore::shutdown_when_done() {
  {
    std::lock_guard g(m_);
    closed_ = true;
    stop_when_done_ = true;
  }
  wake();  // the handler checks after its next message
}

void PoolCore::stop_workers_locked(bool kill) {
  for (auto& wp : workers_) {
    Worker& w = *wp;
    if (w.watch) unsupervise(w.watch);
    w.watch = 0;
    if (!w.alive) continue;
    if (kill) w.proc->kill();
    w.queue->close();  // an idle worker's get() throws Closed: it exits 0
  }
  for (auto& wp : workers_) {
    Worker& w = *wp;
    if (!w.alive) continue;
    try {
      w.proc->join();
    } catch (...) {
    }
    w.proc.reset();
    w.alive = false;
  }
}

void PoolCore::join(const char* op) {
  {
    std::unique_lock lk(m_);
    if (!closed_ && !terminated_)
      throw Error(std::make_error_code(std::errc::invalid_argument), std::string(op) + ": call close() or terminate() first");
    if (std::this_thread::get_id() == handler_id_ && handler_running_)
      throw Error(errc::not_supported, std::string(op) + ": called from a callback on the pool's handler thread: it would wait for itself");
    cv_.wait(lk, [this] { return undelivered_ == 0 || terminated_; });
    if (!stopped_) {
      stop_workers_locked(false);
      stopped_ = true;
    }
  }
  results_->close();
  join_handler();
}

void PoolCore::terminate() {
  std::vector<Delivery> ds;
  {
    std::lock_guard g(m_);
    if (!terminated_) {
      terminated_ = closed_ = true;
      const auto e = std::make_exception_ptr(Error(errc::closed, "Pool::terminate: the pool was terminated before this task finished"));
      fail_pending_locked(e, ds);
      for (auto& w : workers_) {
        for (std::uint64_t id : w->assigned) ds.push_back(take_locked(id, e));
        w->assigned.clear();
      }
      if (!stopped_) {
        stop_workers_locked(true);  // SIGKILL: prompt, whatever the tasks do
        stopped_ = true;
      }
    }
  }
  cv_.notify_all();  // join() waiters
  deliver(ds);       // on the handler thread (posted), before it ends below
  results_->close();
  join_handler();
}

void PoolCore::join_handler() {
  std::lock_guard g(handler_join_m_);
  if (handler_.joinable() && handler_.get_id() != std::this_thread::get_id()) handler_.join();
}

// ---- free functions for the templates in pool.hpp ----------------------------------------------------

std::shared_ptr<PoolCore> make_pool_core(unsigned processes, const PoolOptions& options, const char* who) {
  if (processes == 0)
    throw Error(std::make_error_code(std::errc::invalid_argument), std::string(who) + ": the number of processes must be at least 1");
  if (processes > kMaxWorkers)
    throw Error(std::make_error_code(std::errc::invalid_argument),
                std::string(who) + ": " + std::to_string(processes) + " processes is more than the limit of " + std::to_string(kMaxWorkers));
  auto core = std::make_shared<PoolCore>(processes, options);
  core->start(who);
  return core;
}

void submit(PoolCore& core, std::vector<TaskSpec>&& tasks, const char* op) { core.submit(std::move(tasks), op); }
bool post(PoolCore& core, std::function<void()>&& job) { return core.post(std::move(job)); }
std::thread::id handler_id(const PoolCore& core) noexcept { return core.handler_id(); }
unsigned workers(const PoolCore& core) noexcept { return core.workers(); }

std::size_t chunk_size(const PoolCore& core, std::size_t items, std::size_t item_bytes) noexcept {
  const std::size_t per = std::size_t{4} * core.workers();
  const std::size_t size = std::max<std::size_t>(1, (items + per - 1) / per);  // Python's rule
  const std::size_t cap = std::max<std::size_t>(1, kChunkBytes / std::max<std::size_t>(1, item_bytes));
  return std::min(size, cap);
}

void close(PoolCore& core) { core.close(); }
void join(PoolCore& core, const char* op) { core.join(op); }
void terminate(PoolCore& core) { core.terminate(); }
void shutdown_when_done(PoolCore& core) { core.shutdown_when_done(); }

void report_callback_exception(std::exception_ptr e) noexcept {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    std::fprintf(stderr, "multiproc: a pool callback threw (ignored): %s\n", x.what());
  } catch (...) {
    std::fprintf(stderr, "multiproc: a pool callback threw (ignored): unknown exception\n");
  }
}

}  // namespace detail

// ---- Pool and Executor -----------------------------------------------------------------------------

Pool::~Pool() {
  if (core_) detail::terminate(*core_);
}
void Pool::close() { detail::close(*core_); }
void Pool::join() { detail::join(*core_, "Pool::join"); }
void Pool::terminate() { detail::terminate(*core_); }

Executor::~Executor() {
  try {
    shutdown(true);
  } catch (...) {
    detail::terminate(*core_);  // called from the pool's own callback: cannot wait
  }
}

void Executor::shutdown(bool wait) {
  if (wait) {
    detail::close(*core_);
    detail::join(*core_, "Executor::shutdown");
  } else {
    detail::shutdown_when_done(*core_);
  }
}

}  // namespace multiproc
