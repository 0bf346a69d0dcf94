// core/unix_socket.hpp: pairs, gathered sends, fd passing, truncation flags, addresses (paths and
// abstract names), stale socket files, and peer credentials across processes.
#include <multiproc/fd.hpp>
#include <multiproc/unix_socket.hpp>

#include <gtest/gtest.h>
#include "mptest.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace mp = multiproc;
using namespace std::chrono_literals;

namespace {

bool is_cloexec(int fd) { return (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0; }

iovec piece(const void* p, std::size_t n) { return {const_cast<void*>(p), n}; }

std::string unique_name(const char* what) {
  return std::string("multiproc-unix-socket-test-") + what + "-" + std::to_string(::getpid());
}

/// A listening socket on `address` (non-blocking after unix_listen).
mp::UniqueFd listening(const mp::UnixAddress& a) {
  mp::UniqueFd l(mp::unix_socket());
  EXPECT_TRUE(l);
  EXPECT_EQ(mp::unix_bind(l.get(), a), 0);
  EXPECT_EQ(mp::unix_listen(l.get(), 8), 0);
  return l;
}

}  // namespace

TEST(UnixSocket, PairIsConnectedDuplexAndCloexec) {
  mp::UniqueFd a, b;
  ASSERT_EQ(mp::unix_socketpair(a, b), 0);
  EXPECT_TRUE(is_cloexec(a.get()));
  EXPECT_TRUE(is_cloexec(b.get()));
  // A gathered send arrives as one byte stream.
  const char x[] = "abc", y[] = "defg";
  const iovec out[2] = {piece(x, 3), piece(y, 4)};
  EXPECT_EQ(mp::unix_send(a.get(), out), 7);
  char buf[16] = {};
  const iovec in = piece(buf, sizeof buf);
  mp::UnixRecvResult r;
  ASSERT_EQ(mp::unix_recv(b.get(), {&in, 1}, r), 0);
  EXPECT_EQ(r.bytes, 7u);
  EXPECT_EQ(std::string(buf, r.bytes), "abcdefg");
  EXPECT_EQ(r.nfds, 0);
  EXPECT_FALSE(r.fds_truncated);
  EXPECT_FALSE(r.data_truncated);
  // And back the other way.
  EXPECT_EQ(mp::unix_send(b.get(), {&out[1], 1}), 4);
  mp::UnixRecvResult back;
  ASSERT_EQ(mp::unix_recv(a.get(), {&in, 1}, back), 0);
  EXPECT_EQ(std::string(buf, back.bytes), "defg");
}

TEST(UnixSocket, EmptyTryIsEagainAndAClosedPeerIsEndOfStream) {
  mp::UniqueFd a, b;
  ASSERT_EQ(mp::unix_socketpair(a, b), 0);
  char buf[4];
  const iovec in = piece(buf, sizeof buf);
  mp::UnixRecvResult r;
  EXPECT_EQ(mp::unix_recv(b.get(), {&in, 1}, r, MSG_DONTWAIT), -EAGAIN);
  a.reset();
  ASSERT_EQ(mp::unix_recv(b.get(), {&in, 1}, r), 0);
  EXPECT_EQ(r.bytes, 0u);
}

TEST(UnixSocket, SendToAGonePeerIsEpipeNotSigpipe) {
  mp::UniqueFd a, b;
  ASSERT_EQ(mp::unix_socketpair(a, b), 0);
  b.reset();
  const char x = 'x';
  const iovec out = piece(&x, 1);
  EXPECT_EQ(mp::unix_send(a.get(), {&out, 1}), -EPIPE);  // the process is still alive to see it
  const int fd = a.get();
  EXPECT_EQ(mp::unix_send(a.get(), {&out, 1}, {&fd, 1}), -EPIPE);  // the sendmsg path too
}

TEST(UnixSocket, OneWayPairSendsOnlyFromSendEnd) {
  mp::UniqueFd r, s;
  ASSERT_EQ(mp::unix_socketpair_oneway(r, s), 0);
  const char x[] = "hi";
  const iovec out = piece(x, 2);
  EXPECT_EQ(mp::unix_send(r.get(), {&out, 1}), -EPIPE);
  EXPECT_EQ(mp::unix_send(s.get(), {&out, 1}), 2);
  char buf[4];
  const iovec in = piece(buf, sizeof buf);
  mp::UnixRecvResult got;
  ASSERT_EQ(mp::unix_recv(r.get(), {&in, 1}, got), 0);
  EXPECT_EQ(std::string(buf, got.bytes), "hi");
  mp::UnixRecvResult none;  // SHUT_RD: the send end reads end-of-stream at once
  ASSERT_EQ(mp::unix_recv(s.get(), {&in, 1}, none, MSG_DONTWAIT), 0);
  EXPECT_EQ(none.bytes, 0u);
}

TEST(UnixSocket, PassesDescriptorsThatStayUsableAndCloexec) {
  mp::UniqueFd a, b;
  ASSERT_EQ(mp::unix_socketpair(a, b), 0);
  int p1[2], p2[2];
  ASSERT_EQ(::pipe(p1), 0);
  ASSERT_EQ(::pipe(p2), 0);
  const mp::UniqueFd r1(p1[0]), w1(p1[1]), r2(p2[0]), w2(p2[1]);
  const int pass[2] = {r1.get(), r2.get()};
  const char x = 'm';
  const iovec out = piece(&x, 1);
  ASSERT_EQ(mp::unix_send(a.get(), {&out, 1}, pass), 1);
  char c = 0;
  const iovec in = piece(&c, 1);
  mp::UnixRecvResult r;
  ASSERT_EQ(mp::unix_recv(b.get(), {&in, 1}, r), 0);
  EXPECT_EQ(r.bytes, 1u);
  EXPECT_EQ(c, 'm');
  ASSERT_EQ(r.nfds, 2);
  EXPECT_FALSE(r.fds_truncated);
  const mp::UniqueFd got1(r.fds[0]), got2(r.fds[1]);
  EXPECT_NE(got1.get(), r1.get());
  EXPECT_TRUE(is_cloexec(got1.get()));
  EXPECT_TRUE(is_cloexec(got2.get()));
  // They are the same pipes: what goes in at the write ends comes out of the received fds.
  ASSERT_EQ(::write(w1.get(), "1", 1), 1);
  ASSERT_EQ(::write(w2.get(), "2", 1), 1);
  char d = 0;
  ASSERT_EQ(::read(got1.get(), &d, 1), 1);
  EXPECT_EQ(d, '1');
  ASSERT_EQ(::read(got2.get(), &d, 1), 1);
  EXPECT_EQ(d, '2');
}

TEST(UnixSocket, RefusesToSendMoreDescriptorsThanTheLimit) {
  mp::UniqueFd a, b;
  ASSERT_EQ(mp::unix_socketpair(a, b), 0);
  int many[mp::kMaxPassedFds + 1];
  for (int& fd : many) fd = a.get();
  const char x = 'x';
  const iovec out = piece(&x, 1);
  EXPECT_EQ(mp::unix_send(a.get(), {&out, 1}, many), -EINVAL);
  mp::UnixRecvResult r;
  char c;
  const iovec in = piece(&c, 1);
  EXPECT_EQ(mp::unix_recv(b.get(), {&in, 1}, r, MSG_DONTWAIT), -EAGAIN);  // nothing went out
}

TEST(UnixSocket, FlagsDescriptorsThatDidNotFitAndLeaksNone) {
  mp::UniqueFd a, b;
  ASSERT_EQ(mp::unix_socketpair(a, b), 0);
  // A peer that is not us sends more fds than a receive has room for (raw sendmsg).
  constexpr int n = static_cast<int>(mp::kMaxPassedFds) + 4;
  int fds[n];
  for (int& fd : fds) fd = a.get();
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof fds)] = {};
  char x = 'x';
  iovec v = piece(&x, 1);
  msghdr msg{};
  msg.msg_iov = &v;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof fds);
  std::memcpy(CMSG_DATA(c), fds, sizeof fds);
  ASSERT_EQ(::sendmsg(a.get(), &msg, 0), 1);

  const int probe_before = mp::dup_cloexec(a.get());  // the lowest free descriptor number now
  ASSERT_GE(probe_before, 0);
  mp::close_fd(probe_before);
  char got = 0;
  const iovec in = piece(&got, 1);
  mp::UnixRecvResult r;
  ASSERT_EQ(mp::unix_recv(b.get(), {&in, 1}, r), 0);
  EXPECT_EQ(r.bytes, 1u);
  EXPECT_TRUE(r.fds_truncated);
  EXPECT_LE(r.nfds, static_cast<int>(mp::kMaxPassedFds));
  EXPECT_GT(r.nfds, 0);
  for (int i = 0; i < r.nfds; ++i) mp::close_fd(r.fds[i]);
  // Every descriptor that arrived is accounted for: the lowest free number is free again.
  const int probe_after = mp::dup_cloexec(a.get());
  EXPECT_EQ(probe_after, probe_before);
  mp::close_fd(probe_after);
}

TEST(UnixSocket, FlagsADatagramCutShort) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  const mp::UniqueFd a(sv[0]), b(sv[1]);
  const char x[] = "0123456789";
  const iovec out = piece(x, 10);
  ASSERT_EQ(mp::unix_send(a.get(), {&out, 1}), 10);
  char buf[4];
  const iovec in = piece(buf, sizeof buf);
  mp::UnixRecvResult r;
  ASSERT_EQ(mp::unix_recv(b.get(), {&in, 1}, r), 0);
  EXPECT_EQ(r.bytes, 4u);
  EXPECT_TRUE(r.data_truncated);
  EXPECT_FALSE(r.fds_truncated);
  EXPECT_EQ(std::string(buf, 4), "0123");
}

TEST(UnixSocket, ParsesPathsAndAbstractNames) {
  mp::UnixAddress a;
  EXPECT_EQ(mp::UnixAddress::parse("", a), -EINVAL);
  EXPECT_EQ(mp::UnixAddress::parse("@", a), -EINVAL);
  EXPECT_EQ(mp::UnixAddress::parse(std::string(mp::UnixAddress::max_name() + 1, 'x'), a), -ENAMETOOLONG);
  EXPECT_EQ(mp::UnixAddress::parse("@" + std::string(mp::UnixAddress::max_name() + 1, 'x'), a), -ENAMETOOLONG);
  ASSERT_EQ(mp::UnixAddress::parse(std::string(mp::UnixAddress::max_name(), 'x'), a), 0);
  EXPECT_FALSE(a.abstract);
  ASSERT_EQ(mp::UnixAddress::parse("/tmp/s", a), 0);
  EXPECT_FALSE(a.abstract);
  EXPECT_STREQ(a.path(), "/tmp/s");
  EXPECT_EQ(a.len, offsetof(sockaddr_un, sun_path) + 7);  // with the NUL
  ASSERT_EQ(mp::UnixAddress::parse("@abc", a), 0);
  EXPECT_TRUE(a.abstract);
  EXPECT_EQ(a.path(), nullptr);
  EXPECT_EQ(a.addr.sun_path[0], '\0');
  EXPECT_EQ(std::string(a.addr.sun_path + 1, 3), "abc");
  EXPECT_EQ(a.len, offsetof(sockaddr_un, sun_path) + 4);  // no NUL
}

TEST(UnixSocket, AbstractListenAcceptConnectWithCredentials) {
  mp::UnixAddress a;
  ASSERT_EQ(mp::UnixAddress::parse("@" + unique_name("abstract"), a), 0);
  const mp::UniqueFd l = listening(a);
  ucred peer{};
  EXPECT_EQ(mp::unix_accept(l.get(), &peer), -EAGAIN);  // non-blocking: nobody yet
  // A second bind of the same abstract name is refused.
  const mp::UniqueFd again(mp::unix_socket());
  EXPECT_EQ(mp::unix_bind(again.get(), a), -EADDRINUSE);

  const mp::UniqueFd c(mp::unix_socket());
  ASSERT_EQ(mp::unix_connect(c.get(), a), 0);
  ASSERT_GT(mp::poll_one(l.get(), POLLIN, mp::Deadline::after(10s)), 0);
  const mp::UniqueFd s(mp::unix_accept(l.get(), &peer));
  ASSERT_TRUE(s);
  EXPECT_TRUE(is_cloexec(s.get()));
  EXPECT_EQ(peer.pid, ::getpid());
  EXPECT_EQ(peer.uid, ::geteuid());
  EXPECT_EQ(peer.gid, ::getegid());
  ucred listener{};
  ASSERT_EQ(mp::unix_peer_credentials(c.get(), listener), 0);
  EXPECT_EQ(listener.pid, ::getpid());
  // The accepted end talks to the client.
  const char x = 'q';
  const iovec out = piece(&x, 1);
  ASSERT_EQ(mp::unix_send(s.get(), {&out, 1}), 1);
  char got = 0;
  const iovec in = piece(&got, 1);
  mp::UnixRecvResult r;
  ASSERT_EQ(mp::unix_recv(c.get(), {&in, 1}, r), 0);
  EXPECT_EQ(got, 'q');
  EXPECT_EQ(mp::unix_shutdown(s.get(), SHUT_WR), 0);
  mp::UnixRecvResult eof;
  ASSERT_EQ(mp::unix_recv(c.get(), {&in, 1}, eof), 0);
  EXPECT_EQ(eof.bytes, 0u);
}

TEST(UnixSocket, AcceptReportsTheConnectingProcess) {
  mp::UnixAddress a;
  ASSERT_EQ(mp::UnixAddress::parse("@" + unique_name("creds"), a), 0);
  const mp::UniqueFd l = listening(a);
  const pid_t child = mptest::spawn([&] {
    const mp::UniqueFd c(mp::unix_socket());
    if (mp::unix_connect(c.get(), a) != 0) return 1;
    ucred parent{};
    if (mp::unix_peer_credentials(c.get(), parent) != 0 || parent.pid != ::getppid()) return 2;
    char byte;
    const iovec in = piece(&byte, 1);
    mp::UnixRecvResult r;  // wait until the parent has looked, then leave
    return mp::unix_recv(c.get(), {&in, 1}, r) == 0 ? 0 : 3;
  });
  ASSERT_GT(mp::poll_one(l.get(), POLLIN, mp::Deadline::after(30s)), 0);
  ucred peer{};
  const mp::UniqueFd s(mp::unix_accept(l.get(), &peer));
  ASSERT_TRUE(s);
  EXPECT_EQ(peer.pid, child);
  EXPECT_EQ(peer.uid, ::geteuid());
  ASSERT_EQ(mp::unix_shutdown(s.get(), SHUT_RDWR), 0);
  EXPECT_EQ(mptest::wait_exit(child), 0);
}

TEST(UnixSocket, PathBindReplacesAStaleFileButNotALiveListener) {
  const std::string path = "/tmp/" + unique_name("path") + ".sock";
  (void)::unlink(path.c_str());
  mp::UnixAddress a;
  ASSERT_EQ(mp::UnixAddress::parse(path, a), 0);

  const mp::UniqueFd nobody(mp::unix_socket());
  EXPECT_EQ(mp::unix_connect(nobody.get(), a), -ENOENT);
  {
    mp::UniqueFd crashed = listening(a);  // goes away without removing its file
  }
  struct stat st{};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  const mp::UniqueFd refused(mp::unix_socket());
  EXPECT_EQ(mp::unix_connect(refused.get(), a), -ECONNREFUSED);

  const mp::UniqueFd live = listening(a);  // the stale file was replaced
  const mp::UniqueFd second(mp::unix_socket());
  EXPECT_EQ(mp::unix_bind(second.get(), a), -EADDRINUSE);  // a live listener is left alone
  const mp::UniqueFd c(mp::unix_socket());
  EXPECT_EQ(mp::unix_connect(c.get(), a), 0);

  EXPECT_EQ(mp::unix_unlink(path.c_str()), 0);
  EXPECT_EQ(mp::unix_unlink(path.c_str()), -ENOENT);
  // A file that is not a socket is never removed.
  mp::UniqueFd plain(::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
  ASSERT_TRUE(plain);
  const mp::UniqueFd third(mp::unix_socket());
  EXPECT_EQ(mp::unix_bind(third.get(), a), -EADDRINUSE);
  EXPECT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(::unlink(path.c_str()), 0);
}
