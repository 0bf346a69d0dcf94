// An Arena passed to an unrelated process: the test exec()s a separate program
// (pipe-arena-peer, path in MULTIPROC_PIPE_ARENA_PEER) that shares no memory and no fd with it.
// The program connects with Client, receives the arena's fd with recv_fd, maps it with
// Arena::from_fd and uses the objects in it while this process uses them too.
#include <multiproc/arena.hpp>
#include <multiproc/pipe.hpp>

#include "arena_board.hpp"
#include "mptest.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <spawn.h>
#include <string>
#include <unistd.h>

extern char** environ;

namespace mp = multiproc;
using namespace std::chrono_literals;

namespace {

pid_t spawn_program(const std::string& path, const std::string& arg) {
  std::vector<char*> argv = {const_cast<char*>(path.c_str()), const_cast<char*>(arg.c_str()), nullptr};
  pid_t pid = -1;
  const int r = ::posix_spawn(&pid, path.c_str(), nullptr, nullptr, argv.data(), environ);
  if (r != 0) throw std::runtime_error("posix_spawn " + path + ": " + std::strerror(r));
  return pid;
}

}  // namespace

TEST(ArenaOverConnection, AnExecdProgramMapsTheArenaAndUsesIt) {
  const char* peer = std::getenv("MULTIPROC_PIPE_ARENA_PEER");
  ASSERT_NE(peer, nullptr) << "MULTIPROC_PIPE_ARENA_PEER must name the pipe-arena-peer program";
  mp::Arena arena = mp::Arena::create(1 << 20, "pipe-arena-test");
  auto& board = arena.make<pipe_test::Board>("board");
  const std::string address = "@mp-arena-" + std::to_string(::getpid());
  mp::Listener listener(address);

  const pid_t pid = spawn_program(peer, address);
  auto conn = listener.try_accept_for(30s);
  ASSERT_TRUE(conn.has_value()) << "the program never connected";
  conn->send_fd(arena.fd());
  for (std::uint64_t i = 0; i < pipe_test::kHitsPerProcess; ++i) board.hits.fetch_add(1);  // meanwhile, here
  ASSERT_TRUE(conn->poll(30s));
  EXPECT_EQ(conn->recv_string(), "done");

  EXPECT_EQ(board.hits.load(), 2 * pipe_test::kHitsPerProcess);
  EXPECT_EQ(board.writer_pid.load(), pid);
  EXPECT_EQ(std::string(board.note), "written by pid " + std::to_string(pid));
  const std::uint64_t* answer = arena.find<std::uint64_t>("answer");
  ASSERT_NE(answer, nullptr);
  EXPECT_EQ(*answer, 42u);
  arena.check();

  conn->send_bytes("bye");
  EXPECT_EQ(mptest::wait_exit(pid), 0);
}

TEST(ArenaOverConnection, AnFdThatIsNotAnArenaIsRefusedByFromFd) {
  auto [a, b] = mp::Pipe();
  const int memfd = ::memfd_create("not-an-arena", MFD_CLOEXEC);
  ASSERT_EQ(::ftruncate(memfd, 1 << 16), 0);
  a.send_fd(memfd);
  const int got = b.recv_fd();
  try {
    (void)mp::Arena::from_fd(got);
    ADD_FAILURE() << "from_fd accepted a plain memfd";
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.code(), mp::errc::bad_arena);
  }
  ::close(got);
  ::close(memfd);
}
