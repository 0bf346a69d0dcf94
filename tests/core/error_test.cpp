#include <multiproc/error.hpp>

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace mp = multiproc;

TEST(Error, EveryCodeHasItsOwnWordsInTheCategory) {
  std::set<std::string> messages;
  for (int c = static_cast<int>(mp::errc::timeout); c <= static_cast<int>(mp::errc::permission_denied); ++c) {
    const std::string m = mp::error_category().message(c);
    EXPECT_EQ(m.find("unknown"), std::string::npos) << c;
    messages.insert(m);
  }
  EXPECT_EQ(messages.size(), 14u);
  EXPECT_STREQ(mp::error_category().name(), "multiproc");
}

TEST(Error, CodesCompareAsErrorCodeEnums) {
  static_assert(std::is_error_code_enum_v<mp::errc>);
  const std::error_code ec = mp::errc::bad_arena;  // implicit, through make_error_code
  EXPECT_EQ(ec, mp::errc::bad_arena);
  EXPECT_NE(ec, mp::errc::bad_message);
  EXPECT_EQ(&ec.category(), &mp::error_category());
}

TEST(Error, SubclassesCarryTheirCodesAndMessages) {
  try {
    throw mp::OwnerDead("Lock::lock: previous owner 123 died");
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.code(), mp::errc::owner_dead);
    EXPECT_NE(std::string(e.what()).find("previous owner 123 died"), std::string::npos);
  }
  EXPECT_EQ(mp::Closed("q").code(), mp::errc::closed);
  EXPECT_EQ(mp::Eof("c").code(), mp::errc::eof);
  try {
    mp::detail::throw_errno(EBADF, "Arena::from_fd: fstat(7)");
  } catch (const mp::Error& e) {
    EXPECT_EQ(e.code(), std::error_code(EBADF, std::system_category()));
    EXPECT_NE(std::string(e.what()).find("fstat(7)"), std::string::npos);
  }
}
