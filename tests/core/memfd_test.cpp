#include <multiproc/error.hpp>
#include <multiproc/memfd.hpp>

#include <gtest/gtest.h>
#include "mptest.hpp"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <string>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

namespace mp = multiproc;
namespace seal = multiproc::memfd_seal;
using namespace std::chrono_literals;

namespace {

constexpr int kFixedSize = seal::grow | seal::shrink | seal::seal;

/// How many descriptors this process has open (entries of /proc/self/fd, minus the one listing it).
int open_fd_count() {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int n = 0;
  while (::readdir(d) != nullptr) ++n;
  ::closedir(d);
  return n - 3;  // ".", ".." and the directory's own descriptor
}

using mptest::catch_error;

/// True while [p, p + n) is mapped in this process (msync fails with ENOMEM once it is not).
bool mapped(const void* p, std::size_t n) { return ::msync(const_cast<void*>(p), n, MS_ASYNC) == 0; }

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

}  // namespace

TEST(Memfd, CreateSizesSealsAndClosesOnExec) {
  const mp::UniqueFd fd = mp::create_sealed_memfd("memfd-test", 3 * 4096, kFixedSize);
  ASSERT_TRUE(fd);
  EXPECT_EQ(mp::file_size(fd.get()), 3 * 4096);
  EXPECT_EQ(mp::memfd_seals(fd.get()), kFixedSize);
  EXPECT_TRUE(mp::is_memfd(fd.get()));
  EXPECT_EQ(mp::why_not_memfd(fd.get()), "");
  EXPECT_NE(::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC, 0);
  // The seals hold: the size can change neither way, and no seal can be added.
  EXPECT_EQ(::ftruncate(fd.get(), 4 * 4096), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(::ftruncate(fd.get(), 4096), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_WRITE), -1);
  EXPECT_EQ(mp::file_size(fd.get()), 3 * 4096);
  char link[256] = {};
  EXPECT_GT(::readlink(("/proc/self/fd/" + std::to_string(fd.get())).c_str(), link, sizeof link - 1), 0);
  EXPECT_TRUE(starts_with(link, "/memfd:memfd-test")) << link;
}

TEST(Memfd, NoSealsLeavesTheMemfdResizableAndSealable) {
  const mp::UniqueFd fd = mp::create_sealed_memfd("unsealed", 4096, 0);
  EXPECT_EQ(mp::memfd_seals(fd.get()), 0);
  EXPECT_EQ(::ftruncate(fd.get(), 8192), 0);
  EXPECT_EQ(mp::file_size(fd.get()), 8192);
  EXPECT_EQ(::fcntl(fd.get(), F_ADD_SEALS, seal::shrink), 0);
  EXPECT_EQ(mp::memfd_seals(fd.get()), seal::shrink);
}

TEST(Memfd, EachFailingStepIsNamedAndLeaksNoDescriptor) {
  const int before = open_fd_count();
  auto e = catch_error([] { (void)mp::create_sealed_memfd(std::string(300, 'n'), 4096, 0, "Test::make"); });
  EXPECT_EQ(e.code(), std::error_code(EINVAL, std::system_category())) << e.what();
  EXPECT_TRUE(starts_with(e.what(), "Test::make: memfd_create(\"nnn")) << e.what();

  e = catch_error([] { (void)mp::create_sealed_memfd("huge", std::uint64_t{1} << 63, 0, "Test::make"); });
  EXPECT_EQ(e.code(), std::error_code(EINVAL, std::system_category())) << e.what();  // past off_t's range
  EXPECT_TRUE(starts_with(e.what(), "Test::make: sizing the memfd to 9223372036854775808 bytes")) << e.what();

  e = catch_error([] { (void)mp::create_sealed_memfd("bad-seal", 4096, 0x4000); });
  EXPECT_EQ(e.code(), std::error_code(EINVAL, std::system_category())) << e.what();
  EXPECT_TRUE(starts_with(e.what(), "create_sealed_memfd: sealing the memfd")) << e.what();
  EXPECT_EQ(open_fd_count(), before) << "a failed create closes what it opened";
}

TEST(Memfd, WhyNotMemfdNamesWhatTheDescriptorIs) {
  EXPECT_EQ(mp::why_not_memfd(-1), "not an open file descriptor");
  const int closed = ::dup(0);
  ::close(closed);
  EXPECT_EQ(mp::why_not_memfd(closed), "not an open file descriptor");
  EXPECT_FALSE(mp::is_memfd(closed));

  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  EXPECT_EQ(mp::why_not_memfd(p[0]), "not a memfd but a pipe");
  ::close(p[0]);
  ::close(p[1]);
  int s[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0);
  EXPECT_EQ(mp::why_not_memfd(s[0]), "not a memfd but a socket");
  ::close(s[0]);
  ::close(s[1]);
  const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  EXPECT_EQ(mp::why_not_memfd(null), "not a memfd but a character device");
  ::close(null);
  const int dir = ::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  EXPECT_EQ(mp::why_not_memfd(dir), "not a memfd but a directory");
  ::close(dir);

  // A regular file is refused whether or not its filesystem can carry seals (tmpfs can).
  FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(starts_with(mp::why_not_memfd(::fileno(f)), "not a memfd")) << mp::why_not_memfd(::fileno(f));
  std::fclose(f);

  // A memfd made without MFD_ALLOW_SEALING is still a memfd; it reports the seal seal.
  const int plain = ::memfd_create("plain", MFD_CLOEXEC);
  ASSERT_GE(plain, 0);
  EXPECT_TRUE(mp::is_memfd(plain));
  EXPECT_EQ(mp::memfd_seals(plain), seal::seal);
  ::close(plain);
}

TEST(Memfd, SealsAndSizeOfWhatIsNotAMemfdAreErrors) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  errno = 0;
  EXPECT_EQ(mp::memfd_seals(p[0]), -1);
  EXPECT_EQ(errno, EINVAL);
  ::close(p[0]);
  ::close(p[1]);
  errno = 0;
  EXPECT_EQ(mp::memfd_seals(-1), -1);
  EXPECT_EQ(errno, EBADF);
  errno = 0;
  EXPECT_EQ(mp::file_size(-1), -1);
  EXPECT_EQ(errno, EBADF);
}

TEST(SharedMapping, WritesAreSharedWithOtherMappingsAndAForkedChild) {
  const mp::UniqueFd fd = mp::create_sealed_memfd("shared", 8192, kFixedSize);
  mp::SharedMapping a = mp::SharedMapping::map(fd.get(), 8192);
  mp::SharedMapping b = mp::SharedMapping::map(fd.get(), 8192);
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  EXPECT_EQ(a.size(), 8192u);
  EXPECT_NE(a.data(), b.data());
  std::memcpy(a.data() + 5000, "hello", 6);
  EXPECT_STREQ(reinterpret_cast<const char*>(b.data() + 5000), "hello");

  const pid_t child = mptest::spawn([&] {
    std::memcpy(b.data() + 100, "child", 6);
    return 0;
  });
  ASSERT_EQ(mptest::wait_exit(child, 30s), 0);
  EXPECT_STREQ(reinterpret_cast<const char*>(a.data() + 100), "child");
}

TEST(SharedMapping, OutlivesItsDescriptorAndUnmapsOnDestruction) {
  std::byte* p = nullptr;
  {
    mp::UniqueFd fd = mp::create_sealed_memfd("outlive", 4096, kFixedSize);
    mp::SharedMapping m = mp::SharedMapping::map(fd.get(), 4096);
    fd.reset();
    p = m.data();
    std::memcpy(p, "still here", 11);
    EXPECT_STREQ(reinterpret_cast<const char*>(p), "still here");
    EXPECT_TRUE(mapped(p, 4096));
  }
  EXPECT_FALSE(mapped(p, 4096));
}

TEST(SharedMapping, MovesReleaseAndAdoptTransferOwnership) {
  const mp::UniqueFd fd = mp::create_sealed_memfd("moves", 4096, kFixedSize);
  mp::SharedMapping a = mp::SharedMapping::map(fd.get(), 4096);
  std::byte* const first = a.data();
  mp::SharedMapping b(std::move(a));
  EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): moved-from is documented empty
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(b.data(), first);
  EXPECT_EQ(b.size(), 4096u);

  mp::SharedMapping c = mp::SharedMapping::map(fd.get(), 4096);
  std::byte* const second = c.data();
  c = std::move(b);  // unmaps what c held
  EXPECT_EQ(c.data(), first);
  EXPECT_FALSE(mapped(second, 4096));
  EXPECT_TRUE(mapped(first, 4096));

  const std::size_t n = c.size();
  std::byte* const raw = c.release();
  EXPECT_FALSE(c);
  EXPECT_TRUE(mapped(raw, n)) << "release does not unmap";
  {
    const mp::SharedMapping back = mp::SharedMapping::adopt(raw, n);
    EXPECT_EQ(back.data(), raw);
    EXPECT_EQ(back.size(), n);
  }
  EXPECT_FALSE(mapped(raw, n));
  EXPECT_FALSE(mp::SharedMapping::adopt(nullptr, 123));
  EXPECT_EQ(mp::SharedMapping::adopt(nullptr, 123).size(), 0u);
}

TEST(SharedMapping, FailuresAreEmptyOrAnErrorNamingTheCaller) {
  int s[2];  // open read/write (a pipe end would fail EACCES first), but nothing to map
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0);
  errno = 0;
  mp::SharedMapping m = mp::SharedMapping::try_map(s[0], 4096);
  EXPECT_FALSE(m);
  EXPECT_EQ(m.size(), 0u);
  EXPECT_EQ(errno, ENODEV);
  const auto e = catch_error([&] { (void)mp::SharedMapping::map(s[0], 4096, "Test::attach"); });
  EXPECT_EQ(e.code(), std::error_code(ENODEV, std::system_category())) << e.what();
  EXPECT_TRUE(starts_with(e.what(), "Test::attach: mapping 4096 bytes")) << e.what();
  ::close(s[0]);
  ::close(s[1]);
  const int read_only = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC);  // MAP_SHARED + PROT_WRITE
  ASSERT_GE(read_only, 0);
  errno = 0;
  EXPECT_FALSE(mp::SharedMapping::try_map(read_only, 4096));
  EXPECT_EQ(errno, EACCES);
  ::close(read_only);

  const mp::UniqueFd fd = mp::create_sealed_memfd("zero", 4096, kFixedSize);
  errno = 0;
  EXPECT_FALSE(mp::SharedMapping::try_map(fd.get(), 0));
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_FALSE(mp::SharedMapping::try_map(-1, 4096));
  EXPECT_EQ(errno, EBADF);
}
