// multiproc/pool.hpp — Pool, Future and Executor: Python's multiprocessing.Pool and
// concurrent.futures.ProcessPoolExecutor over forked worker processes and this library's queues.
//
// What a Pool guarantees
//   * n worker processes (daemon Processes named "ForkPoolWorker-N"), forked from this process,
//     so a task's `fn` — a function pointer or a trivially copyable callable — is valid in the
//     worker as it is (same program image). Arguments, map items and results are trivially
//     copyable (pairs and tuples of such for starmap): they are copied through shared memory.
//   * map / starmap return results in input order; imap yields them in order, imap_unordered
//     as chunks complete. A task that throws fails its Future: get() throws TaskError (an
//     Error) whose what() carries the exception's type and message, and whose code() is the
//     exception's own when it was a std::system_error of the generic, system or multiproc
//     category (else task_errc::exception).
//   * A worker that dies mid-task (SIGKILL, abort, exit, a crash) fails exactly that task's
//     Future with Error(broken_pool) naming how it died ("killed by signal 9"); tasks it had
//     been given but not started are handed to other workers; a new worker replaces it; the
//     pool goes on. No call blocks forever: every Future resolves — by a result, a task error,
//     broken_pool, or Error(closed) from terminate().
//   * Callbacks (Future::then) run exactly once, in this process, on the pool's handler thread
//     (one std::thread per Pool/Executor, which also delivers every result) — also when then()
//     is called on a Future that is already ready; on the calling thread only if the pool has
//     stopped by then. A callback must not wait for another Future of the same pool (get() on
//     the handler thread of a task not yet done throws Error(not_supported) instead of
//     deadlocking); callback exceptions are printed to stderr and dropped.
//   * close(); join(); waits for every submitted task and its callbacks, then stops the
//     workers. terminate() returns promptly: it SIGKILLs the workers, and every outstanding
//     Future fails with Error(closed). The Pool destructor calls terminate() (Python's
//     `with Pool() as p:`) unless join() already ran; the Executor destructor calls
//     shutdown(true).
//
// Architecture (why not one shared task queue)
//   Parent side: submitters, the handler thread, and the process-wide supervisor thread
//   (process.hpp) that forks workers and reports their deaths. Shared side, in one Arena:
//     - a task block per in-flight task: a 1 KiB TaskHeader (state word, runner, layout, error
//       report) followed by fn, the arguments or a chunk of inputs, and room for the results;
//     - one small task Queue<TaskRef> per worker (capacity 2 * kDepth), and
//     - one result Queue<PoolMsg> all workers answer on.
//   The parent gives each worker at most kDepth (2) tasks at a time, picking the least loaded;
//   the rest wait in a parent-side list (unbounded: submitting never blocks, as in Python). A
//   worker that runs out of work steals a not-yet-started task queued behind another worker's
//   running one. A single shared task queue would balance load by itself, but it cannot say
//   which task a dead worker took: a consumer killed between claiming an item and recording it
//   loses the item with no trace, and that task's Future would wait forever. With per-worker
//   queues the parent knows exactly what it gave whom, and the block's state word says what
//   the worker did with it:
//     state = phase (8 bits, top) | worker slot (24) | low 32 bits of the task id
//     parent: assigned(w)  --worker CAS-->  running(w)  --worker store-->  done | failed
//     parent steal: CAS assigned(w) -> assigned(w2); the ref left in w's queue then fails w's
//     CAS (owner or task id differ) and is skipped — as is any ref whose block has been freed
//     and reused (the phase byte sits in the top bits, so the allocator's free-list words, all
//     offsets below 2^56, never match either).
//   On a worker's death (its pidfd, via the supervisor): done/failed tasks are delivered,
//   running(w) fails with broken_pool, assigned(w) goes back to the front of the list.
//
// Waiting strategy: workers block in Queue::get (futex); the handler thread blocks in the
//   result queue's get; the supervisor sleeps in poll() on the workers' pidfds. Futures wait on
//   a std::condition_variable. No polling anywhere, no signal handlers.
// Memory ordering: the parent writes a block, then stores assigned(w) with release (the task
//   queue's put also publishes it); the worker's CAS to running is acquire. The worker writes
//   results or the error report, then stores done/failed with release; the parent reads the
//   state with acquire before reading results. After a worker's death the parent reads what the
//   dead process stored; the kernel's exit and pidfd notification order those stores first.
//
// Limits: the task block holds the error text up to kErrorText bytes (longer messages are cut);
//   a block must fit the pool's arena (64 MiB or more: the auto chunk size keeps a map chunk
//   under 4 MiB) or the task fails with Error(out_of_memory). Pool workers are daemons: a task
//   cannot start a Process (Error(not_supported)), as in Python. A Pool belongs to the process
//   that made it: a child made by fork() must not use its parent's Pool (its threads are not
//   there), nor may a task use the pool it runs in.
#pragma once

#include <multiproc/deadline.hpp>
#include <multiproc/error.hpp>
#include <multiproc/process.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <ranges>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace multiproc {

struct PoolOptions {
  void (*initializer)() = nullptr;  // runs once in each worker before its first task; if it
                                    // throws, the pool is broken: every task fails broken_pool
  unsigned max_tasks_per_child = 0;  // 0: unlimited; N: a worker is replaced after N tasks
  std::size_t chunksize = 0;         // 0: chosen by map: ceil(n / (4 * workers)), at most 4 MiB
};

/// The codes of task_category(): what a task did when its exception was not a system_error.
enum class task_errc { exception = 1, unknown_exception };
const std::error_category& task_category() noexcept;
std::error_code make_error_code(task_errc e) noexcept;

/// What Future::get throws when the task threw. what() is "<type>: <message>: <code message>".
class TaskError : public Error {
 public:
  TaskError(std::error_code code, const std::string& type, const std::string& message);
  /// The demangled type of the task's exception ("std::runtime_error"), or "" if unknown.
  const std::string& type() const noexcept { return type_; }

 private:
  std::string type_;
};

}  // namespace multiproc

template <>
struct std::is_error_code_enum<multiproc::task_errc> : std::true_type {};

namespace multiproc {

template <class R>
class Future;
template <class R>
class ImapResult;
class Pool;
class Executor;

namespace detail {

// ---- values that cross to a worker ----------------------------------------------------------

/// The arguments of one call, flattened into a trivially copyable aggregate (std::tuple and
/// std::pair are not trivially copyable in libstdc++, even of ints).
template <class... T>
struct Flat {};
template <class H, class... T>
struct Flat<H, T...> {
  H head;
  Flat<T...> tail;
};

inline Flat<> make_flat() { return {}; }
template <class H, class... T>
Flat<H, T...> make_flat(const H& head, const T&... tail) {
  return Flat<H, T...>{head, make_flat(tail...)};
}

template <class F, class... T, class... Done>
decltype(auto) apply_flat(F& fn, Flat<T...>& flat, Done&... done) {
  if constexpr (sizeof...(T) == 0) {
    return std::invoke(fn, done...);
  } else {
    return apply_flat(fn, flat.tail, done..., flat.head);
  }
}

template <class Tuple>
struct FlatOf;
template <template <class...> class Tup, class... T>
struct FlatOf<Tup<T...>> {
  using type = Flat<std::remove_cvref_t<T>...>;
};

template <class Tuple>
using flat_of_t = typename FlatOf<std::remove_cvref_t<Tuple>>::type;

template <class Tuple>
auto flatten(const Tuple& t) {
  return std::apply([](const auto&... v) { return make_flat(v...); }, t);
}

/// One call's result type, as stored: void stays void, references decay.
template <class F, class... A>
using call_result_t = std::remove_cvref_t<std::invoke_result_t<F&, A&...>>;

/// A value that means the same in a forked worker: trivially copyable, not a data pointer (a
/// data pointer would name the parent's copy, not shared memory).
template <class T>
inline constexpr bool transferable_v = std::is_trivially_copyable_v<T> && !std::is_pointer_v<T>;
/// A task function: a function pointer (the worker shares the program image) or a trivially
/// copyable callable object.
template <class F>
inline constexpr bool task_fn_v =
    std::is_trivially_copyable_v<F> && (!std::is_pointer_v<F> || std::is_function_v<std::remove_pointer_t<F>>);

// ---- the task block ----------------------------------------------------------------------------

inline constexpr std::size_t kErrorText = 864;  // bytes of error message a task can report
inline constexpr std::size_t kTypeText = 96;    // bytes of exception type name

/// What a failed task leaves for the parent (in the task block).
struct ErrorReport {
  enum Kind : std::uint32_t { none, generic, system, multiproc, exception, unknown };
  std::uint32_t kind;
  std::int32_t value;  // the system_error's code value (kinds generic, system, multiproc)
  std::uint32_t type_len;
  std::uint32_t text_len;
  char type[kTypeText];
  char text[kErrorText];
};

/// At the start of every task block (64-aligned, in the pool's arena). 1 KiB.
struct alignas(64) TaskHeader {
  enum Phase : std::uint64_t { kAssigned = 1, kRunning = 2, kDone = 3, kFailed = 4 };
  static constexpr std::uint64_t pack(Phase phase, std::uint32_t slot, std::uint64_t task) noexcept {
    return (std::uint64_t{phase} << 56) | (std::uint64_t{slot & 0xFFFFFFu} << 32) | (task & 0xFFFFFFFFu);
  }
  static constexpr Phase phase_of(std::uint64_t s) noexcept { return static_cast<Phase>(s >> 56); }
  static constexpr std::uint32_t slot_of(std::uint64_t s) noexcept { return static_cast<std::uint32_t>(s >> 32) & 0xFFFFFFu; }

  std::atomic<std::uint64_t> state;  // see "Architecture" at the top of this file
  // The worker-side runner. A function pointer in shared memory is sound here and only here:
  // it is read only by forks of this process, which share its program image.
  void (*run)(TaskHeader&);
  std::uint64_t count;       // items in a chunk task (1 for a call)
  std::uint64_t fn_offset;   // from the header's first byte
  std::uint64_t in_offset;
  std::uint64_t out_offset;
  ErrorReport error;

  template <class T>
  T* at(std::uint64_t offset) noexcept {
    return std::launder(reinterpret_cast<T*>(reinterpret_cast<std::byte*>(this) + offset));
  }
  std::byte* bytes(std::uint64_t offset) noexcept { return reinterpret_cast<std::byte*>(this) + offset; }
};
static_assert(sizeof(TaskHeader) == 1024, "a task header is 1 KiB: state, runner, layout and the error report");
static_assert(std::is_standard_layout_v<TaskHeader>, "a task header lives in shared memory: standard layout");
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "the state word is a lock-free 64-bit atomic");

/// The worker side of a call: result = fn(args...).
template <class F, class R, class Args>
void run_call(TaskHeader& h) {
  F& fn = *h.at<F>(h.fn_offset);
  Args& args = *h.at<Args>(h.in_offset);
  if constexpr (std::is_void_v<R>) {
    apply_flat(fn, args);
  } else {
    ::new (h.bytes(h.out_offset)) R(apply_flat(fn, args));
  }
}

/// The worker side of a map chunk: out[i] = fn(in[i]) (Star: fn(in[i]...) for starmap).
template <class F, class R, class E, bool Star>
void run_chunk(TaskHeader& h) {
  F& fn = *h.at<F>(h.fn_offset);
  E* in = h.at<E>(h.in_offset);
  std::byte* out = h.bytes(h.out_offset);
  for (std::uint64_t i = 0; i < h.count; ++i) {
    if constexpr (Star) {
      ::new (out + i * sizeof(R)) R(apply_flat(fn, in[i]));
    } else {
      ::new (out + i * sizeof(R)) R(std::invoke(fn, in[i]));
    }
  }
}

/// Parent side: what to do with a task's outcome. Runs on the handler thread.
class Completion {
 public:
  virtual ~Completion() = default;
  /// The task `index` succeeded; its results start at `out` (count items for a chunk).
  virtual void complete(std::size_t index, const std::byte* out) = 0;
  virtual void fail(std::size_t index, std::exception_ptr error) = 0;
};

/// One task as submitted: its block layout and image (fn then inputs, copied in at assignment).
struct TaskSpec {
  void (*run)(TaskHeader&) = nullptr;
  std::uint64_t count = 1;
  std::uint64_t fn_offset = 0, in_offset = 0, out_offset = 0, bytes = 0;
  std::vector<std::byte> image;  // the block's bytes [fn_offset, out_offset)
  std::shared_ptr<Completion> done;
  std::size_t index = 0;
};

constexpr std::uint64_t align_up(std::uint64_t v, std::uint64_t a) noexcept { return (v + a - 1) / a * a; }

/// Lays out fn, `n_in` inputs of In and `n_out` results of Out after the header.
template <class F, class In, class Out>
TaskSpec layout(std::uint64_t n_in, std::uint64_t n_out) {
  TaskSpec s;
  s.fn_offset = align_up(sizeof(TaskHeader), alignof(F));
  s.in_offset = align_up(s.fn_offset + sizeof(F), alignof(In));
  s.out_offset = align_up(s.in_offset + sizeof(In) * n_in, alignof(Out));
  s.bytes = s.out_offset + sizeof(Out) * n_out;
  s.image.resize(s.out_offset - s.fn_offset);
  return s;
}

class PoolCore;  // pool.cpp

std::shared_ptr<PoolCore> make_pool_core(unsigned processes, const PoolOptions& options, const char* who);
/// Queues tasks (all or none); they are given to workers as workers have room. Throws
/// Error(closed) after close()/terminate(), Error(broken_pool) on a broken pool.
void submit(PoolCore& core, std::vector<TaskSpec>&& tasks, const char* op);
/// Runs `job` on the handler thread; false (job not taken) once the pool has stopped.
bool post(PoolCore& core, std::function<void()>&& job);
std::thread::id handler_id(const PoolCore& core) noexcept;
unsigned workers(const PoolCore& core) noexcept;
std::size_t chunk_size(const PoolCore& core, std::size_t items, std::size_t item_bytes) noexcept;
void close(PoolCore& core);
void join(PoolCore& core, const char* op);
void terminate(PoolCore& core);
/// Executor::shutdown(false): no new tasks; the handler stops the workers once all are done.
void shutdown_when_done(PoolCore& core);
/// Prints a callback's exception (callbacks must not throw).
void report_callback_exception(std::exception_ptr e) noexcept;

// ---- futures -----------------------------------------------------------------------------------

template <class R>
using stored_t = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

/// The shared state of one Future. Written once by the handler thread (or terminate).
template <class T>
class FutureState {
 public:
  FutureState(std::weak_ptr<PoolCore> pool, std::thread::id handler) : pool_(std::move(pool)), handler_(handler) {}

  void set_value(T&& v) { finish(std::move(v), nullptr); }
  void set_error(std::exception_ptr e) { finish(std::nullopt, std::move(e)); }

  bool ready() const {
    std::lock_guard g(m_);
    return ready_;
  }

  /// Waits until ready or `deadline`; true when ready.
  bool wait_until(const Deadline& deadline, const char* op) {
    std::unique_lock lk(m_);
    if (ready_) return true;
    if (std::this_thread::get_id() == handler_)
      throw Error(errc::not_supported, std::string(op) +
                                           ": called on the pool's handler thread (in a callback) for a task that "
                                           "is not done: it would wait forever");
    if (deadline.infinite()) {
      cv_.wait(lk, [this] { return ready_; });
      return true;
    }
    return cv_.wait_until(lk, deadline.time_point(), [this] { return ready_; });
  }

  /// The value (throws the task's error). Only after ready.
  const T& value() const {
    if (error_) std::rethrow_exception(error_);
    return *value_;
  }
  T take() {
    if (error_) std::rethrow_exception(error_);
    return std::move(*value_);
  }

  /// Runs job() once the state is ready: on the handler thread (see the top of this file).
  void on_ready(std::function<void()> job) {
    {
      std::lock_guard g(m_);
      if (!ready_) {
        callbacks_.push_back(std::move(job));
        return;
      }
    }
    if (auto core = pool_.lock())
      if (post(*core, std::move(job))) return;
    run_one(job);
  }

  std::exception_ptr error() const { return error_; }

 private:
  void finish(std::optional<T>&& v, std::exception_ptr e) {
    std::vector<std::function<void()>> callbacks;
    {
      std::lock_guard g(m_);
      if (ready_) return;  // resolved once
      value_ = std::move(v);
      error_ = std::move(e);
      ready_ = true;
      callbacks.swap(callbacks_);
    }
    cv_.notify_all();
    for (auto& cb : callbacks) run_one(cb);
  }
  static void run_one(std::function<void()>& cb) noexcept {
    try {
      cb();
    } catch (...) {
      report_callback_exception(std::current_exception());
    }
  }

  mutable std::mutex m_;
  std::condition_variable cv_;
  bool ready_ = false;
  std::optional<T> value_;
  std::exception_ptr error_;
  std::vector<std::function<void()>> callbacks_;
  std::weak_ptr<PoolCore> pool_;
  std::thread::id handler_;
};

template <class R>
class CallCompletion final : public Completion {
 public:
  explicit CallCompletion(std::shared_ptr<FutureState<stored_t<R>>> st) : st_(std::move(st)) {}
  void complete(std::size_t, const std::byte* out) override {
    if constexpr (std::is_void_v<R>) {
      st_->set_value(std::monostate{});
    } else {
      st_->set_value(R(*std::launder(reinterpret_cast<const R*>(out))));
    }
  }
  void fail(std::size_t, std::exception_ptr e) override { st_->set_error(std::move(e)); }

 private:
  std::shared_ptr<FutureState<stored_t<R>>> st_;
};

/// Gathers a map's chunks into one std::vector<R>; the first failure fails it all.
template <class R>
class MapCompletion final : public Completion {
 public:
  MapCompletion(std::shared_ptr<FutureState<std::vector<R>>> st, std::vector<std::size_t> starts, std::size_t total)
      : st_(std::move(st)), starts_(std::move(starts)), buf_(new std::byte[total * sizeof(R) + alignof(R)]), total_(total),
        left_(starts_.size()) {}
  void complete(std::size_t index, const std::byte* out) override {
    const std::size_t end = index + 1 < starts_.size() ? starts_[index + 1] : total_;
    std::memcpy(base() + starts_[index] * sizeof(R), out, (end - starts_[index]) * sizeof(R));
    if (--left_ == 0 && !failed_) {
      std::vector<R> v;
      v.reserve(total_);
      for (std::size_t i = 0; i < total_; ++i) v.push_back(*std::launder(reinterpret_cast<R*>(base() + i * sizeof(R))));
      st_->set_value(std::move(v));
    }
  }
  void fail(std::size_t, std::exception_ptr e) override {
    --left_;
    if (!failed_) {
      failed_ = true;
      st_->set_error(std::move(e));
    }
  }

 private:
  std::byte* base() noexcept {
    auto p = reinterpret_cast<std::uintptr_t>(buf_.get());
    return reinterpret_cast<std::byte*>(align_up(p, alignof(R)));
  }
  std::shared_ptr<FutureState<std::vector<R>>> st_;
  std::vector<std::size_t> starts_;
  std::unique_ptr<std::byte[]> buf_;
  std::size_t total_;
  std::size_t left_;  // handler thread only
  bool failed_ = false;
};

/// imap's shared state: chunks as they complete, in order of index and of arrival.
template <class R>
class ImapState final : public Completion {
 public:
  explicit ImapState(std::size_t chunks) : chunks_(chunks) {}
  void complete(std::size_t index, const std::byte* out) override {
    std::vector<R> v;
    const std::size_t n = sizes_[index];
    v.reserve(n);
    for (std::size_t i = 0; i < n; ++i) v.push_back(*std::launder(reinterpret_cast<const R*>(out + i * sizeof(R))));
    arrive(index, std::move(v));
  }
  void fail(std::size_t index, std::exception_ptr e) override { arrive(index, std::move(e)); }

  using Chunk = std::variant<std::monostate, std::vector<R>, std::exception_ptr>;
  /// Blocks until chunk `index` (ordered) or the next arrival (unordered) is there.
  Chunk next(bool ordered, std::size_t index) {
    std::unique_lock lk(m_);
    if (ordered) {
      cv_.wait(lk, [&] { return chunks_[index].index() != 0; });
      return std::move(chunks_[index]);
    }
    cv_.wait(lk, [&] { return !arrivals_.empty(); });
    const std::size_t i = arrivals_.front();
    arrivals_.pop_front();
    return std::move(chunks_[i]);
  }
  std::size_t chunk_count() const noexcept { return chunks_.size(); }
  std::vector<std::size_t> sizes_;  // set before submission, read-only afterwards

 private:
  void arrive(std::size_t index, Chunk&& c) {
    {
      std::lock_guard g(m_);
      chunks_[index] = std::move(c);
      arrivals_.push_back(index);
    }
    cv_.notify_all();
  }
  std::mutex m_;
  std::condition_variable cv_;
  std::vector<Chunk> chunks_;
  std::deque<std::size_t> arrivals_;
};

template <class R>
Future<R> make_future(std::shared_ptr<FutureState<stored_t<R>>> st);

class PoolFront;

}  // namespace detail

// ---- Future ------------------------------------------------------------------------------------

/// The result of a task that runs in a pool worker (Python's AsyncResult / concurrent Future).
/// Copyable handle to shared state; every copy sees the same result. Thread-safe.
template <class R>
class Future {
  using T = detail::stored_t<R>;

 public:
  Future() = default;
  /// False for a default-constructed Future.
  bool valid() const noexcept { return st_ != nullptr; }

  /// Blocks until the task is done; returns its result (a copy; get() may be called again) or
  /// throws its error: TaskError, Error(broken_pool), Error(closed), Error(out_of_memory).
  R get() {
    st("Future::get").wait_until(Deadline::never(), "Future::get");
    if constexpr (std::is_void_v<R>) {
      (void)st_->value();
    } else {
      return st_->value();
    }
  }

  /// get() that gives up after `timeout`: the result, or empty at the deadline (never
  /// earlier). Throws the task's error like get(). For Future<void>: true when done.
  template <class Rep, class Period>
  auto get_for(const std::chrono::duration<Rep, Period>& timeout) {
    const bool done = st("Future::get_for").wait_until(Deadline::after(timeout), "Future::get_for");
    if constexpr (std::is_void_v<R>) {
      if (done) (void)st_->value();
      return done;
    } else {
      return done ? std::optional<R>(st_->value()) : std::nullopt;
    }
  }

  /// Snapshot: is the task done (succeeded or failed)? Never blocks.
  bool ready() const { return st_ && st_->ready(); }
  /// True when done and failed.
  bool failed() const { return ready() && st_->error() != nullptr; }

  void wait() { (void)st("Future::wait").wait_until(Deadline::never(), "Future::wait"); }
  template <class Rep, class Period>
  bool wait_for(const std::chrono::duration<Rep, Period>& timeout) {
    return st("Future::wait_for").wait_until(Deadline::after(timeout), "Future::wait_for");
  }

  /// Runs callback(result) once the task succeeded (Python's apply_async callback). On the
  /// pool's handler thread, exactly once; a failure is not passed to it.
  template <class Cb>
  void then(Cb callback) {
    then(std::move(callback), [](std::exception_ptr) {});
  }
  /// Runs callback(result) on success, or error_callback(std::exception_ptr) on failure
  /// (Python's error_callback): exactly one of them, once, on the pool's handler thread.
  template <class Cb, class Eb>
  void then(Cb callback, Eb error_callback) {
    (void)st("Future::then");
    // The job holds the state until it has run (the handler may run it after every Future
    // handle is gone); the cycle state -> job -> state ends when the job runs, and every
    // state is resolved eventually.
    auto* raw = st_.get();
    raw->on_ready([keep = st_, raw, cb = std::move(callback), eb = std::move(error_callback)]() mutable {
      if (std::exception_ptr e = raw->error()) {
        eb(e);
      } else if constexpr (std::is_void_v<R>) {
        cb();
      } else {
        cb(raw->value());
      }
    });
  }

 private:
  friend Future detail::make_future<R>(std::shared_ptr<detail::FutureState<T>>);
  friend class detail::PoolFront;
  explicit Future(std::shared_ptr<detail::FutureState<T>> st) : st_(std::move(st)) {}
  detail::FutureState<T>& st(const char* op) const {
    if (!st_) throw Error(std::make_error_code(std::errc::invalid_argument), std::string(op) + ": empty Future");
    return *st_;
  }

  std::shared_ptr<detail::FutureState<T>> st_;
};

template <class R>
Future<R> detail::make_future(std::shared_ptr<FutureState<stored_t<R>>> st) {
  return Future<R>(std::move(st));
}

// ---- imap ---------------------------------------------------------------------------------------

/// What imap / imap_unordered return: a single-pass input range of R whose iterator blocks
/// until the next result is there. A failed chunk throws its error from begin()/operator++.
template <class R>
class ImapResult {
 public:
  class iterator {
   public:
    using value_type = R;
    using difference_type = std::ptrdiff_t;
    using iterator_concept = std::input_iterator_tag;

    iterator() = default;
    const R& operator*() const { return chunk_[pos_]; }
    const R* operator->() const { return &chunk_[pos_]; }
    iterator& operator++() {
      if (++pos_ >= chunk_.size()) fetch();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept { return it.done_; }

   private:
    friend class ImapResult;
    iterator(std::shared_ptr<detail::ImapState<R>> st, bool ordered) : st_(std::move(st)), ordered_(ordered) { fetch(); }
    void fetch() {
      pos_ = 0;
      chunk_.clear();
      while (chunk_.empty()) {
        if (next_ >= st_->chunk_count()) {
          done_ = true;
          return;
        }
        auto c = st_->next(ordered_, next_++);
        if (auto* e = std::get_if<std::exception_ptr>(&c)) std::rethrow_exception(*e);
        chunk_ = std::move(std::get<std::vector<R>>(c));
      }
    }
    std::shared_ptr<detail::ImapState<R>> st_;
    bool ordered_ = true;
    bool done_ = false;
    std::size_t next_ = 0;
    std::vector<R> chunk_;
    std::size_t pos_ = 0;
  };

  /// Starts the iteration (once: this is an input range). Blocks for the first result.
  iterator begin() { return iterator(st_, ordered_); }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  friend class detail::PoolFront;
  ImapResult(std::shared_ptr<detail::ImapState<R>> st, bool ordered) : st_(std::move(st)), ordered_(ordered) {}
  std::shared_ptr<detail::ImapState<R>> st_;
  bool ordered_;
};

namespace detail {

/// The operations Pool and Executor share: turn calls and ranges into task blocks.
class PoolFront {
 public:
  template <class F, class... A>
  static auto apply_async(const std::shared_ptr<PoolCore>& core, F fn, A... args) {
    static_assert(task_fn_v<F>, "a pool task's fn is a function pointer or a trivially copyable callable");
    static_assert((transferable_v<A> && ...), "pool task arguments are trivially copyable (and not pointers)");
    using R = call_result_t<F, A...>;
    static_assert(std::is_void_v<R> || transferable_v<R>, "a pool task's result is trivially copyable (or void)");
    using Args = Flat<A...>;
    using Out = std::conditional_t<std::is_void_v<R>, char, R>;
    auto st = std::make_shared<FutureState<stored_t<R>>>(core, handler_id(*core));
    TaskSpec spec = layout<F, Args, Out>(1, std::is_void_v<R> ? 0 : 1);
    spec.run = &run_call<F, R, Args>;
    const Args flat = make_flat(args...);
    std::memcpy(spec.image.data(), &fn, sizeof(F));
    std::memcpy(spec.image.data() + (spec.in_offset - spec.fn_offset), &flat, sizeof(Args));
    spec.done = std::make_shared<CallCompletion<R>>(st);
    std::vector<TaskSpec> one;
    one.push_back(std::move(spec));
    submit(*core, std::move(one), "Pool::apply_async");
    return make_future<R>(std::move(st));
  }

  template <bool Star, class F, class In>
  static auto map_async(const std::shared_ptr<PoolCore>& core, F fn, const In& inputs, std::size_t chunksize,
                        const char* op) {
    using E = stored_item_t<Star, In>;
    using R = item_result_t<Star, F, In>;
    static_assert(check_map<F, E, R>());
    auto st = std::make_shared<FutureState<std::vector<R>>>(core, handler_id(*core));
    std::vector<E> items = collect<Star>(inputs);
    std::vector<std::size_t> starts;
    std::vector<TaskSpec> specs = chunks<Star, F, E, R>(*core, fn, items, chunksize, starts);
    if (specs.empty()) {
      st->set_value({});
      return make_future<std::vector<R>>(std::move(st));
    }
    auto done = std::make_shared<MapCompletion<R>>(st, std::move(starts), items.size());
    for (auto& s : specs) s.done = done;
    submit(*core, std::move(specs), op);
    return make_future<std::vector<R>>(std::move(st));
  }

  template <bool Star, class F, class In>
  static auto map(const std::shared_ptr<PoolCore>& core, F fn, const In& inputs, std::size_t chunksize,
                  const char* op) {
    auto f = map_async<Star>(core, fn, inputs, chunksize, op);
    f.st_->wait_until(Deadline::never(), op);
    return f.st_->take();
  }

  template <class F, class In>
  static auto imap(const std::shared_ptr<PoolCore>& core, F fn, const In& inputs, std::size_t chunksize,
                   bool ordered) {
    using E = stored_item_t<false, In>;
    using R = item_result_t<false, F, In>;
    static_assert(check_map<F, E, R>());
    std::vector<E> items = collect<false>(inputs);
    std::vector<std::size_t> starts;
    std::vector<TaskSpec> specs = chunks<false, F, E, R>(*core, fn, items, chunksize, starts);
    auto st = std::make_shared<ImapState<R>>(specs.size());
    for (std::size_t i = 0; i < starts.size(); ++i)
      st->sizes_.push_back((i + 1 < starts.size() ? starts[i + 1] : items.size()) - starts[i]);
    for (auto& s : specs) s.done = st;
    if (!specs.empty()) submit(*core, std::move(specs), ordered ? "Pool::imap" : "Pool::imap_unordered");
    return ImapResult<R>(std::move(st), ordered);
  }

 private:
  template <class In>
  using raw_item_t = std::remove_cvref_t<std::ranges::range_reference_t<const In>>;

  template <bool Star, class In>
  struct Stored {  // map: the item as it is
    using type = raw_item_t<In>;
  };
  template <class In>
  struct Stored<true, In> {  // starmap: the tuple or pair, flattened
    using type = flat_of_t<raw_item_t<In>>;
  };
  template <bool Star, class In>
  using stored_item_t = typename Stored<Star, In>::type;

  template <bool Star, class F, class E>
  struct Result {  // map: fn(item)
    using type = call_result_t<F, E>;
  };
  template <class F, class... T>
  struct Result<true, F, Flat<T...>> {  // starmap: fn(elements...)
    using type = call_result_t<F, T...>;
  };
  template <bool Star, class F, class In>
  using item_result_t = typename Result<Star, F, stored_item_t<Star, In>>::type;

  template <class F, class E, class R>
  static constexpr bool check_map() {
    static_assert(task_fn_v<F>, "a pool task's fn is a function pointer or a trivially copyable callable");
    static_assert(transferable_v<E>, "map items are trivially copyable (starmap: tuples or pairs of such)");
    static_assert(!std::is_void_v<R>, "map needs a function that returns a value");
    static_assert(std::is_void_v<R> || transferable_v<R>, "a pool task's result is trivially copyable");
    return true;
  }

  template <bool Star, class In>
  static auto collect(const In& inputs) {
    using E = stored_item_t<Star, In>;
    std::vector<E> items;
    if constexpr (std::ranges::sized_range<const In>) items.reserve(std::ranges::size(inputs));
    for (const auto& x : inputs) {
      if constexpr (Star) {
        items.push_back(flatten(x));
      } else {
        items.push_back(x);
      }
    }
    return items;
  }

  template <bool Star, class F, class E, class R>
  static std::vector<TaskSpec> chunks(PoolCore& core, const F& fn, const std::vector<E>& items, std::size_t chunksize,
                                      std::vector<std::size_t>& starts) {
    const std::size_t n = items.size();
    const std::size_t size = chunksize ? chunksize : chunk_size(core, n, sizeof(E) + sizeof(R));
    std::vector<TaskSpec> specs;
    for (std::size_t begin = 0; begin < n; begin += size) {
      const std::size_t count = std::min(size, n - begin);
      TaskSpec spec = layout<F, E, R>(count, count);
      spec.run = &run_chunk<F, R, E, Star>;
      spec.count = count;
      spec.index = specs.size();
      std::memcpy(spec.image.data(), &fn, sizeof(F));
      std::memcpy(spec.image.data() + (spec.in_offset - spec.fn_offset), items.data() + begin, count * sizeof(E));
      starts.push_back(begin);
      specs.push_back(std::move(spec));
    }
    return specs;
  }
};

}  // namespace detail

// ---- Pool ---------------------------------------------------------------------------------------

/// multiprocessing.Pool: `processes` worker processes. Throws Error(invalid_argument) for 0.
class Pool {
 public:
  explicit Pool(unsigned processes = cpu_count()) : Pool(processes, PoolOptions{}) {}
  Pool(unsigned processes, PoolOptions options)
      : core_(detail::make_pool_core(processes, options, "Pool::Pool")), chunksize_(options.chunksize) {}
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  /// terminate() unless join() has run (see the top of this file).
  ~Pool();

  /// fn(x) for every x of `inputs`, in order. Blocks until all are done; throws the first
  /// failure (TaskError, Error(broken_pool), ...).
  template <class F, std::ranges::input_range In>
  auto map(F fn, const In& inputs) {
    return detail::PoolFront::map<false>(core_, fn, inputs, chunksize_, "Pool::map");
  }
  /// map without waiting: a Future of the whole result vector.
  template <class F, std::ranges::input_range In>
  auto map_async(F fn, const In& inputs) {
    return detail::PoolFront::map_async<false>(core_, fn, inputs, chunksize_, "Pool::map_async");
  }
  /// fn(a, b, ...) for every tuple or pair (a, b, ...) of `tuples`, in order.
  template <class F, std::ranges::input_range In>
  auto starmap(F fn, const In& tuples) {
    return detail::PoolFront::map<true>(core_, fn, tuples, chunksize_, "Pool::starmap");
  }
  template <class F, std::ranges::input_range In>
  auto starmap_async(F fn, const In& tuples) {
    return detail::PoolFront::map_async<true>(core_, fn, tuples, chunksize_, "Pool::starmap_async");
  }
  /// An input range of fn(x), in order, each available as soon as its chunk is done.
  template <class F, std::ranges::input_range In>
  auto imap(F fn, const In& inputs) {
    return detail::PoolFront::imap(core_, fn, inputs, chunksize_, true);
  }
  /// An input range of fn(x) in the order the chunks complete.
  template <class F, std::ranges::input_range In>
  auto imap_unordered(F fn, const In& inputs) {
    return detail::PoolFront::imap(core_, fn, inputs, chunksize_, false);
  }
  /// fn(args...) in a worker; blocks for the result.
  template <class F, class... A>
  auto apply(F fn, A... args) {
    return apply_async(fn, args...).get();
  }
  /// fn(args...) in a worker: a Future of its result.
  template <class F, class... A>
  auto apply_async(F fn, A... args) {
    return detail::PoolFront::apply_async(core_, fn, args...);
  }

  /// No more tasks (later submissions throw Error(closed)); queued ones still run.
  void close();
  /// After close() or terminate(): waits for every task and its callbacks, then stops and reaps
  /// the workers. Error(invalid_argument) if neither was called.
  void join();
  /// Stops at once: SIGKILLs the workers, fails every outstanding Future with Error(closed).
  void terminate();

  /// Worker processes the pool keeps running.
  unsigned processes() const noexcept { return detail::workers(*core_); }

 private:
  std::shared_ptr<detail::PoolCore> core_;
  std::size_t chunksize_;
};

// ---- Executor -----------------------------------------------------------------------------------

/// concurrent.futures.ProcessPoolExecutor over the same machinery as Pool.
class Executor {
 public:
  explicit Executor(unsigned max_workers = cpu_count())
      : core_(detail::make_pool_core(max_workers, PoolOptions{}, "Executor::Executor")) {}
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;
  /// shutdown(true).
  ~Executor();

  /// fn(args...) in a worker: a Future of its result. Error(closed) after shutdown.
  template <class F, class... A>
  auto submit(F fn, A... args) {
    return detail::PoolFront::apply_async(core_, fn, args...);
  }
  /// fn(x) for every x, in order (chunked as Pool::map); blocks for all.
  template <class F, std::ranges::input_range In>
  auto map(F fn, const In& inputs) {
    return detail::PoolFront::map<false>(core_, fn, inputs, 0, "Executor::map");
  }
  /// No more submissions. wait=true: blocks until every task is done, then stops the workers;
  /// wait=false: returns at once, the workers stop when the last task is done.
  void shutdown(bool wait = true);

 private:
  std::shared_ptr<detail::PoolCore> core_;
};

}  // namespace multiproc
