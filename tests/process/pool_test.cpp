// Pool, Future and Executor with real worker processes: results in order, task errors,
// callbacks (once, on the handler thread), close/join, imap, Executor, argument checks.
#include <multiproc/pool.hpp>

#include <gtest/gtest.h>
#include "mptest.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <mutex>
#include <numeric>
#include <set>
#include <thread>
#include <tuple>
#include <unistd.h>
#include <utility>
#include <vector>

namespace mp = multiproc;
using namespace std::chrono_literals;

namespace {

int square(int x) { return x * x; }
int add(int a, int b) { return a + b; }
long mul3(int a, long b, short c) { return a * b * c; }
int throws_runtime(int x) {
  if (x == 3) throw std::runtime_error("three is not welcome");
  return x;
}
int throws_error(int) { throw mp::Error(mp::errc::timeout, "waited too long"); }
int throws_int(int) { throw 42; }
void nothing() {}
int sleepy(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}

struct Big {
  std::array<std::uint64_t, 600> v;  // 4.8 KB each way
};
Big reverse_big(Big b) {
  std::reverse(b.v.begin(), b.v.end());
  return b;
}

int g_initialized = 0;
void init_worker() { g_initialized = 7; }
int read_initialized(int) { return g_initialized; }

}  // namespace

TEST(Pool, ZeroProcessesThrows) {
  EXPECT_THROW(mp::Pool(0), mp::Error);
  EXPECT_THROW(mp::Executor(0), mp::Error);
}

TEST(Pool, MapKeepsInputOrder) {
  mp::Pool pool(2);
  std::vector<int> in(1000);
  std::iota(in.begin(), in.end(), -500);
  const std::vector<int> out = pool.map(square, in);
  ASSERT_EQ(out.size(), in.size());
  for (std::size_t i = 0; i < in.size(); ++i) EXPECT_EQ(out[i], in[i] * in[i]);
  EXPECT_TRUE(pool.map(square, std::vector<int>{}).empty());
}

TEST(Pool, MapAcceptsAnyInputRangeAndLambdas) {
  mp::Pool pool(2);
  auto out = pool.map([](int x) { return x + 0.5; }, std::views::iota(0, 50));
  ASSERT_EQ(out.size(), 50u);
  EXPECT_EQ(out[49], 49.5);
  const int arr[] = {3, 1, 2};
  EXPECT_EQ(pool.map(square, arr), (std::vector<int>{9, 1, 4}));
}

TEST(Pool, StarmapApplyAndMapAsync) {
  mp::Pool pool(2);
  std::vector<std::pair<int, int>> pairs{{1, 2}, {3, 4}, {5, 6}};
  EXPECT_EQ(pool.starmap(add, pairs), (std::vector<int>{3, 7, 11}));
  std::vector<std::tuple<int, long, short>> triples{{2, 3L, short{4}}, {1, 1L, short{1}}};
  EXPECT_EQ(pool.starmap(mul3, triples), (std::vector<long>{24, 1}));
  EXPECT_EQ(pool.apply(add, 20, 22), 42);
  auto f = pool.map_async(square, std::vector<int>{1, 2, 3});
  EXPECT_EQ(f.get(), (std::vector<int>{1, 4, 9}));
  EXPECT_EQ(f.get(), (std::vector<int>{1, 4, 9})) << "get() may be called again";
  EXPECT_TRUE(f.ready());
  pool.apply_async(nothing).get();  // Future<void>
}

TEST(Pool, LargeArgumentsAndResultsTravelWhole) {
  mp::Pool pool(2);
  Big b;
  std::iota(b.v.begin(), b.v.end(), 1);
  Big r = pool.apply(reverse_big, b);
  EXPECT_EQ(r.v.front(), 600u);
  EXPECT_EQ(r.v.back(), 1u);
  std::vector<Big> many(20, b);
  auto out = pool.map(reverse_big, many);
  for (auto& x : out) EXPECT_EQ(x.v[0], 600u);
}

TEST(Pool, ImapInOrderAndUnordered) {
  mp::Pool pool(3, mp::PoolOptions{.chunksize = 3});
  std::vector<int> in(40);
  std::iota(in.begin(), in.end(), 0);
  std::vector<int> seen;
  for (int x : pool.imap(square, in)) seen.push_back(x);
  ASSERT_EQ(seen.size(), in.size());
  for (std::size_t i = 0; i < in.size(); ++i) EXPECT_EQ(seen[i], in[i] * in[i]);
  std::multiset<int> any;
  for (int x : pool.imap_unordered(square, in)) any.insert(x);
  EXPECT_EQ(any, std::multiset<int>(seen.begin(), seen.end()));
  static_assert(std::ranges::input_range<mp::ImapResult<int>>);
}

TEST(Pool, TaskExceptionReachesGetAsATaskError) {
  mp::Pool pool(2);
  auto f = pool.apply_async(throws_runtime, 3);
  try {
    f.get();
    FAIL() << "get() must throw";
  } catch (const mp::TaskError& e) {
    EXPECT_NE(std::string(e.what()).find("three is not welcome"), std::string::npos) << e.what();
    EXPECT_EQ(e.type(), "std::runtime_error");
    EXPECT_EQ(e.code(), mp::task_errc::exception);
  }
  EXPECT_TRUE(f.failed());
  // A library error keeps its code.
  try {
    pool.apply(throws_error, 0);
    FAIL();
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.code(), mp::errc::timeout);
    EXPECT_NE(std::string(e.what()).find("waited too long"), std::string::npos);
  }
  EXPECT_THROW(pool.apply(throws_int, 0), mp::TaskError);
  // map: the first failure fails the call; the pool goes on.
  EXPECT_THROW(pool.map(throws_runtime, std::vector<int>{1, 2, 3, 4}), mp::TaskError);
  EXPECT_EQ(pool.apply(add, 1, 1), 2);
}

TEST(Pool, CallbacksRunOnceOnTheHandlerThread) {
  struct Seen {
    std::mutex m;
    std::vector<int> values;
    std::set<std::thread::id> threads;
    int errors = 0;
  } seen;
  {
    mp::Pool pool(2);
    std::vector<mp::Future<int>> fs;
    for (int i = 0; i < 50; ++i) {
      fs.push_back(pool.apply_async(square, i));
      fs.back().then([&seen](int v) {
        std::lock_guard g(seen.m);
        seen.values.push_back(v);
        seen.threads.insert(std::this_thread::get_id());
      });
    }
    pool.apply_async(throws_runtime, 3).then([](int) { ADD_FAILURE() << "success callback on a failed task"; },
                                             [&seen](std::exception_ptr e) {
                                               std::lock_guard g(seen.m);
                                               try {
                                                 std::rethrow_exception(e);
                                               } catch (const mp::TaskError&) {
                                                 ++seen.errors;
                                               }
                                               seen.threads.insert(std::this_thread::get_id());
                                             });
    // then() on a Future that is already done: still once, still on the handler thread.
    fs[0].wait();
    fs[0].then([&seen](int v) {
      std::lock_guard g(seen.m);
      seen.values.push_back(100000 + v);
      seen.threads.insert(std::this_thread::get_id());
    });
    pool.close();
    pool.join();  // waits for the tasks and their callbacks
  }
  std::sort(seen.values.begin(), seen.values.end());
  ASSERT_EQ(seen.values.size(), 51u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(seen.values[i], i * i);
  EXPECT_EQ(seen.values[50], 100000);
  EXPECT_EQ(seen.errors, 1);
  EXPECT_EQ(seen.threads.size(), 1u) << "every callback runs on the one handler thread";
  EXPECT_EQ(seen.threads.count(std::this_thread::get_id()), 0u) << "not on the caller's thread";
}

TEST(Pool, GetInACallbackOnAnUnfinishedTaskThrowsInsteadOfDeadlocking) {
  mp::Pool pool(2);
  auto slow = pool.apply_async(sleepy, 300);
  std::atomic<int> outcome{0};
  pool.apply_async(square, 2).then([&](int) {
    try {
      slow.get();
      outcome = 1;
    } catch (const mp::Error& e) {
      outcome = e.code() == mp::errc::not_supported ? 2 : 3;
    }
  });
  EXPECT_EQ(slow.get(), 300);
  pool.close();
  pool.join();
  EXPECT_EQ(outcome.load(), 2);
}

TEST(Pool, GetForTimesOutNoEarlierThanTheDeadline) {
  mp::Pool pool(1);
  auto f = pool.apply_async(sleepy, 400);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(f.get_for(50ms).has_value());
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 50ms);
  EXPECT_FALSE(f.wait_for(10ms));
  auto v = f.get_for(30s);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(*v, 400);
}

TEST(Pool, CloseRejectsNewWorkAndJoinWaitsForQueuedWork) {
  mp::Pool pool(2);
  std::vector<mp::Future<int>> fs;
  for (int i = 0; i < 6; ++i) fs.push_back(pool.apply_async(sleepy, 30));
  EXPECT_THROW(pool.join(), mp::Error) << "join before close/terminate";
  pool.close();
  EXPECT_THROW(pool.apply_async(square, 1), mp::Error);
  pool.join();
  for (auto& f : fs) {
    EXPECT_TRUE(f.ready());
    EXPECT_EQ(f.get(), 30);
  }
  pool.terminate();  // after join: nothing to do
}

TEST(Pool, InitializerRunsInEveryWorker) {
  mp::PoolOptions o;
  o.initializer = init_worker;
  mp::Pool pool(2, o);
  for (int v : pool.map(read_initialized, std::vector<int>(20, 0))) EXPECT_EQ(v, 7);
  EXPECT_EQ(g_initialized, 0) << "the initializer runs in the workers, not here";
}

TEST(Pool, WorkersAreNamedAndAreDaemons) {
  mp::Pool pool(2);
  struct Name {
    char s[32];
  };
  Name n = pool.apply(+[](int) {
    Name out{};
    std::snprintf(out.s, sizeof out.s, "%s", mp::current_process().name.c_str());
    return out;
  }, 0);
  EXPECT_EQ(std::string(n.s).rfind("ForkPoolWorker-", 0), 0u) << n.s;
  // A task may not start a Process: workers are daemons.
  int code = pool.apply(+[](int) {
    try {
      mp::Process p([] {});
      p.start();
      p.join();
      return 0;
    } catch (const mp::Error& e) {
      return e.code() == mp::errc::not_supported ? 1 : 2;
    }
  }, 0);
  EXPECT_EQ(code, 1);
}

TEST(Executor, SubmitMapShutdown) {
  std::vector<int> in{1, 2, 3, 4};
  mp::Future<int> late;
  {
    mp::Executor ex(2);
    auto f = ex.submit(add, 40, 2);
    EXPECT_EQ(f.get(), 42);
    EXPECT_EQ(ex.map(square, in), (std::vector<int>{1, 4, 9, 16}));
    late = ex.submit(sleepy, 50);
    ex.shutdown(false);  // returns at once; the task still runs
    EXPECT_THROW(ex.submit(add, 1, 1), mp::Error);
  }  // the destructor waits (shutdown(true))
  EXPECT_TRUE(late.ready());
  EXPECT_EQ(late.get(), 50);
  mp::Executor ex2(1);
  auto f2 = ex2.submit(sleepy, 30);
  ex2.shutdown(true);
  EXPECT_TRUE(f2.ready());
}

TEST(Future, EmptyFutureThrows) {
  mp::Future<int> f;
  EXPECT_FALSE(f.valid());
  EXPECT_FALSE(f.ready());
  EXPECT_THROW(f.get(), mp::Error);
}
