// A latency histogram with bounded memory for load runs of any length: log-
// linear buckets in the manner of HdrHistogram (128 linear sub-buckets per
// power of two, so any reported value is within 0.8% of a recorded one), plus
// the exact count, sum, minimum and maximum. 35 KiB whatever the run length.
#ifndef INVENTORY_LOADGEN_HISTOGRAM_H_
#define INVENTORY_LOADGEN_HISTOGRAM_H_

#include <cstdint>
#include <vector>

namespace inventory::loadgen {

// Durations in nanoseconds, 0 to 2^40 ns (about 18 minutes; larger values
// are counted in the last bucket). Not thread-safe: one per thread, merged.
class LatencyHistogram {
 public:
  LatencyHistogram();

  // Adds one sample.
  void Record(int64_t ns);
  // Adds every sample of `other`.
  void Merge(const LatencyHistogram& other);

  int64_t count() const { return count_; }
  // Smallest / largest sample exactly (0 when empty).
  int64_t min() const { return count_ == 0 ? 0 : min_; }
  int64_t max() const { return max_; }
  // Mean of the samples exactly (0 when empty).
  double mean() const;

  // The value at percentile `p` (0-100): the middle of the bucket holding the
  // sample of that rank, clamped to [min, max]. 0 when empty.
  int64_t Percentile(double p) const;

  // One bar of a coarse histogram: samples in (previous mark, mark].
  struct Bar {
    int64_t mark = 0;
    int64_t count = 0;
  };
  // `bars` equal-width bars from min to max (ghz's "Response time histogram").
  std::vector<Bar> Coarse(int bars) const;

  // Bucket arithmetic, exposed for tests.
  static int IndexOf(int64_t ns);
  static int64_t LowestOf(int index);
  static int64_t HighestOf(int index);
  static int bucket_count();

 private:
  std::vector<int64_t> counts_;
  int64_t count_ = 0;
  int64_t min_ = 0;
  int64_t max_ = 0;
  long double sum_ = 0;
};

}  // namespace inventory::loadgen

#endif  // INVENTORY_LOADGEN_HISTOGRAM_H_
