// Stateful property tests (rapidcheck rc::state) of Queue<int> and ByteQueue against a bounded
// std::deque model: random sequences of put / try_put / try_put_for / get / try_get /
// try_get_for / close / size checks (and oversized puts for ByteQueue). Each sequence runs
// twice: in this process, and with every command executed by one of several worker processes
// (or this one), each of which mapped the arena again with Arena::from_fd — at its own address.
#include <multiproc/arena.hpp>
#include <multiproc/queue.hpp>

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>
#include "mptest.hpp"

#include <chrono>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

namespace mp = multiproc;
using namespace std::chrono_literals;

namespace {

using Item = std::vector<std::byte>;  // Queue<int> items are 4-byte vectors
constexpr std::size_t kMaxMessage = 24;

enum class Op : std::uint32_t { put, try_put, try_put_for, get, try_get, try_get_for, close, observe, quit };
enum class Status : std::uint32_t { ok, no, closed, too_large, other_error };

struct Reply {
  Status status = Status::ok;
  Item item;
  std::size_t size = 0;
  bool empty = false, full = false, closed = false;
};

/// Runs one command on a queue of either kind.
template <class Q>
Reply execute(Q& q, Op op, const Item& in) {
  Reply r;
  auto as_int = [](const Item& v) {
    int x = 0;
    std::memcpy(&x, v.data(), std::min(v.size(), sizeof x));
    return x;
  };
  auto from_int = [](int x) {
    Item v(sizeof x);
    std::memcpy(v.data(), &x, sizeof x);
    return v;
  };
  auto arg = [&]() -> decltype(auto) {
    if constexpr (std::is_same_v<Q, mp::ByteQueue>) return std::span<const std::byte>(in);
    else return as_int(in);
  };
  auto item_of = [&](auto&& got) {
    if constexpr (std::is_same_v<Q, mp::ByteQueue>) return Item(got);
    else return from_int(got);
  };
  try {
    switch (op) {
      case Op::put: q.put(arg()); break;
      case Op::try_put: r.status = q.try_put(arg()) ? Status::ok : Status::no; break;
      case Op::try_put_for: r.status = q.try_put_for(arg(), 1ms) ? Status::ok : Status::no; break;
      case Op::get: r.item = item_of(q.get()); break;
      case Op::try_get:
      case Op::try_get_for: {
        auto got = op == Op::try_get ? q.try_get() : q.try_get_for(1ms);
        if (got) r.item = item_of(*got);
        else r.status = Status::no;
        break;
      }
      case Op::close: q.close(); break;
      case Op::observe:
        r.size = q.size();
        r.empty = q.empty();
        r.full = q.full();
        r.closed = q.closed();
        break;
      case Op::quit: break;
    }
  } catch (const mp::Closed&) {
    r.status = Status::closed;
  } catch (const mp::Error& e) {
    r.status = e.code() == mp::errc::message_too_large ? Status::too_large : Status::other_error;
  }
  return r;
}

/// A mailbox in shared memory through which this process hands one command at a time to a
/// worker process and waits (bounded) for its reply.
struct Mailbox {
  mp::ParkingLot request_lot, reply_lot;
  std::atomic<std::uint32_t> request{0}, reply{0};
  Op op;
  std::uint32_t len;
  std::byte data[64];
  Status status;
  std::uint32_t rlen;
  std::byte rdata[64];
  std::uint64_t size;
  bool empty, full, closed;
};

template <class Q>
struct QueueSut {
  mp::Arena arena;
  Q* q;
  // Multi-process mode: workers and their mailboxes (empty: run everything here).
  std::unique_ptr<mptest::SharedMemory> mem;
  std::vector<pid_t> workers;
  bool broken = false;

  QueueSut(std::size_t capacity, int n_workers) : arena(mp::Arena::create(1 << 20)) {
    if constexpr (std::is_same_v<Q, mp::ByteQueue>) q = &arena.make<Q>("q", capacity, kMaxMessage);
    else q = &arena.make<Q>("q", capacity);
    if (n_workers == 0) return;
    mem = std::make_unique<mptest::SharedMemory>(sizeof(Mailbox) * static_cast<std::size_t>(n_workers));
    for (int w = 0; w < n_workers; ++w) {
      Mailbox* box = new (static_cast<Mailbox*>(mem->get()) + w) Mailbox();
      const int fd = arena.fd();
      workers.push_back(mptest::spawn([box, fd] { return serve(box, fd); }));
    }
  }
  ~QueueSut() {
    for (std::size_t w = 0; w < workers.size(); ++w) {
      call(static_cast<int>(w), Op::quit, {});
      mptest::wait_exit(workers[w], 10s);
    }
  }

  // A worker: maps the arena again (another address), finds the queue, serves commands.
  static int serve(Mailbox* box, int fd) {
    mp::Arena mine = mp::Arena::from_fd(fd);
    Q* q = mine.find<Q>("q");
    if (q == nullptr) return 2;
    for (std::uint32_t n = 1;; ++n) {
      if (!box->request_lot.wait_until([&] { return box->request.load() >= n; }, mp::Deadline::after(60s))) return 3;
      const Item in(box->data, box->data + box->len);
      const Reply r = execute(*q, box->op, in);
      box->status = r.status;
      box->rlen = static_cast<std::uint32_t>(r.item.size());
      if (!r.item.empty()) std::memcpy(box->rdata, r.item.data(), r.item.size());
      box->size = r.size;
      box->empty = r.empty;
      box->full = r.full;
      box->closed = r.closed;
      const Op op = box->op;
      box->reply.store(n);
      box->reply_lot.notify_all();
      if (op == Op::quit) return 0;
    }
  }

  /// Runs `op` in worker `w`, or here when w < 0 or there are no workers.
  Reply call(int w, Op op, const Item& in) {
    if (workers.empty() || w < 0) return execute(*q, op, in);
    Mailbox* box = static_cast<Mailbox*>(mem->get()) + w;
    box->op = op;
    box->len = static_cast<std::uint32_t>(in.size());
    if (!in.empty()) std::memcpy(box->data, in.data(), in.size());
    const std::uint32_t n = box->request.load() + 1;
    box->request.store(n);
    box->request_lot.notify_all();
    if (!box->reply_lot.wait_until([&] { return box->reply.load() >= n; }, mp::Deadline::after(30s))) {
      broken = true;
      Reply r;
      r.status = Status::other_error;
      return r;
    }
    Reply r;
    r.status = box->status;
    r.item.assign(box->rdata, box->rdata + box->rlen);
    r.size = box->size;
    r.empty = box->empty;
    r.full = box->full;
    r.closed = box->closed;
    return r;
  }
};

struct Model {
  std::deque<Item> items;
  std::size_t capacity;
  bool closed = false;
  bool full() const { return items.size() >= capacity; }
};

template <class Q>
using Cmd = rc::state::Command<Model, QueueSut<Q>>;

template <class Q>
Item gen_item() {
  if constexpr (std::is_same_v<Q, mp::ByteQueue>) {
    const auto n = *rc::gen::inRange<std::size_t>(0, kMaxMessage + 1);
    Item v(n);
    for (auto& b : v) b = static_cast<std::byte>(*rc::gen::inRange(0, 256));
    return v;
  } else {
    const int x = *rc::gen::arbitrary<int>();
    Item v(sizeof x);
    std::memcpy(v.data(), &x, sizeof x);
    return v;
  }
}

// Which process runs the command: -1 here, else a worker (ignored in single-process runs).
int gen_worker() { return *rc::gen::inRange(-1, 3); }

template <class Q>
struct PutCmd : Cmd<Q> {
  Op op = *rc::gen::element(Op::put, Op::try_put, Op::try_put_for);
  Item item = gen_item<Q>();
  int worker = gen_worker();
  void checkPreconditions(const Model& m) const override {
    RC_PRE(op != Op::put || m.closed || !m.full());  // a blocking put must not block forever
  }
  void apply(Model& m) const override {
    if (!m.closed && !m.full()) m.items.push_back(item);
  }
  void run(const Model& m, QueueSut<Q>& s) const override {
    const Reply r = s.call(worker, op, item);
    if (m.closed) RC_ASSERT(r.status == Status::closed);
    else if (m.full()) RC_ASSERT(r.status == Status::no);
    else RC_ASSERT(r.status == Status::ok);
  }
  void show(std::ostream& os) const override {
    os << "put#" << static_cast<int>(op) << "(" << item.size() << " bytes) in worker " << worker;
  }
};

template <class Q>
struct GetCmd : Cmd<Q> {
  Op op = *rc::gen::element(Op::get, Op::try_get, Op::try_get_for);
  int worker = gen_worker();
  void checkPreconditions(const Model& m) const override {
    RC_PRE(op != Op::get || m.closed || !m.items.empty());  // a blocking get must not block forever
  }
  void apply(Model& m) const override {
    if (!m.items.empty()) m.items.pop_front();
  }
  void run(const Model& m, QueueSut<Q>& s) const override {
    const Reply r = s.call(worker, op, {});
    if (!m.items.empty()) {
      RC_ASSERT(r.status == Status::ok);
      RC_ASSERT(r.item == m.items.front());
    } else if (op == Op::get) {
      RC_ASSERT(r.status == Status::closed);  // closed and drained
    } else {
      RC_ASSERT(r.status == Status::no);
    }
  }
  void show(std::ostream& os) const override { os << "get#" << static_cast<int>(op) << " in worker " << worker; }
};

template <class Q>
struct CloseCmd : Cmd<Q> {
  int worker = gen_worker();
  void apply(Model& m) const override { m.closed = true; }
  void run(const Model&, QueueSut<Q>& s) const override { RC_ASSERT(s.call(worker, Op::close, {}).status == Status::ok); }
  void show(std::ostream& os) const override { os << "close in worker " << worker; }
};

template <class Q>
struct ObserveCmd : Cmd<Q> {
  int worker = gen_worker();
  void run(const Model& m, QueueSut<Q>& s) const override {
    const Reply r = s.call(worker, Op::observe, {});
    RC_ASSERT(r.size == m.items.size());  // quiescent: the snapshot is exact
    RC_ASSERT(r.empty == m.items.empty());
    RC_ASSERT(r.full == m.full());
    RC_ASSERT(r.closed == m.closed);
  }
  void show(std::ostream& os) const override { os << "observe in worker " << worker; }
};

struct TooLargeCmd : Cmd<mp::ByteQueue> {
  std::size_t n = *rc::gen::inRange<std::size_t>(kMaxMessage + 1, kMaxMessage + 40);
  int worker = gen_worker();
  void run(const Model&, QueueSut<mp::ByteQueue>& s) const override {
    // The argument is checked first: too large even on a closed queue.
    const Reply r = s.call(worker, Op::try_put, Item(n));
    RC_ASSERT(r.status == Status::too_large);
  }
  void show(std::ostream& os) const override { os << "put of " << n << " bytes in worker " << worker; }
};

template <class Q>
void check_queue(int workers) {
  const auto capacity = *rc::gen::inRange<std::size_t>(1, 6);
  QueueSut<Q> s(capacity, workers);
  if constexpr (std::is_same_v<Q, mp::ByteQueue>) {
    rc::state::check(Model{{}, capacity, false}, s,
                     rc::state::gen::execOneOfWithArgs<PutCmd<Q>, PutCmd<Q>, GetCmd<Q>, GetCmd<Q>, ObserveCmd<Q>,
                                                       CloseCmd<Q>, TooLargeCmd>());
  } else {
    rc::state::check(Model{{}, capacity, false}, s,
                     rc::state::gen::execOneOfWithArgs<PutCmd<Q>, PutCmd<Q>, GetCmd<Q>, GetCmd<Q>, ObserveCmd<Q>,
                                                       CloseCmd<Q>>());
  }
  RC_ASSERT(!s.broken);
}

}  // namespace

RC_GTEST_PROP(QueueModel, SingleProcess, ()) { check_queue<mp::Queue<int>>(0); }
RC_GTEST_PROP(QueueModel, CommandsFromSeveralProcesses, ()) { check_queue<mp::Queue<int>>(3); }
RC_GTEST_PROP(ByteQueueModel, SingleProcess, ()) { check_queue<mp::ByteQueue>(0); }
RC_GTEST_PROP(ByteQueueModel, CommandsFromSeveralProcesses, ()) { check_queue<mp::ByteQueue>(3); }
