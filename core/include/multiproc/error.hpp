// multiproc/error.hpp — the one error type family the library throws.
//
// Every failure the library reports is a `multiproc::Error` (a `std::system_error`) whose
// `code()` is one of `multiproc::errc` in `multiproc::error_category()`, or, for a failed
// system call, the `std::system_category()` errno. Messages say what failed and why, e.g.
//   "Arena::from_fd: fd 7 is not a multiproc arena (bad magic)".
//
// `errc` is a `std::is_error_code_enum`, so `e.code() == multiproc::errc::timeout` works.
#pragma once

#include <string>
#include <system_error>
#include <type_traits>

namespace multiproc {

enum class errc {
  timeout = 1,
  closed,
  eof,
  owner_dead,
  not_recoverable,
  out_of_memory,
  name_exists,
  bad_arena,
  bad_message,
  message_too_large,
  broken_barrier,
  broken_pool,
  not_supported,
  permission_denied,
};

/// The category of `errc`; its `message()` names every code in words.
const std::error_category& error_category() noexcept;

std::error_code make_error_code(errc e) noexcept;

/// Everything the library throws. `what()` is "<what failed>: <reason>".
class Error : public std::system_error {
 public:
  Error(errc code, const std::string& what);
  Error(std::error_code code, const std::string& what);
};

/// Thrown by Lock/RLock acquisition when the previous holder died holding the lock.
/// The thrower *holds the lock*: repair the protected state, call `make_consistent()`, unlock.
class OwnerDead : public Error {
 public:
  explicit OwnerDead(const std::string& what);
};

/// `put` on a closed queue; `get` on a closed and drained one.
class Closed : public Error {
 public:
  explicit Closed(const std::string& what);
};

/// `recv` on a connection whose peer closed and which has nothing left to read.
class Eof : public Error {
 public:
  explicit Eof(const std::string& what);
};

namespace detail {
/// Throws `Error(std::system_category() errno)` with "<what>: <strerror>".
[[noreturn]] void throw_errno(int err, const std::string& what);
}  // namespace detail

}  // namespace multiproc

template <>
struct std::is_error_code_enum<multiproc::errc> : std::true_type {};
