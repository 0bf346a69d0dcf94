// An Arena shared with a program that was started on its own — by exec, not fork — so it
// inherits neither the memory nor the fds of this one. It connects to a Listener, receives the
// arena's fd (Connection::recv_fd, SCM_RIGHTS), maps it with Arena::from_fd and works on the
// same objects. Python does this with multiprocessing.connection.Listener/Client and
// shared_memory.SharedMemory(name=...); here the memfd itself travels, so nothing is named in
// /dev/shm and nothing outlives the processes that hold it.
//
//   unrelated_process                 the server: makes the arena, starts the client, waits
//   unrelated_process --client ADDR   the client (what the server starts)
//
// Output:
//   server: the arena holds visits = 1
//   client: mapped the arena the server sent, visits = 1
//   client: visits = 2
//   server: the client is done, visits = 2
#include <multiproc/arena.hpp>
#include <multiproc/pipe.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <spawn.h>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace mp = multiproc;
using namespace std::chrono_literals;

namespace {

int client(const char* address) {
  mp::Connection server = mp::Client(address);
  const int fd = server.recv_fd();
  mp::Arena arena = mp::Arena::from_fd(fd);  // validates the memfd, then maps it (dup()s fd)
  ::close(fd);
  auto* visits = arena.find<std::atomic<long>>("visits");
  if (visits == nullptr) return 1;
  std::printf("client: mapped the arena the server sent, visits = %ld\n", visits->load());
  std::printf("client: visits = %ld\n", visits->fetch_add(1) + 1);
  std::fflush(stdout);
  server.send_bytes("done");
  return 0;
}

int server() {
  mp::Arena arena = mp::Arena::create(1 << 20, "unrelated-example");
  auto& visits = arena.make<std::atomic<long>>("visits", 1L);
  std::printf("server: the arena holds visits = %ld\n", visits.load());
  std::fflush(stdout);

  const std::string address = "@multiproc-unrelated-example-" + std::to_string(::getpid());
  mp::Listener listener(address);  // only processes of this user may connect

  // Start the client as a separate program (this binary, exec'd with --client).
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return 1;
  self[n] = '\0';
  char flag[] = "--client";
  char* argv[] = {self, flag, const_cast<char*>(address.c_str()), nullptr};
  pid_t pid;
  if (::posix_spawn(&pid, self, nullptr, nullptr, argv, environ) != 0) return 1;

  std::optional<mp::Connection> client = listener.try_accept_for(30s);
  int status = 0;
  if (!client) {
    ::waitpid(pid, &status, 0);
    return 1;
  }
  client->send_fd(arena.fd());
  const bool done = client->recv_string() == "done";
  std::printf("server: the client is done, visits = %ld\n", visits.load());
  ::waitpid(pid, &status, 0);
  return done && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc == 3 && std::strcmp(argv[1], "--client") == 0) return client(argv[2]);
    return server();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
