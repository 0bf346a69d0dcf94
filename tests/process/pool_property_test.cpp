// Property: Pool::map is std::transform, for any inputs, pool size and chunk size; imap and
// starmap agree with it.
#include <multiproc/pool.hpp>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace mp = multiproc;

namespace {
std::int64_t poly(std::int32_t x) { return static_cast<std::int64_t>(x) * 3 - 7; }
std::int64_t both(std::int32_t a, std::int32_t b) { return static_cast<std::int64_t>(a) - b; }
}  // namespace

RC_GTEST_PROP(PoolProperty, MapIsTransform, (const std::vector<std::int32_t>& in)) {
  const auto workers = *rc::gen::inRange(1, 4);
  const auto chunk = *rc::gen::inRange<std::size_t>(0, 7);
  mp::Pool pool(static_cast<unsigned>(workers), mp::PoolOptions{.chunksize = chunk});
  std::vector<std::int64_t> expect(in.size());
  std::transform(in.begin(), in.end(), expect.begin(), poly);
  RC_ASSERT(pool.map(poly, in) == expect);
  std::vector<std::int64_t> seen;
  for (auto v : pool.imap(poly, in)) seen.push_back(v);
  RC_ASSERT(seen == expect);
  std::vector<std::pair<std::int32_t, std::int32_t>> pairs;
  for (auto x : in) pairs.emplace_back(x, x / 2);
  const auto star = pool.starmap(both, pairs);
  RC_ASSERT(star.size() == in.size());
  for (std::size_t i = 0; i < in.size(); ++i) RC_ASSERT(star[i] == static_cast<std::int64_t>(in[i]) - in[i] / 2);
}
