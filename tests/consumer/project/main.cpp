// A consumer's program: one arena shared with a forked child.
#include <multiproc/multiproc.hpp>

#include <atomic>
#include <cstdio>
#include <sys/wait.h>
#include <unistd.h>

int main() {
  auto arena = multiproc::Arena::create(1 << 20, "consumer");
  auto& counter = arena.make<std::atomic<int>>("counter", 0);
  const pid_t pid = fork();
  if (pid == 0) {
    auto again = multiproc::Arena::from_fd(arena.fd());
    again.find<std::atomic<int>>("counter")->fetch_add(41);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  counter.fetch_add(1);
  std::printf("consumer: counter = %d\n", counter.load());
  return counter.load() == 42 ? 0 : 1;
}
