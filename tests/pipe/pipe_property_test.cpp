// Properties: any sequence of message sizes, cut into any pieces by the byte stream, decodes to
// the same messages — first the frame decoder alone, then real Pipes between two processes.
#include <multiproc/pipe.hpp>

#include "frame.hpp"
#include "mptest.hpp"
#include "pipe_test_util.hpp"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace mp = multiproc;
using mp::detail::FrameDecoder;
using mp::detail::FrameKind;
using mp::detail::Head;
using mp::detail::kHeaderSize;

namespace {

using pipetest::message;

// Sizes: mostly small, sometimes around the read-ahead chunk, rarely large.
rc::Gen<std::size_t> message_size() {
  return rc::gen::weightedOneOf<std::size_t>({
      {6, rc::gen::inRange<std::size_t>(0, 300)},
      {2, rc::gen::inRange<std::size_t>(300, 70'000)},
      {1, rc::gen::inRange<std::size_t>(70'000, 400'000)},
  });
}

}  // namespace

RC_GTEST_PROP(FrameDecoderProperty, AnySplitOfTheStreamDecodesIntact, ()) {
  const auto sizes = *rc::gen::container<std::vector<std::size_t>>(message_size());
  const auto chunk = *rc::gen::inRange<std::size_t>(16, 70'000);
  std::vector<std::byte> stream;
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    const auto h = mp::detail::encode_header(static_cast<std::uint32_t>(sizes[k]), FrameKind::data);
    stream.insert(stream.end(), h.begin(), h.end());
    const auto m = message(k, sizes[k]);
    stream.insert(stream.end(), m.begin(), m.end());
  }
  const std::size_t max = 400'000;
  FrameDecoder d(max, chunk);
  std::size_t at = 0, decoded = 0;
  while (decoded < sizes.size()) {
    // Consume every whole frame at the front.
    for (Head h = d.head(); h.whole(); h = d.head()) {
      RC_ASSERT(decoded < sizes.size());
      RC_ASSERT(h.length == sizes[decoded]);
      const auto payload = d.buffered().subspan(kHeaderSize, h.length);
      const auto expect = message(decoded, sizes[decoded]);
      RC_ASSERT(std::equal(payload.begin(), payload.end(), expect.begin(), expect.end()));
      d.consume(kHeaderSize + h.length);
      ++decoded;
    }
    if (decoded == sizes.size()) break;
    RC_ASSERT(d.head().status != Head::bad);
    RC_ASSERT(at < stream.size());
    // The kernel hands over an arbitrary piece of the stream; we read at most what we asked room for.
    const Head h = d.head();
    const std::size_t want = h.status == Head::ready ? kHeaderSize + h.length - d.buffered().size()
                                                      : kHeaderSize - d.buffered().size();
    auto space = d.prepare(want);
    RC_ASSERT(space.size() >= std::min(want, kHeaderSize + max));
    const std::size_t piece = *rc::gen::inRange<std::size_t>(1, std::min(space.size(), stream.size() - at) + 1);
    std::memcpy(space.data(), stream.data() + at, piece);
    d.commit(piece);
    at += piece;
    RC_ASSERT(d.capacity() <= kHeaderSize + max + chunk);
  }
  RC_ASSERT(at == stream.size());
  RC_ASSERT(d.empty());
  RC_ASSERT(d.offset() == stream.size());
}

RC_GTEST_PROP(FrameDecoderProperty, AMessageAboveTheMaximumStopsTheStreamThere, ()) {
  const auto sizes = *rc::gen::nonEmpty(rc::gen::container<std::vector<std::size_t>>(rc::gen::inRange<std::size_t>(0, 2000)));
  const std::size_t max = *rc::gen::inRange<std::size_t>(0, 2000);
  std::vector<std::byte> stream;
  for (std::size_t s : sizes) {
    const auto h = mp::detail::encode_header(static_cast<std::uint32_t>(s), FrameKind::data);
    stream.insert(stream.end(), h.begin(), h.end());
    stream.resize(stream.size() + s, std::byte{1});
  }
  FrameDecoder d(max, 64);
  std::size_t at = 0;
  for (std::size_t s : sizes) {
    while (d.head().status == Head::need_more || (d.head().status == Head::ready && !d.head().whole())) {
      auto space = d.prepare(1);
      const std::size_t n = std::min(space.size(), stream.size() - at);
      RC_ASSERT(n > 0);
      std::memcpy(space.data(), stream.data() + at, n);
      d.commit(n);
      at += n;
    }
    if (s > max) {
      RC_ASSERT(d.head().status == Head::bad);
      RC_ASSERT(d.capacity() <= kHeaderSize + max + 64);  // never sized for the announced length
      return;
    }
    RC_ASSERT(d.head().whole());
    d.consume(kHeaderSize + s);
  }
}

// Real processes: a child sends a random sequence (singly or gathered); the parent receives it
// with a random mix of recv_bytes, recv_bytes_into and poll.
RC_GTEST_PROP(PipeProperty, RandomSequencesArriveIntactBetweenProcesses, ()) {
  const auto sizes = *rc::gen::container<std::vector<std::size_t>>(message_size());
  const auto batch_at = *rc::gen::container<std::vector<bool>>(sizes.size(), rc::gen::arbitrary<bool>());
  const auto how = *rc::gen::container<std::vector<int>>(sizes.size(), rc::gen::inRange(0, 3));
  auto [rx, tx] = mp::Pipe(false);
  const pid_t pid = mptest::spawn([&] {
    rx.close();
    std::vector<std::vector<std::byte>> batch;
    auto flush = [&] {
      std::vector<std::span<const std::byte>> spans(batch.begin(), batch.end());
      tx.send_bytes_many(spans);
      batch.clear();
    };
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      if (batch_at[k]) {
        batch.push_back(message(k, sizes[k]));
      } else {
        flush();
        tx.send_bytes(message(k, sizes[k]));
      }
    }
    flush();
    return 0;
  });
  tx.close();
  std::vector<std::byte> buf;
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    std::vector<std::byte> got;
    switch (how[k]) {
      case 0:
        got = rx.recv_bytes();
        break;
      case 1:
        buf.resize(sizes[k] + 3);
        buf.resize(rx.recv_bytes_into(buf));
        got = buf;
        break;
      default:
        RC_ASSERT(rx.poll(std::chrono::seconds(30)));
        got = rx.recv_bytes();
        break;
    }
    RC_ASSERT(got == message(k, sizes[k]));
  }
  RC_ASSERT_THROWS_AS((void)rx.recv_bytes(), mp::Eof);
  RC_ASSERT(mptest::wait_exit(pid) == 0);
}

// Coalescing: a child sends a random sequence of data and fd messages on a coalescing end,
// with random flush points in between (flush, poll, turning coalescing off and on) and a random
// way to end (close, or flush then _exit); the parent receives every message intact, in order.
RC_GTEST_PROP(PipeProperty, CoalescedSequencesArriveIntactWhateverTheFlushPoints, ()) {
  const auto sizes = *rc::gen::container<std::vector<std::size_t>>(message_size());
  // After message k: 0-5 nothing, 6 flush(), 7 poll(), 8 coalescing off and on again, 9 an fd message.
  const auto after = *rc::gen::container<std::vector<int>>(sizes.size(), rc::gen::inRange(0, 10));
  const bool end_by_close = *rc::gen::arbitrary<bool>();
  auto [parent, child] = mp::Pipe();
  const pid_t pid = mptest::spawn([&] {
    parent.close();
    const int any_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    child.set_coalescing(true);
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      child.send_bytes(message(k, sizes[k]));
      switch (after[k]) {
        case 6: child.flush(); break;
        case 7: (void)child.poll(); break;
        case 8: child.set_coalescing(false); child.set_coalescing(true); break;
        case 9: child.send_fd(any_fd); break;
        default: break;
      }
    }
    if (end_by_close) {
      child.close();
    } else {
      child.flush();  // _exit() (mptest::spawn) would drop what is still buffered
    }
    return 0;
  });
  child.close();
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    RC_ASSERT(parent.recv_bytes() == message(k, sizes[k]));
    if (after[k] == 9) {
      const int fd = parent.recv_fd();
      RC_ASSERT(fd >= 0);
      ::close(fd);
    }
  }
  RC_ASSERT_THROWS_AS((void)parent.recv_bytes(), mp::Eof);
  RC_ASSERT(mptest::wait_exit(pid) == 0);
}
