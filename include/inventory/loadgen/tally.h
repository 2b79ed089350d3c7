// What a load run did to each product, as the server acknowledged it: units
// granted, released and committed, and calls whose outcome is unknown
// (timeouts, transport errors). Verification compares these with the
// products' counters afterwards. Also a bounded sample of acknowledged
// reservations, to be read back by id.
#ifndef INVENTORY_LOADGEN_TALLY_H_
#define INVENTORY_LOADGEN_TALLY_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace inventory::loadgen {

// Per-product counters shared by all client threads (relaxed atomics).
class Tally {
 public:
  // Counters for products 0..products-1 (indexes from the run's base id);
  // `with_checkout` adds the committed / released / abandoned counters (cart).
  Tally(int64_t products, bool with_checkout);

  int64_t products() const { return products_; }

  void Granted(int64_t index, int64_t units) { Add(granted_, index, units); }
  void Released(int64_t index, int64_t units) { Add(released_, index, units); }
  void Committed(int64_t index, int64_t units) { Add(committed_, index, units); }
  // Units of holds left to run out: the server may have expired them by the
  // time the run is verified, or not.
  void Abandoned(int64_t index, int64_t units) { Add(abandoned_, index, units); }
  // A call that may or may not have changed the product's counters.
  void Uncertain(int64_t index) { Add(uncertain_, index, 1); }
  // Records that the product answered OUT_OF_STOCK; true the first time.
  bool MarkSoldOut(int64_t index);

  int64_t granted(int64_t i) const { return Get(granted_, i); }
  int64_t released(int64_t i) const { return Get(released_, i); }
  int64_t committed(int64_t i) const { return Get(committed_, i); }
  int64_t abandoned(int64_t i) const { return Get(abandoned_, i); }
  int64_t uncertain(int64_t i) const { return Get(uncertain_, i); }
  bool sold_out(int64_t i) const;
  // Products that answered OUT_OF_STOCK at least once.
  int64_t sold_out_count() const { return sold_out_count_.load(); }

 private:
  using Counters = std::unique_ptr<std::atomic<int64_t>[]>;
  static Counters Make(int64_t n);
  static void Add(const Counters& c, int64_t i, int64_t n) {
    if (c != nullptr) c[i].fetch_add(n, std::memory_order_relaxed);
  }
  static int64_t Get(const Counters& c, int64_t i) {
    return c == nullptr ? 0 : c[i].load(std::memory_order_relaxed);
  }

  const int64_t products_;
  Counters granted_, released_, committed_, abandoned_, uncertain_;
  std::unique_ptr<std::atomic<bool>[]> sold_out_;
  std::atomic<int64_t> sold_out_count_{0};
};

// The state a reservation must be in after the run.
enum class ExpectedState { kPending, kPurchased, kReleased };

// One reservation the server acknowledged.
struct AckedReservation {
  std::string reservation_id;
  int64_t product_id = 0;
  int64_t quantity = 0;
  std::string request_id;
  ExpectedState state = ExpectedState::kPending;
};

// A uniform sample of at most `capacity` items (reservoir sampling), so a
// long run keeps bounded memory. One per thread.
class Reservoir {
 public:
  Reservoir(size_t capacity, uint64_t seed) : capacity_(capacity), rng_(seed) {}
  void Offer(AckedReservation item);
  // Items offered in all.
  int64_t seen() const { return seen_; }
  std::vector<AckedReservation>& items() { return items_; }

 private:
  size_t capacity_;
  std::mt19937_64 rng_;
  int64_t seen_ = 0;
  std::vector<AckedReservation> items_;
};

}  // namespace inventory::loadgen

#endif  // INVENTORY_LOADGEN_TALLY_H_
