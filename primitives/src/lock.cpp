// Cold paths of Lock and RLock: turning a failed acquisition into the exception the contract
// names, and RLock's full release/restore for Condition.
#include <multiproc/lock.hpp>

#include <string>

namespace multiproc {
namespace detail {

void throw_lock_result(LockResult r, const char* who) {
  switch (r) {
    case LockResult::owner_dead:
      throw OwnerDead(std::string(who) +
                      ": the previous holder died holding the lock; this thread now holds it, marked "
                      "inconsistent: repair the protected state, call make_consistent(), then unlock() "
                      "(an unlock() without make_consistent() makes the lock not recoverable)");
    case LockResult::not_recoverable:
      throw Error(errc::not_recoverable,
                  std::string(who) +
                      ": the lock is not recoverable (a holder that received OwnerDead unlocked it "
                      "without make_consistent()); it is not held and can never be acquired again");
    case LockResult::timed_out:
      throw Error(errc::timeout, std::string(who) + ": the lock could not be acquired (timed out)");
    case LockResult::acquired:
      break;
  }
  throw Error(errc::not_supported, std::string(who) + ": unexpected lock result");
}

void throw_not_owner(const RobustMutex& m, const char* who) {
  if (!m.recoverable())
    throw Error(errc::not_recoverable, std::string(who) + ": the lock is not recoverable; nothing to unlock");
  throw Error(errc::permission_denied,
              std::string(who) + (m.locked() ? ": the lock is held by another thread or process; only its owner may unlock it"
                                             : ": the lock is not held; unlock() without a matching lock()"));
}

}  // namespace detail

void RLock::acquired_or_throw(LockResult r, const char* who) {
  if (r == LockResult::owner_dead) depth_.store(1, std::memory_order_relaxed);  // held, at depth 1
  detail::throw_lock_result(r, who);
}

void RLock::throw_depth_overflow() {
  throw Error(std::make_error_code(std::errc::value_too_large),
              "RLock::lock: recursion depth would exceed 2^32 - 1");
}

std::uint32_t RLock::unlock_all() {
  if (!m_.held_by_this_thread()) detail::throw_not_owner(m_, "RLock::unlock_all");
  // relaxed: only the holder touches depth_.
  const std::uint32_t d = depth_.load(std::memory_order_relaxed);
  depth_.store(0, std::memory_order_relaxed);
  if (!m_.unlock()) detail::throw_not_owner(m_, "RLock::unlock_all");
  return d;
}

void RLock::lock_restore(std::uint32_t depth) {
  const std::uint32_t d = depth == 0 ? 1 : depth;
  const LockResult r = m_.lock();
  if (r == LockResult::acquired) {
    depth_.store(d, std::memory_order_relaxed);
    return;
  }
  if (r == LockResult::owner_dead) depth_.store(d, std::memory_order_relaxed);  // held, at the caller's depth
  detail::throw_lock_result(r, "RLock::lock_restore");
}

}  // namespace multiproc
