// Tutorial 002, "Subprocess进程通信实例": run a shell command per line of ip.txt, collect its
// output and exit status, append "ip : 0" or "ip : 1" to ping.txt and print the output.
//
//   class Shell(object):
//       def runCmd(self, cmd):
//           res = subprocess.Popen(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
//           sout, serr = res.communicate()
//           return res.returncode, sout, serr, res.pid
//   shell = Shell()
//   ipList = open('e:\ip.txt').readlines(); fp = open('e:\ping.txt', 'a'); print ipList
//   for i in ipList:
//       i = i.strip(); result = shell.runCmd('ping ' + i)
//       fp.write(i + (' : 0' if result[0] == 0 else ' : 1') + ' ')
//       print result[1]
//
// This program is subprocess, not multiprocessing, and multiproc has no Popen: the port runs
// the command in a multiproc::Process whose target points its stdout and stderr at a pipe(2)
// and exec()s /bin/sh -c cmd; the parent reads the pipe to its end (communicate) and takes the
// return code from Process::exitcode(). A smoke test can neither rely on ping (it needs the
// network or CAP_NET_RAW) nor on e:\, so `ping` is a shell function standing in for it
// (127.x.x.x answers, anything else times out) and ip.txt / ping.txt are in a temporary
// directory.
//
// Output: ['127.0.0.1\n', '192.0.2.1\n', '127.0.0.2\n'], then each command's output followed by
// the empty line Python's print adds after output that already ends in a newline.
// Exits 0 only if the lines printed and ping.txt are the Python program's.
#include "transcript.hpp"

#include <multiproc/process.hpp>

#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace mp = multiproc;
using tutorial::expect;
using tutorial::say;
using tutorial::section;

namespace {

const char* const kFakePing =
    "ping() { case \"$1\" in 127.*) echo \"Reply from $1: bytes=32 time<1ms TTL=64\";; "
    "*) echo \"Request timed out: $1\"; return 1;; esac; }; ";

struct Result {
  int returncode;
  std::string sout;
  pid_t pid;
};

class Shell {
 public:
  // subprocess.Popen(cmd, shell=True, stdout=PIPE, stderr=STDOUT).communicate()
  Result runCmd(const std::string& cmd) const {
    int fds[2];
    if (::pipe(fds) != 0) return {-1, "", 0};
    mp::Process res(
        [](int read_end, int write_end, std::string command) {
          ::close(read_end);
          ::dup2(write_end, STDOUT_FILENO);
          ::dup2(write_end, STDERR_FILENO);
          ::close(write_end);
          const std::string script = kFakePing + command;
          ::execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
          return 127;  // exec failed
        },
        fds[0], fds[1], cmd);
    res.start();
    ::close(fds[1]);
    std::string sout;
    char buf[4096];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) sout.append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);
    res.join();
    return {res.exitcode().value_or(-1), sout, res.pid()};
  }
};

std::string strip(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  const auto e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

}  // namespace

int main() {
  tutorial::Transcript::open();
  char dir[] = "/tmp/multiproc-shell-XXXXXX";
  if (!::mkdtemp(dir)) return 1;
  const std::string ip_txt = std::string(dir) + "/ip.txt", ping_txt = std::string(dir) + "/ping.txt";
  std::ofstream(ip_txt) << "127.0.0.1\n192.0.2.1\n127.0.0.2\n";

  const int mark = section("002-25 Subprocess进程通信实例");
  Shell shell;
  std::vector<std::string> ipList;
  {
    std::ifstream fp(ip_txt);
    for (std::string line; std::getline(fp, line);) ipList.push_back(line + "\n");  // readlines()
  }
  std::ofstream fp(ping_txt, std::ios::app);
  std::string repr = "[";
  for (std::size_t k = 0; k < ipList.size(); ++k) repr += (k ? ", '" : "'") + strip(ipList[k]) + "\\n'";
  say("%s]", repr.c_str());  // print ipList
  for (const std::string& line : ipList) {
    const std::string i = strip(line);
    const Result result = shell.runCmd("ping " + i);
    fp << i << (result.returncode == 0 ? " : 0" : " : 1") << ' ';
    say("%s", result.sout.substr(0, result.sout.size() - (!result.sout.empty() && result.sout.back() == '\n')).c_str());
    if (!result.sout.empty() && result.sout.back() == '\n') say("%s", "");  // print's own newline after it
  }
  fp.close();

  std::stringstream written;
  written << std::ifstream(ping_txt).rdbuf();
  const bool ok = expect(mark,
                         {"['127.0.0.1\\n', '192.0.2.1\\n', '127.0.0.2\\n']", "Reply from 127.0.0.1: bytes=32 time<1ms TTL=64", "",
                          "Request timed out: 192.0.2.1", "", "Reply from 127.0.0.2: bytes=32 time<1ms TTL=64", ""},
                         "002-25") &&
                  written.str() == "127.0.0.1 : 0 192.0.2.1 : 1 127.0.0.2 : 0 ";
  if (written.str() != "127.0.0.1 : 0 192.0.2.1 : 1 127.0.0.2 : 0 ")
    std::fprintf(stderr, "output check failed: ping.txt holds \"%s\"\n", written.str().c_str());
  std::remove(ip_txt.c_str());
  std::remove(ping_txt.c_str());
  ::rmdir(dir);
  return ok ? 0 : 1;
}
