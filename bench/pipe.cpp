// bench-pipe: multiproc::Connection (both backends) against raw sockets in the same run.
//
//   round trip, 8 B:        raw socketpair write/read ping-pong, raw pipe(2) pair, Connection
//   one-way streaming:      64 B and 4 KiB messages; the peer writes one write() per message and
//                           its reader takes whole 64 KiB reads; Connection sends with
//                           send_bytes (one message per call), with send_bytes on a coalescing
//                           connection (set_coalescing(true); the ack's recv flushes the rest)
//                           and with send_many (32 per call)
//   1 MiB transfer:         raw socketpair write()/read() of 1 MiB against send_bytes/recv_bytes_into
//
// Placement: the parent runs on CPU 0 and the child on CPU 1. Unpinned, a round trip on this
// 2-vCPU VM is bimodal — ~4 µs when both land on one CPU, ~30-60 µs when a cross-CPU wake-up
// (an IPI, a VM exit) is in the path — and ratios between runs would mean nothing.
//
// A streaming iteration is a batch of messages the receiver acknowledges (1 byte back) once it
// has them all, so throughput is what arrived, not what the socket buffer swallowed.
// At the end a table prints each result as a ratio to its peer from this same run.
//
//   ./build/bench/bench-pipe --benchmark_min_time=0.5 --benchmark_repetitions=3
// (with repetitions the ratio table uses the medians)
// The machine may be shared (2 vCPUs): compare ratios within one run, not absolute numbers.
#include "bench_util.hpp"

#include <multiproc/pipe.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <sched.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace mp = multiproc;

namespace {

void write_all(int fd, const void* p, std::size_t n) {
  auto* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = ::write(fd, c, n);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      std::perror("write");
      std::abort();
    }
    c += w;
    n -= static_cast<std::size_t>(w);
  }
}

/// Reads exactly n bytes; false at end of stream.
bool read_all(int fd, void* p, std::size_t n) {
  auto* c = static_cast<char*>(p);
  while (n > 0) {
    const ssize_t r = ::read(fd, c, n);
    if (r == 0) return false;
    if (r < 0) {
      if (errno == EINTR) continue;
      std::perror("read");
      std::abort();
    }
    c += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// Pins the calling process to one CPU (when there are two); restores the old mask on scope exit.
class Pin {
 public:
  explicit Pin(int cpu) {
    ok_ = ::sched_getaffinity(0, sizeof old_, &old_) == 0 && CPU_COUNT(&old_) >= 2;
    if (ok_) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      ok_ = ::sched_setaffinity(0, sizeof one, &one) == 0;
    }
  }
  ~Pin() {
    if (ok_) ::sched_setaffinity(0, sizeof old_, &old_);
  }
  Pin(const Pin&) = delete;
  Pin& operator=(const Pin&) = delete;

 private:
  cpu_set_t old_{};
  bool ok_ = false;
};

/// fork() with the parent on CPU 0 and the child on CPU 1 (on CPU 0 too with
/// MULTIPROC_BENCH_SAME_CPU=1: then a hand-off is a context switch, no cross-CPU wake-up, and
/// the software cost of each path shows without the VM's IPI latency).
pid_t fork_pinned() {
  static const bool same = std::getenv("MULTIPROC_BENCH_SAME_CPU") != nullptr;
  const pid_t pid = ::fork();
  if (pid == 0) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(same ? 0 : 1, &one);
    (void)::sched_setaffinity(0, sizeof one, &one);
  }
  return pid;
}

void reap(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
}

mp::Backend backend_of(int64_t arg) { return arg == 0 ? mp::Backend::io_uring : mp::Backend::syscalls; }
const char* backend_name(int64_t arg) { return arg == 0 ? "io_uring" : "syscalls"; }

// ---- round trip, 8 bytes ------------------------------------------------------------------------

void BM_RoundTrip_RawSocketpair(benchmark::State& state) {
  int sv[2];
  ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
  Pin pin(0);
  const pid_t pid = fork_pinned();
  if (pid == 0) {
    ::close(sv[0]);
    char buf[8];
    while (read_all(sv[1], buf, 8)) write_all(sv[1], buf, 8);
    ::_exit(0);
  }
  ::close(sv[1]);
  char buf[8] = {};
  for (auto _ : state) {
    write_all(sv[0], buf, 8);
    read_all(sv[0], buf, 8);
  }
  ::close(sv[0]);
  reap(pid);
}
BENCHMARK(BM_RoundTrip_RawSocketpair)->UseRealTime();

void BM_RoundTrip_RawPipe2(benchmark::State& state) {
  int down[2], up[2];
  ::pipe2(down, O_CLOEXEC);
  ::pipe2(up, O_CLOEXEC);
  Pin pin(0);
  const pid_t pid = fork_pinned();
  if (pid == 0) {
    ::close(down[1]);
    ::close(up[0]);
    char buf[8];
    while (read_all(down[0], buf, 8)) write_all(up[1], buf, 8);
    ::_exit(0);
  }
  ::close(down[0]);
  ::close(up[1]);
  char buf[8] = {};
  for (auto _ : state) {
    write_all(down[1], buf, 8);
    read_all(up[0], buf, 8);
  }
  ::close(down[1]);
  ::close(up[0]);
  reap(pid);
}
BENCHMARK(BM_RoundTrip_RawPipe2)->UseRealTime();

void BM_RoundTrip_Connection(benchmark::State& state) {
  auto [a, b] = mp::Pipe(true, backend_of(state.range(0)));
  Pin pin(0);
  const pid_t pid = fork_pinned();
  if (pid == 0) {
    a.close();
    std::byte buf[8];
    try {
      for (;;) b.send_bytes(std::span(buf, b.recv_bytes_into(buf)));
    } catch (const mp::Eof&) {
    }
    ::_exit(0);
  }
  b.close();
  std::byte buf[8] = {};
  for (auto _ : state) {
    a.send_bytes(buf);
    benchmark::DoNotOptimize(a.recv_bytes_into(buf));
  }
  a.close();
  reap(pid);
  state.SetLabel(backend_name(state.range(0)));
}
BENCHMARK(BM_RoundTrip_Connection)->Arg(0)->Arg(1)->UseRealTime();

// ---- one-way streaming --------------------------------------------------------------------------

std::size_t batch_for(std::size_t size) { return size <= 64 ? 4096 : size <= 4096 ? 512 : 16; }

// The peer: one write() per message; the reader takes whole 64 KiB reads and acks each batch.
void BM_Stream_RawWritePerMessage(benchmark::State& state) {
  const std::size_t size = static_cast<std::size_t>(state.range(0)), batch = batch_for(size);
  int sv[2];
  ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
  Pin pin(0);
  const pid_t pid = fork_pinned();
  if (pid == 0) {
    ::close(sv[0]);
    std::vector<char> buf(std::max<std::size_t>(64 * 1024, size));
    const std::size_t per_batch = size * batch;
    std::size_t got = 0;
    for (;;) {
      const ssize_t r = ::read(sv[1], buf.data(), std::min(buf.size(), per_batch - got));
      if (r <= 0) break;
      got += static_cast<std::size_t>(r);
      if (got == per_batch) {
        write_all(sv[1], "k", 1);
        got = 0;
      }
    }
    ::_exit(0);
  }
  ::close(sv[1]);
  std::vector<char> msg(size, 'x');
  char ack;
  for (auto _ : state) {
    for (std::size_t i = 0; i < batch; ++i) write_all(sv[0], msg.data(), size);
    read_all(sv[0], &ack, 1);
  }
  ::close(sv[0]);
  reap(pid);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * batch));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * batch * size));
}
BENCHMARK(BM_Stream_RawWritePerMessage)->Arg(64)->Arg(4096)->Arg(1 << 20)->UseRealTime();

// Connection: args (size, backend, messages per send call: 1 = send_bytes, N = send_many,
// 0 = send_bytes with coalescing on).
void BM_Stream_Connection(benchmark::State& state) {
  const std::size_t size = static_cast<std::size_t>(state.range(0)), batch = batch_for(size);
  const std::size_t per_call = static_cast<std::size_t>(state.range(2));
  auto [a, b] = mp::Pipe(true, backend_of(state.range(1)));
  Pin pin(0);
  const pid_t pid = fork_pinned();
  if (pid == 0) {
    a.close();
    std::vector<std::byte> buf(size);
    try {
      for (;;) {
        for (std::size_t i = 0; i < batch; ++i) benchmark::DoNotOptimize(b.recv_bytes_into(buf));
        b.send_bytes("k");
      }
    } catch (const mp::Eof&) {
    }
    ::_exit(0);
  }
  b.close();
  std::vector<std::byte> msg(size, std::byte{'x'});
  std::vector<std::span<const std::byte>> group(per_call, std::span<const std::byte>(msg));
  std::byte ack[1];
  a.set_coalescing(per_call == 0);
  for (auto _ : state) {
    if (per_call <= 1) {
      for (std::size_t i = 0; i < batch; ++i) a.send_bytes(msg);
    } else {
      for (std::size_t i = 0; i < batch; i += per_call)
        a.send_bytes_many(std::span(group.data(), std::min(per_call, batch - i)));
    }
    a.recv_bytes_into(ack);
  }
  a.close();
  reap(pid);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * batch));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * batch * size));
  state.SetLabel(std::string(backend_name(state.range(1))) +
                 (per_call == 1 ? " send_bytes" : per_call == 0 ? " send_bytes coalesced" : " send_many"));
}
BENCHMARK(BM_Stream_Connection)
    ->Args({64, 0, 1})->Args({64, 1, 1})->Args({64, 0, 0})->Args({64, 1, 0})->Args({64, 0, 32})->Args({64, 1, 32})
    ->Args({4096, 0, 1})->Args({4096, 1, 1})->Args({4096, 0, 0})->Args({4096, 1, 0})
    ->Args({1 << 20, 0, 1})->Args({1 << 20, 1, 1})
    ->UseRealTime();

// ---- the ratio table ----------------------------------------------------------------------------

class Table : public bench::RatioReporter {
 public:
  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf("\nRatios in this run (target in brackets):\n");
    const double rt_raw = find(time_, "BM_RoundTrip_RawSocketpair");
    for (int be = 0; be < 2; ++be) {
      const std::string suffix = "/" + std::to_string(be);
      const double rt = find(time_, "BM_RoundTrip_Connection" + suffix);
      print("round trip 8 B, " + std::string(backend_name(be)) + " / raw socketpair [<= 1.20]", rt / rt_raw);
      const double raw64 = find(items_, "BM_Stream_RawWritePerMessage/64");
      print("64 B stream, " + std::string(backend_name(be)) + " send_bytes / one write per message [>= 2]",
            find(items_, "BM_Stream_Connection/64/" + std::to_string(be) + "/1") / raw64);
      print("64 B stream, " + std::string(backend_name(be)) + " send_bytes coalesced / one write per message [>= 2]",
            find(items_, "BM_Stream_Connection/64/" + std::to_string(be) + "/0") / raw64);
      print("64 B stream, " + std::string(backend_name(be)) + " send_many(32) / one write per message [>= 2]",
            find(items_, "BM_Stream_Connection/64/" + std::to_string(be) + "/32") / raw64);
      const double raw4k = find(items_, "BM_Stream_RawWritePerMessage/4096");
      print("4 KiB stream, " + std::string(backend_name(be)) + " send_bytes / one write per message",
            find(items_, "BM_Stream_Connection/4096/" + std::to_string(be) + "/1") / raw4k);
      print("4 KiB stream, " + std::string(backend_name(be)) + " send_bytes coalesced / one write per message",
            find(items_, "BM_Stream_Connection/4096/" + std::to_string(be) + "/0") / raw4k);
      print("1 MiB transfer, " + std::string(backend_name(be)) + " / raw socketpair [>= 0.90]",
            find(bytes_, "BM_Stream_Connection/1048576/" + std::to_string(be) + "/1") /
                find(bytes_, "BM_Stream_RawWritePerMessage/1048576"));
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);  // the raw peers use write(): a dead reader must not kill the run
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  Table reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
