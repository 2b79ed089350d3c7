#include "inventory/loadgen/tally.h"

namespace inventory::loadgen {

Tally::Counters Tally::Make(int64_t n) {
  Counters c(new std::atomic<int64_t>[n]);
  for (int64_t i = 0; i < n; ++i) c[i].store(0, std::memory_order_relaxed);
  return c;
}

Tally::Tally(int64_t products, bool with_checkout)
    : products_(products),
      granted_(Make(products)),
      uncertain_(Make(products)),
      sold_out_(new std::atomic<bool>[products]) {
  if (with_checkout) {
    released_ = Make(products);
    committed_ = Make(products);
    abandoned_ = Make(products);
  }
  for (int64_t i = 0; i < products; ++i) sold_out_[i].store(false);
}

bool Tally::MarkSoldOut(int64_t index) {
  if (sold_out_[index].exchange(true)) return false;
  sold_out_count_.fetch_add(1);
  return true;
}

bool Tally::sold_out(int64_t i) const { return sold_out_[i].load(); }

void Reservoir::Offer(AckedReservation item) {
  ++seen_;
  if (items_.size() < capacity_) {
    items_.push_back(std::move(item));
    return;
  }
  std::uniform_int_distribution<int64_t> pick(0, seen_ - 1);
  const int64_t j = pick(rng_);
  if (j < static_cast<int64_t>(capacity_)) items_[j] = std::move(item);
}

}  // namespace inventory::loadgen
