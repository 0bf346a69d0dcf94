// An unrelated program for pipe_arena_test.cpp: started by exec (it inherits no memory and no fd
// of the test), it connects to the test's Listener, receives the Arena's fd, maps it with
// Arena::from_fd and uses the objects in it.
//   usage: pipe-arena-peer ADDRESS
#include <multiproc/arena.hpp>
#include <multiproc/pipe.hpp>

#include "arena_board.hpp"

#include <cstdio>
#include <unistd.h>

namespace mp = multiproc;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s ADDRESS\n", argv[0]);
    return 2;
  }
  try {
    mp::Connection c = mp::Client(argv[1]);
    const int fd = c.recv_fd();
    mp::Arena arena = mp::Arena::from_fd(fd);  // dup()s it
    ::close(fd);
    auto* board = arena.find<pipe_test::Board>("board");
    if (board == nullptr) {
      c.send_bytes("no board in the arena");
      return 3;
    }
    for (std::uint64_t i = 0; i < pipe_test::kHitsPerProcess; ++i) board->hits.fetch_add(1);
    std::snprintf(board->note, sizeof board->note, "written by pid %d", static_cast<int>(::getpid()));
    board->writer_pid.store(static_cast<std::int32_t>(::getpid()));
    arena.make<std::uint64_t>("answer", 42u);  // and allocate from the shared heap
    c.send_bytes("done");
    return c.recv_string() == "bye" ? 0 : 4;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pipe-arena-peer: %s\n", e.what());
    return 1;
  }
}
