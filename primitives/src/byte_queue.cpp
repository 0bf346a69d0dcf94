// ByteQueue: variable-length messages over the ring of queue.hpp. Every length read from shared
// memory is validated before it is used.
#include <multiproc/byte_queue.hpp>

#include <string>

namespace multiproc {

namespace {

constexpr std::uint32_t kLengthCheck = 0x4D505142u;  // "MPQB": the check field is length ^ this
constexpr std::size_t kHeader = 8;                   // u32 length, u32 check, then the bytes

// Relaxed atomic loads of shared words another process may be writing (a racing or scribbling
// peer): the value is validated before use, and the load itself is not a data race.
std::uint32_t load_u32(const std::byte* p) noexcept {
  return __atomic_load_n(reinterpret_cast<const std::uint32_t*>(p), __ATOMIC_RELAXED);
}

}  // namespace

ByteQueue::ByteQueue(Arena& arena, std::size_t capacity, std::size_t max_message) {
  if (max_message > kMaxMessageLimit)
    throw Error(std::make_error_code(std::errc::invalid_argument),
                "ByteQueue::ByteQueue: max_message " + std::to_string(max_message) + " exceeds the limit of " +
                    std::to_string(kMaxMessageLimit));
  const std::size_t bytes = detail::Ring::checked_bytes(capacity, slot_stride(max_message), "ByteQueue::ByteQueue");
  init(detail::Ring::allocate_slots(arena, bytes), capacity, max_message, detail::Ring::kOwnsArena);
}

ByteQueue::ByteQueue(std::span<std::byte> storage, std::size_t capacity, std::size_t max_message) {
  if (max_message > kMaxMessageLimit)
    throw Error(std::make_error_code(std::errc::invalid_argument),
                "ByteQueue::ByteQueue: max_message " + std::to_string(max_message) + " exceeds the limit of " +
                    std::to_string(kMaxMessageLimit));
  const std::size_t bytes = detail::Ring::checked_bytes(capacity, slot_stride(max_message), "ByteQueue::ByteQueue");
  detail::Ring::check_storage(storage, bytes, "ByteQueue::ByteQueue");
  init(storage.data(), capacity, max_message, 0);
}

void ByteQueue::init(void* slots, std::size_t capacity, std::size_t max_message, std::uint32_t flags) {
  ring_.init(slots, capacity, slot_stride(max_message), 8, kHeader + max_message, flags);
}

bool ByteQueue::put_impl(std::span<const std::byte> message, const Deadline* deadline, const char* op) {
  ring_.check_geometry(op);
  const std::size_t max = max_message();
  if (message.size() > max)
    throw Error(errc::message_too_large, std::string(op) + ": a message of " + std::to_string(message.size()) +
                                             " bytes exceeds the queue's max_message of " + std::to_string(max));
  const auto n = static_cast<std::uint32_t>(message.size());
  auto fill = [&](std::byte* p) noexcept {
    const std::uint32_t header[2] = {n, n ^ kLengthCheck};
    std::memcpy(p, header, sizeof header);
    if (n != 0) std::memcpy(p + kHeader, message.data(), n);
  };
  return ring_.produce<0>(ring_.stride(), deadline, fill, op) == detail::Ring::Result::done;
}

detail::Ring::Result ByteQueue::get_impl(std::vector<std::byte>& out, const Deadline* deadline, const char* op) {
  ring_.check_geometry(op);
  const std::size_t max = max_message();
  // Before the claim: size the result for the message that is there, so an allocation failure
  // leaves it in the queue. The length may be stale or garbage here; it is checked again below.
  auto peek = [&](const std::byte* p) {
    const std::uint32_t n = load_u32(p);
    if (n <= max) out.resize(n);
  };
  auto drain = [&](const std::byte* p) {
    const std::uint32_t n = load_u32(p);
    const std::uint32_t check = load_u32(p + 4);
    if (n > max || (n ^ kLengthCheck) != check || n != out.size())
      throw Error(errc::bad_message, std::string(op) + ": the ring holds a corrupt message (length " +
                                         std::to_string(n) + ", max_message " + std::to_string(max) +
                                         "); it was dropped");
    if (n != 0) std::memcpy(out.data(), p + kHeader, n);
  };
  return ring_.consume<0, true>(ring_.stride(), deadline, peek, drain, op);
}

void ByteQueue::put(std::span<const std::byte> message) {
  const Deadline never = Deadline::never();
  put_impl(message, &never, "ByteQueue::put");
}

bool ByteQueue::try_put(std::span<const std::byte> message) { return put_impl(message, nullptr, "ByteQueue::try_put"); }

bool ByteQueue::put_until(std::span<const std::byte> message, const Deadline& deadline) {
  return put_impl(message, &deadline, "ByteQueue::try_put");
}

std::vector<std::byte> ByteQueue::get() {
  std::vector<std::byte> out;
  const Deadline never = Deadline::never();
  if (get_impl(out, &never, "ByteQueue::get") != detail::Ring::Result::done) detail::Ring::throw_closed("ByteQueue::get");
  return out;
}

std::optional<std::vector<std::byte>> ByteQueue::try_get() {
  std::vector<std::byte> out;
  if (get_impl(out, nullptr, "ByteQueue::try_get") == detail::Ring::Result::done) return out;
  return std::nullopt;
}

std::optional<std::vector<std::byte>> ByteQueue::get_until(const Deadline& deadline) {
  std::vector<std::byte> out;
  if (get_impl(out, &deadline, "ByteQueue::try_get") == detail::Ring::Result::done) return out;
  return std::nullopt;
}

}  // namespace multiproc
