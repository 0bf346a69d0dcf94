// The JoinableQueue programs joinable_queue.cpp does not cover (004, 002).
//
// 004-37 基于可连接队列实现的生产者消费者模型:
//   def consumer(q):
//       while True: info = q.get(); print("我吃到了" + info); q.task_done()
//   def productor(q):
//       for i in range(20): q.put(f"包子{str(i + 1)}号")
//       q.join()              # until the consumer has task_done() all 20
//   q = JoinableQueue(10); p_pro = Process(productor); p_con = Process(consumer)
//   p_con.daemon = True; p_pro.start(); p_con.start(); p_pro.join()
//   -> 我吃到了包子1号 .. 我吃到了包子20号; the daemon consumer ends with the main program
//
// 002-15 Consumer(multiprocessing.Process) with a task JoinableQueue and a result Queue:
//   each consumer's run() gets Task objects, prints "<name>: a * b", calls the task (sleep
//   0.1 s, returns "a * b = ab"), task_done()s it and puts the answer on the result queue; a
//   None (one per consumer) is the poison pill: "<name>: Exiting". The main process prints
//   "Creating N consumers" (N = cpu_count()), puts Task(i, i) for i < 10 and the pills,
//   tasks.join()s, then prints "Result: i * i = i²" for the ten results.
//
// Differences: the Task object is a trivially copyable struct with operator() (it crosses a
// Queue by value, not pickled); None is an empty std::optional<Task>. "Consumer(Process)" is
// a class with run() started as a Process, named Consumer-1.. as Python names instances of a
// Process subclass. The tasks sleep 20 ms instead of 0.1 s. 004-37 runs as a child "main
// program" so its daemon consumer ends with it, as in Python.
// Exits 0 only if both printed the Python programs' lines.
#include "transcript.hpp"

#include <multiproc/arena.hpp>
#include <multiproc/fixed_string.hpp>
#include <multiproc/process.hpp>
#include <multiproc/queue.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace mp = multiproc;
using tutorial::expect;
using tutorial::expect_unordered;
using tutorial::say;
using tutorial::section;
using tutorial::str;
using namespace std::chrono_literals;
using Str = mp::FixedString<32>;

namespace {

// ---- 004-37 ------------------------------------------------------------------------------------

bool producer_consumer_joined(mp::Arena& arena) {
  const int mark = section("004-37 基于可连接队列实现的生产者消费者模型");
  auto& q = arena.make<mp::JoinableQueue<Str>>("q", 10);
  mp::Process program([&q] {
    mp::Process p_pro(
        [](mp::JoinableQueue<Str>& qq) {
          for (int i = 0; i < 20; ++i) qq.put(Str("包子" + std::to_string(i + 1) + "号"));
          qq.join();  // 阻塞等待消费者消费完队列中所有的数据（即join计数为0）再解除阻塞
        },
        std::ref(q));
    mp::Process p_con(
        [](mp::JoinableQueue<Str>& qq) {
          for (;;) {
            const Str info = qq.get();
            say("我吃到了%s", info.str().c_str());
            qq.task_done();  // 没吃到一个包子就告诉生产者一下
          }
        },
        std::ref(q));
    p_con.daemon(true);  // 将消费者设置成守护进程
    p_pro.start();
    p_con.start();
    p_pro.join();  // 主进程等待生产者全部结束再结束
    return p_pro.exitcode() == 0 ? 0 : 1;
  });  // the main program's end: the daemon consumer, waiting in get(), is killed
  program.start();
  program.join();
  std::vector<std::string> want;
  for (int i = 0; i < 20; ++i) want.push_back("我吃到了包子" + std::to_string(i + 1) + "号");
  return expect(mark, want, "004-37") && program.exitcode() == 0 && q.unfinished_tasks() == 0;
}

// ---- 002-15 ------------------------------------------------------------------------------------

struct Task {
  int a, b;
  Str operator()() const {  // __call__
    std::this_thread::sleep_for(20ms);  // pretend to take some time to do the work
    return Str(str("%d * %d = %d", a, b, a * b));
  }
  std::string text() const { return str("%d * %d", a, b); }  // __str__
};
using TaskQueue = mp::JoinableQueue<std::optional<Task>>;

class Consumer {  // class Consumer(multiprocessing.Process)
 public:
  Consumer(TaskQueue& task_queue, mp::Queue<Str>& result_queue) : task_queue_(&task_queue), result_queue_(&result_queue) {}
  void run() const {  // 重写原进程的run方法
    const std::string proc_name = mp::current_process().name;
    for (;;) {
      const std::optional<Task> next_task = task_queue_->get();  // 从任务队列取任务
      if (!next_task) {                                          // Poison pill means shutdown
        say("%s: Exiting", proc_name.c_str());
        task_queue_->task_done();
        break;
      }
      say("%s: %s", proc_name.c_str(), next_task->text().c_str());
      const Str answer = (*next_task)();
      task_queue_->task_done();
      result_queue_->put(answer);  // 把任务执行的结果存入到结果队列中
    }
  }

 private:
  TaskQueue* task_queue_;  // the queues live in an Arena mapped before the fork: same address
  mp::Queue<Str>* result_queue_;
};

bool consumer_class(mp::Arena& arena) {
  const int mark = section("002-15 Queue&JoinableQueue: Consumer(Process)");
  auto& tasks = arena.make<TaskQueue>("tasks", 32);
  auto& results = arena.make<mp::Queue<Str>>("results", 32);
  const unsigned num_consumers = mp::cpu_count();
  say("Creating %u consumers", num_consumers);
  std::vector<mp::Process> consumers;
  for (unsigned i = 0; i < num_consumers; ++i)
    consumers.emplace_back(&Consumer::run, Consumer(tasks, results)).name("Consumer-" + std::to_string(i + 1));
  for (auto& w : consumers) w.start();  // 会执行类中的run方法
  int num_jobs = 10;
  for (int i = 0; i < num_jobs; ++i) tasks.put(Task{i, i});
  for (unsigned i = 0; i < num_consumers; ++i) tasks.put(std::nullopt);  // a poison pill for each consumer
  tasks.join();  // 等待所有任务执行结束
  const int joined = tutorial::Transcript::get().size();
  while (num_jobs) {
    say("Result: %s", results.get().str().c_str());
    --num_jobs;
  }
  bool ok = true;
  for (auto& w : consumers) {
    w.join();
    ok = ok && w.exitcode() == 0;
  }
  // Which consumer took which task varies: compare with the consumer names taken out.
  std::vector<std::string> work, want_work, want_results;
  for (const auto& line : tutorial::Transcript::get().since(mark + 1, joined)) work.push_back(line.substr(line.find(": ")));
  for (int i = 0; i < 10; ++i) {
    want_work.push_back(str(": %d * %d", i, i));
    want_results.push_back(str("Result: %d * %d = %d", i, i, i * i));
  }
  for (unsigned i = 0; i < num_consumers; ++i) want_work.push_back(": Exiting");
  std::sort(work.begin(), work.end());
  std::sort(want_work.begin(), want_work.end());
  if (work != want_work) tutorial::dump("002-15: the consumers' lines", tutorial::Transcript::get().since(mark + 1, joined));
  return expect(mark, {str("Creating %u consumers", num_consumers)}, "002-15 (first line)", mark + 1) &&
         work == want_work && expect_unordered(joined, want_results, "002-15 (results)") && ok;
}

}  // namespace

int main() {
  tutorial::Transcript::open();
  mp::Arena arena = mp::Arena::create(1 << 20);
  bool ok = producer_consumer_joined(arena);
  ok = consumer_class(arena) && ok;
  return ok ? 0 : 1;
}
