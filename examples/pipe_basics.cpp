// The tutorials' Pipe programs that pipe_ping_pong.cpp does not cover (004, 001).
//
// 004-31 管道, one process:
//   con1, con2 = Pipe(); con1.send("abc"); print(con2.recv()); con2.send(123); print(con1.recv())
//   -> abc / 123
// 004-32 管道, two processes: each side closes the end it does not use; the child prints what
//   it receives until recv() raises (the parent sent 0..9 and closed its end), then closes.
//   def func(con1, con2):
//       con1.close()
//       while True:
//           try: print(con2.recv())
//           except: con2.close(); break
//   con1, con2 = Pipe(); p = Process(target=func, args=(con1, con2)); p.start()
//   con2.close(); for i in range(10): con1.send(i); con1.close()
//   -> 0 .. 9
// 001-l 管道(Pipe): a producer process sends 0..9 into one end, a consumer process receives and
//   prints them from the other; the producer ends with an end signal (None), then both are joined.
//
// recv() of Python's "anything" is recv_string() for text and recv<T>() for a trivially
// copyable T; the end of the stream is multiproc::Eof (Python: EOFError). 001's code blocks
// were lost in the stored text: 001-l follows the prose ("生产者进程通过调用send方法将0~9的数字
// 发送到管道中,消费者进程通过调用recv方法从管道中获取数据,并将其打印出来。最后,调用send方法
// 发送结束信号,然后等待两个进程结束"); None is an empty std::optional<int>.
// Exits 0 only if every section printed the Python program's lines.
#include "transcript.hpp"

#include <multiproc/pipe.hpp>
#include <multiproc/process.hpp>

#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace mp = multiproc;
using tutorial::expect;
using tutorial::say;
using tutorial::section;
using tutorial::str;

namespace {

std::vector<std::string> zero_to_nine(const char* fmt) {
  std::vector<std::string> v;
  for (int i = 0; i < 10; ++i) v.push_back(str(fmt, i));
  return v;
}

bool one_process() {
  const int mark = section("004-31 在单进程中使用管道");
  auto [con1, con2] = mp::Pipe();
  con1.send_bytes("abc");
  say("%s", con2.recv_string().c_str());
  con2.send(123);
  say("%d", con1.recv<int>());
  return expect(mark, {"abc", "123"}, "004-31");
}

void func(mp::Connection& con1, mp::Connection& con2) {
  con1.close();  // 子进程中使用con2和主进程交互，所以con1可以关闭了
  for (;;) {
    try {
      say("%d", con2.recv<int>());  // 当主进程的con1发数据时，子进程要死循环的去接收
    } catch (const mp::Eof&) {      // 主进程的con1发完数据并关闭con1: 接收完了
      con2.close();
      break;
    }
  }
}

bool two_processes() {
  const int mark = section("004-32 在多进程中使用管道");
  auto [con1, con2] = mp::Pipe();
  mp::Process p(func, std::ref(con1), std::ref(con2));  // the child works on its own copies
  p.start();
  con2.close();  // 主进程中使用con1和子进程交互，所以con2可以关闭了
  for (int i = 0; i < 10; ++i) con1.send(i);  // 给子进程的con2发送数据
  con1.close();                               // 生产完数据，关闭父进程这一端的管道
  p.join();
  return expect(mark, zero_to_nine("%d"), "004-32") && p.exitcode() == 0;
}

bool producer_consumer() {
  const int mark = section("001-l 管道(Pipe)");
  auto [conn1, conn2] = mp::Pipe();
  mp::Process producer(
      [](mp::Connection& conn) {
        for (int i = 0; i < 10; ++i) conn.send(std::optional<int>(i));
        conn.send(std::optional<int>());  // 发送结束信号 (None)
      },
      std::ref(conn1));
  mp::Process consumer(
      [](mp::Connection& conn) {
        while (const auto item = conn.recv<std::optional<int>>()) say("消费者接收到: %d", *item);
      },
      std::ref(conn2));
  producer.start();
  consumer.start();
  producer.join();
  consumer.join();
  return expect(mark, zero_to_nine("消费者接收到: %d"), "001-l") && producer.exitcode() == 0 && consumer.exitcode() == 0;
}

}  // namespace

int main() {
  tutorial::Transcript::open();
  bool ok = one_process();
  ok = two_processes() && ok;
  ok = producer_consumer() && ok;
  return ok ? 0 : 1;
}
