// Tutorial 002, "进程同步(使用管道-Pipe)": two processes talk over the two ends of one Pipe.
//
//   def proc_1(pipe):                              def proc_2(pipe):
//       pipe.send('hello')                             print 'proc_2 received: %s' % pipe.recv()
//       print 'proc_1 received: %s' % pipe.recv()      pipe.send('hello, too')
//       pipe.send("what is your name?")                print 'proc_2 received: %s' % pipe.recv()
//       print 'proc_1 received: %s' % pipe.recv()      pipe.send("I don't tell you!")
//   pipe = mp.Pipe(); print len(pipe); print type(pipe)
//   p1 = Process(target=proc_1, args=(pipe[0],)); p2 = Process(target=proc_2, args=(pipe[1],))
//   p2.start(); p1.start(); p2.join(); p1.join()
//
// Output:
//   2
//   <type 'tuple'>
//   proc_2 received: hello
//   proc_1 received: hello, too
//   proc_2 received: what is your name?
//   proc_1 received: I don't tell you!
// Exits 0 only if it printed exactly these lines (transcript.hpp).
#include "transcript.hpp"

#include <multiproc/pipe.hpp>
#include <multiproc/process.hpp>

#include <cstdio>
#include <functional>
#include <tuple>

namespace mp = multiproc;
using tutorial::say;

namespace {

void proc_1(mp::Connection& pipe) {
  pipe.send_bytes("hello");
  say("proc_1 received: %s", pipe.recv_string().c_str());
  pipe.send_bytes("what is your name?");
  say("proc_1 received: %s", pipe.recv_string().c_str());
}

void proc_2(mp::Connection& pipe) {
  say("proc_2 received: %s", pipe.recv_string().c_str());
  pipe.send_bytes("hello, too");
  say("proc_2 received: %s", pipe.recv_string().c_str());
  pipe.send_bytes("I don't tell you!");
}

}  // namespace

int main() {
  tutorial::Transcript::open();
  auto pipe = mp::Pipe();
  say("%zu", std::tuple_size_v<decltype(pipe)>);
  say("<type 'tuple'>");  // a std::pair<Connection, Connection>: Python's 2-tuple
  mp::Process p1(proc_1, std::ref(pipe.first));
  mp::Process p2(proc_2, std::ref(pipe.second));
  p2.start();
  p1.start();
  p2.join();
  p1.join();
  const bool printed = tutorial::expect(0,
                                        {"2", "<type 'tuple'>", "proc_2 received: hello", "proc_1 received: hello, too",
                                         "proc_2 received: what is your name?", "proc_1 received: I don't tell you!"},
                                        "002-19");
  return printed && p1.exitcode() == 0 && p2.exitcode() == 0 ? 0 : 1;
}
