#include "inventory/loadgen/histogram.h"

#include <algorithm>
#include <cmath>

namespace inventory::loadgen {
namespace {

constexpr int kSubBits = 7;                 // 128 sub-buckets per octave
constexpr int64_t kSub = int64_t{1} << kSubBits;
constexpr int kMaxBits = 40;                // values up to 2^40 - 1 ns
constexpr int64_t kMaxValue = (int64_t{1} << kMaxBits) - 1;
constexpr int kBuckets = static_cast<int>(kSub + (kMaxBits - kSubBits) * kSub);

}  // namespace

int LatencyHistogram::bucket_count() { return kBuckets; }

int LatencyHistogram::IndexOf(int64_t ns) {
  if (ns <= 0) return 0;
  if (ns > kMaxValue) ns = kMaxValue;
  if (ns < kSub) return static_cast<int>(ns);  // exact below 128 ns
  const int msb = 63 - __builtin_clzll(static_cast<uint64_t>(ns));
  const int shift = msb - kSubBits;
  const int64_t sub = ns >> shift;  // in [128, 256)
  return static_cast<int>(kSub + shift * kSub + (sub - kSub));
}

int64_t LatencyHistogram::LowestOf(int index) {
  if (index < kSub) return index;
  const int shift = static_cast<int>((index - kSub) / kSub);
  const int64_t sub = kSub + (index - kSub) % kSub;
  return sub << shift;
}

int64_t LatencyHistogram::HighestOf(int index) {
  if (index < kSub) return index;
  const int shift = static_cast<int>((index - kSub) / kSub);
  const int64_t sub = kSub + (index - kSub) % kSub;
  return ((sub + 1) << shift) - 1;
}

LatencyHistogram::LatencyHistogram() : counts_(kBuckets, 0) {}

void LatencyHistogram::Record(int64_t ns) {
  if (ns < 0) ns = 0;
  ++counts_[IndexOf(ns)];
  if (count_ == 0 || ns < min_) min_ = ns;
  if (ns > max_) max_ = ns;
  ++count_;
  sum_ += ns;
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  if (other.count_ == 0) return;
  for (int i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  min_ = count_ == 0 ? other.min_ : std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  count_ += other.count_;
  sum_ += other.sum_;
}

double LatencyHistogram::mean() const {
  return count_ == 0 ? 0.0 : static_cast<double>(sum_ / count_);
}

int64_t LatencyHistogram::Percentile(double p) const {
  if (count_ == 0) return 0;
  if (p >= 100) return max_;
  if (p <= 0) return min_;
  // Rank of the sample at p (1-based, nearest-rank definition).
  const int64_t rank = std::max<int64_t>(
      1, static_cast<int64_t>(std::ceil(p / 100.0 * static_cast<double>(count_))));
  int64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      const int64_t mid = LowestOf(i) + (HighestOf(i) - LowestOf(i)) / 2;
      return std::clamp(mid, min_, max_);
    }
  }
  return max_;
}

std::vector<LatencyHistogram::Bar> LatencyHistogram::Coarse(int bars) const {
  std::vector<Bar> out;
  if (count_ == 0 || bars < 1) return out;
  const double lo = static_cast<double>(min_);
  const double width = static_cast<double>(max_ - min_) / bars;
  out.resize(bars);
  for (int b = 0; b < bars; ++b) {
    out[b].mark = static_cast<int64_t>(lo + width * (b + 1));
  }
  out.back().mark = max_;
  for (int i = 0; i < kBuckets; ++i) {
    if (counts_[i] == 0) continue;
    // A bucket's samples go to the bar holding the bucket's middle.
    const int64_t mid = std::clamp(LowestOf(i) + (HighestOf(i) - LowestOf(i)) / 2,
                                   min_, max_);
    int b = width <= 0 ? bars - 1
                       : static_cast<int>((static_cast<double>(mid) - lo) / width);
    b = std::clamp(b, 0, bars - 1);
    out[b].count += counts_[i];
  }
  return out;
}

}  // namespace inventory::loadgen
