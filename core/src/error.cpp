#include <multiproc/error.hpp>

namespace multiproc {
namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "multiproc"; }
  std::string message(int code) const override {
    switch (static_cast<errc>(code)) {
      case errc::timeout: return "timed out";
      case errc::closed: return "closed";
      case errc::eof: return "end of file: the peer closed the connection";
      case errc::owner_dead: return "the previous owner died holding the lock";
      case errc::not_recoverable: return "the lock is not recoverable";
      case errc::out_of_memory: return "out of memory in the arena or container";
      case errc::name_exists: return "an object with that name already exists";
      case errc::bad_arena: return "not a valid multiproc arena";
      case errc::bad_message: return "malformed message";
      case errc::message_too_large: return "message too large";
      case errc::broken_barrier: return "the barrier is broken";
      case errc::broken_pool: return "a pool worker died";
      case errc::not_supported: return "operation not supported";
      case errc::permission_denied: return "permission denied";
    }
    return "unknown multiproc error " + std::to_string(code);
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const Category category;
  return category;
}

std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), error_category()}; }

Error::Error(errc code, const std::string& what) : std::system_error(make_error_code(code), what) {}
Error::Error(std::error_code code, const std::string& what) : std::system_error(code, what) {}
OwnerDead::OwnerDead(const std::string& what) : Error(errc::owner_dead, what) {}
Closed::Closed(const std::string& what) : Error(errc::closed, what) {}
Eof::Eof(const std::string& what) : Error(errc::eof, what) {}

namespace detail {
void throw_errno(int err, const std::string& what) { throw Error(std::error_code(err, std::system_category()), what); }
}  // namespace detail

}  // namespace multiproc
