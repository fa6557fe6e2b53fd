#include "prefork/bench.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace prefork {
namespace {

// Octave e holds [2^e, 2^(e+1)) in buckets_per_octave buckets of width 2^(e - 7).
constexpr unsigned sub_bucket_bits = 7;
constexpr unsigned first_octave = 8;  // 2^8 = linear_buckets
static_assert(std::size_t{1} << first_octave == latency_histogram::linear_buckets);
static_assert(std::size_t{1} << sub_bucket_bits == latency_histogram::buckets_per_octave);

}  // namespace

latency_histogram::latency_histogram() : buckets_(bucket_count, 0) {}

std::size_t latency_histogram::bucket_index(std::uint64_t nanoseconds) noexcept {
  if (nanoseconds < linear_buckets) return static_cast<std::size_t>(nanoseconds);
  const auto octave = static_cast<unsigned>(std::bit_width(nanoseconds) - 1);
  if (octave > highest_octave) return bucket_count - 1;
  const auto sub_bucket = (nanoseconds >> (octave - sub_bucket_bits)) - buckets_per_octave;
  return linear_buckets + (octave - first_octave) * buckets_per_octave + static_cast<std::size_t>(sub_bucket);
}

std::uint64_t latency_histogram::bucket_upper_bound(std::size_t index) noexcept {
  if (index < linear_buckets) return index;
  if (index + 1 >= bucket_count) return ~std::uint64_t{0};  // the last bucket is open-ended
  const auto offset = index - linear_buckets;
  const auto octave = static_cast<unsigned>(first_octave + offset / buckets_per_octave);
  const auto width = std::uint64_t{1} << (octave - sub_bucket_bits);
  const auto lower = (buckets_per_octave + offset % buckets_per_octave) * width;
  return lower + width - 1;
}

void latency_histogram::record(std::uint64_t nanoseconds) noexcept {
  ++buckets_[bucket_index(nanoseconds)];
  ++count_;
  max_ = std::max(max_, nanoseconds);
  sum_ += static_cast<long double>(nanoseconds);
}

void latency_histogram::merge(const latency_histogram& other) noexcept {
  for (std::size_t i = 0; i < bucket_count; ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

void latency_histogram::reset() noexcept {
  std::fill(buckets_.begin(), buckets_.end(), 0);
  count_ = 0;
  max_ = 0;
  sum_ = 0;
}

double latency_histogram::mean() const noexcept {
  return count_ == 0 ? 0.0 : static_cast<double>(sum_ / static_cast<long double>(count_));
}

std::uint64_t latency_histogram::percentile(double fraction) const noexcept {
  if (count_ == 0) return 0;
  fraction = std::clamp(fraction, 0.0, 1.0);
  // The rank of the value asked for (1-based): the 50th percentile of 10 values is the 5th.
  // The small slack keeps 0.7 * 10 (7.000000000000001 in doubles) from meaning rank 8.
  const auto wanted =
      std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::ceil(fraction * static_cast<double>(count_) - 1e-9)));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < bucket_count; ++i) {
    seen += buckets_[i];
    if (seen >= wanted) return std::min(bucket_upper_bound(i), max_);
  }
  return max_;
}

}  // namespace prefork
