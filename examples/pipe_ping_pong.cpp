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
#include <multiproc/pipe.hpp>
#include <multiproc/process.hpp>

#include <cstdio>
#include <functional>
#include <tuple>

namespace mp = multiproc;

namespace {

void proc_1(mp::Connection& pipe) {
  pipe.send_bytes("hello");
  std::printf("proc_1 received: %s\n", pipe.recv_string().c_str());
  std::fflush(stdout);
  pipe.send_bytes("what is your name?");
  std::printf("proc_1 received: %s\n", pipe.recv_string().c_str());
  std::fflush(stdout);
}

void proc_2(mp::Connection& pipe) {
  std::printf("proc_2 received: %s\n", pipe.recv_string().c_str());
  std::fflush(stdout);
  pipe.send_bytes("hello, too");
  std::printf("proc_2 received: %s\n", pipe.recv_string().c_str());
  std::fflush(stdout);
  pipe.send_bytes("I don't tell you!");
}

}  // namespace

int main() {
  auto pipe = mp::Pipe();
  std::printf("%zu\n", std::tuple_size_v<decltype(pipe)>);
  std::printf("<type 'tuple'>\n");  // a std::pair<Connection, Connection>: Python's 2-tuple
  std::fflush(stdout);
  mp::Process p1(proc_1, std::ref(pipe.first));
  mp::Process p2(proc_2, std::ref(pipe.second));
  p2.start();
  p1.start();
  p2.join();
  p1.join();
  return p1.exitcode() == 0 && p2.exitcode() == 0 ? 0 : 1;
}
