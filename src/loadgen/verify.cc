#include "inventory/loadgen/verify.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <random>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "inventory/loadgen/stats.h"
#include "inventory/v1/inventory.grpc.pb.h"

namespace inventory::loadgen {
namespace {

namespace v1 = ::inventory::v1;

constexpr int kThreads = 16;
constexpr int kAvailabilityBatch = 1000;  // the API's limit per call
constexpr int kAttempts = 3;

// One channel per target, shared by the verification threads.
class Clients {
 public:
  explicit Clients(const LoadOptions& o) {
    for (const auto& t : o.targets) {
      stubs_.push_back(v1::InventoryService::NewStub(
          grpc::CreateChannel(t, grpc::InsecureChannelCredentials())));
    }
  }
  v1::InventoryService::Stub& For(int64_t i) {
    return *stubs_[static_cast<size_t>(i) % stubs_.size()];
  }

 private:
  std::vector<std::unique_ptr<v1::InventoryService::Stub>> stubs_;
};

std::unique_ptr<grpc::ClientContext> Context() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return ctx;
}

bool Retryable(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE ||
         s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
         s.error_code() == grpc::StatusCode::ABORTED;
}

std::string Describe(const grpc::Status& s) {
  return absl::StrCat(CodeName(s.error_code()), ": ", s.error_message());
}

// Runs fn(i) for i in [0, n) on kThreads threads.
void ParallelFor(int64_t n, const std::function<void(int64_t)>& fn) {
  std::atomic<int64_t> next{0};
  std::vector<std::thread> threads;
  const int count = static_cast<int>(std::min<int64_t>(kThreads, n));
  for (int t = 0; t < count; ++t) {
    threads.emplace_back([&] {
      for (int64_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) fn(i);
    });
  }
  for (auto& t : threads) t.join();
}

// First error of a parallel pass.
class FirstError {
 public:
  void Set(absl::Status s) {
    absl::MutexLock lock(&mu_);
    if (status_.ok()) status_ = std::move(s);
  }
  absl::Status Get() {
    absl::MutexLock lock(&mu_);
    return status_;
  }

 private:
  absl::Mutex mu_;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

// GetAvailability of every product; -1 for a product no shard knows.
absl::StatusOr<std::vector<int64_t>> AvailabilityOfAll(const LoadOptions& o,
                                                       Clients& clients) {
  std::vector<int64_t> out(o.products, -1);
  const int64_t batches = (o.products + kAvailabilityBatch - 1) / kAvailabilityBatch;
  FirstError error;
  ParallelFor(batches, [&](int64_t b) {
    const int64_t first = b * kAvailabilityBatch;
    const int64_t last = std::min(o.products, first + kAvailabilityBatch);
    v1::GetAvailabilityRequest req;
    for (int64_t i = first; i < last; ++i) req.add_product_ids(o.product_base + i);
    for (int attempt = 1;; ++attempt) {
      v1::GetAvailabilityResponse resp;
      grpc::Status s = clients.For(b).GetAvailability(Context().get(), req, &resp);
      if (s.ok() && resp.unavailable_product_ids_size() == 0) {
        for (const auto& a : resp.availabilities()) {
          out[a.product_id() - o.product_base] = a.available_quantity();
        }
        return;
      }
      if (attempt < kAttempts && (Retryable(s) || s.ok())) continue;
      error.Set(absl::UnavailableError(
          s.ok() ? absl::StrCat("GetAvailability: ",
                                resp.unavailable_product_ids_size(),
                                " products on unreachable shards")
                 : absl::StrCat("GetAvailability: ", Describe(s))));
      return;
    }
  });
  if (absl::Status s = error.Get(); !s.ok()) return s;
  return out;
}

absl::StatusOr<ProductState> ReadProduct(Clients& clients, int64_t product_id) {
  v1::GetProductRequest req;
  req.set_product_id(product_id);
  for (int attempt = 1;; ++attempt) {
    v1::Product p;
    grpc::Status s = clients.For(product_id).GetProduct(Context().get(), req, &p);
    if (s.ok()) {
      ProductState st;
      st.found = true;
      st.strict = p.stock_policy() != v1::STOCK_POLICY_BACKORDER;
      st.total = p.total_quantity();
      st.reserved = p.reserved_quantity();
      st.purchased = p.purchased_quantity();
      st.available = p.available_quantity();
      st.backordered = p.backordered_quantity();
      return st;
    }
    if (s.error_code() == grpc::StatusCode::NOT_FOUND) return ProductState{};
    if (attempt < kAttempts && Retryable(s)) continue;
    return absl::UnavailableError(
        absl::StrCat("GetProduct ", product_id, ": ", Describe(s)));
  }
}

// Indexes of the products read whole: all if few, else a random sample.
std::vector<int64_t> PickSample(const LoadOptions& o) {
  std::vector<int64_t> out;
  if (o.products <= o.verify_sample) {
    for (int64_t i = 0; i < o.products; ++i) out.push_back(i);
    return out;
  }
  std::mt19937_64 rng(o.seed ^ 0x5eed);
  absl::flat_hash_set<int64_t> chosen;
  // Floyd's algorithm: verify_sample distinct indexes.
  for (int64_t j = o.products - o.verify_sample; j < o.products; ++j) {
    std::uniform_int_distribution<int64_t> d(0, j);
    int64_t t = d(rng);
    if (!chosen.insert(t).second) chosen.insert(j);
  }
  out.assign(chosen.begin(), chosen.end());
  std::sort(out.begin(), out.end());
  return out;
}

// A BACKORDER product whose stock could still fill one of its backorders.
bool LagsAFill(const ProductState& b) {
  return !b.strict &&
         b.backordered > std::max<int64_t>(0, b.reserved + b.purchased - b.total);
}

absl::Status ReadSample(Clients& clients, const LoadOptions& o,
                        const std::vector<int64_t>& indexes,
                        std::vector<ProductState>* out) {
  out->assign(indexes.size(), ProductState{});
  FirstError error;
  ParallelFor(static_cast<int64_t>(indexes.size()), [&](int64_t k) {
    auto st = ReadProduct(clients, o.product_base + indexes[k]);
    if (!st.ok()) {
      error.Set(st.status());
      return;
    }
    (*out)[k] = *st;
  });
  return error.Get();
}

std::string StateName(v1::ReservationStatus s) {
  return v1::ReservationStatus_Name(s);
}

}  // namespace

void Verification::Violation(std::string what) {
  ++violation_count;
  if (violations.size() < kMaxListed) violations.push_back(std::move(what));
}

absl::Status SetupProducts(const LoadOptions& o) {
  Clients clients(o);
  FirstError error;
  ParallelFor(o.products, [&](int64_t i) {
    v1::CreateProductRequest req;
    req.set_product_id(o.product_base + i);
    req.set_total_quantity(o.stock);
    req.set_stock_policy(o.backorder ? v1::STOCK_POLICY_BACKORDER
                                     : v1::STOCK_POLICY_STRICT);
    for (int attempt = 1;; ++attempt) {
      v1::Product p;
      grpc::Status s = clients.For(i).CreateProduct(Context().get(), req, &p);
      if (s.ok()) return;
      // A retry after a lost answer may find its own product.
      if (s.error_code() == grpc::StatusCode::ALREADY_EXISTS && attempt > 1) return;
      if (s.error_code() == grpc::StatusCode::ALREADY_EXISTS) {
        error.Set(absl::AlreadyExistsError(absl::StrCat(
            "product ", req.product_id(),
            " already exists; pick fresh ids with --product_base, or use the "
            "existing products with --setup=false")));
        return;
      }
      if (attempt < kAttempts && Retryable(s)) continue;
      error.Set(absl::UnavailableError(
          absl::StrCat("CreateProduct ", req.product_id(), ": ", Describe(s))));
      return;
    }
  });
  return error.Get();
}

absl::StatusOr<Baseline> TakeBaseline(const LoadOptions& o) {
  Clients clients(o);
  Baseline b;
  auto available = AvailabilityOfAll(o, clients);
  if (!available.ok()) return available.status();
  b.available = *std::move(available);
  for (int64_t i = 0; i < o.products; ++i) {
    if (b.available[i] < 0) {
      return absl::NotFoundError(absl::StrCat(
          "product ", o.product_base + i, " does not exist (of ", o.products,
          " from --product_base ", o.product_base, ")"));
    }
  }
  b.sampled = PickSample(o);
  if (absl::Status s = ReadSample(clients, o, b.sampled, &b.sampled_state);
      !s.ok()) {
    return s;
  }
  return b;
}

Verification Verify(const LoadOptions& o, const Tally& tally,
                    const RunResult& run, const Baseline& baseline) {
  Verification v;
  v.ran = true;
  Clients clients(o);
  const int64_t q = o.quantity;

  for (const auto& p : run.problems) v.Violation(p);
  if (run.problem_count > static_cast<int64_t>(run.problems.size())) {
    v.violation_count += run.problem_count - static_cast<int64_t>(run.problems.size());
  }

  // 1. Every product: stock consumed == units granted net of releases.
  auto after = AvailabilityOfAll(o, clients);
  if (!after.ok()) {
    v.Violation(absl::StrCat("cannot read availability after the run: ",
                             after.status().message()));
    return v;
  }
  for (int64_t i = 0; i < o.products; ++i) {
    const int64_t id = o.product_base + i;
    const int64_t granted = tally.granted(i);
    const int64_t released = tally.released(i);
    const int64_t uncertain = tally.uncertain(i);
    // Abandoned holds may have run out (a release the tally did not see).
    const int64_t abandoned = tally.abandoned(i);
    v.granted_units += granted;
    v.released_units += released;
    v.committed_units += tally.committed(i);
    v.abandoned_units += abandoned;
    v.uncertain_calls += uncertain;
    v.sold_out_products += tally.sold_out(i) ? 1 : 0;
    if ((*after)[i] < 0) {
      v.Violation(absl::StrCat("product ", id, " has disappeared"));
      continue;
    }
    ++v.products_checked;
    const int64_t consumed = baseline.available[i] - (*after)[i];
    v.consumed_units += consumed;
    const int64_t expected = granted - released;
    // A BACKORDER product's availability stops at 0 while demand grows past
    // its stock; from 0, a net release frees an unknown share of its units.
    if (o.backorder && baseline.available[i] == 0 && expected - abandoned < 0) {
      continue;
    }
    // Available after the run if `net` units stayed consumed; between none
    // and all of the abandoned units may have been given back.
    auto available_after = [&](int64_t net) {
      return o.backorder ? std::max<int64_t>(0, baseline.available[i] - net)
                         : baseline.available[i] - net;
    };
    const int64_t low = available_after(expected) - uncertain * q;
    const int64_t high = available_after(expected - abandoned) + uncertain * q;
    if ((*after)[i] < low || (*after)[i] > high) {
      v.Violation(absl::StrCat(
          "product ", id, ": available went from ", baseline.available[i],
          " to ", (*after)[i], " (", consumed,
          " units consumed), but the server acknowledged ", granted,
          " granted - ", released, " released = ", expected, " units",
          abandoned > 0
              ? absl::StrCat(" (", abandoned, " abandoned may have run out)")
              : "",
          uncertain > 0 ? absl::StrCat(" (", uncertain, " calls uncertain)")
                        : ""));
    }
    // last-widget: sold out means exactly the stock was granted.
    if (o.scenario == Scenario::kLastWidget && tally.sold_out(i)) {
      if (granted != baseline.available[i] && uncertain == 0) {
        v.Violation(absl::StrCat(
            "last-widget: product ", id, " answered OUT_OF_STOCK after granting ",
            granted, " of ", baseline.available[i], " units"));
      }
      if ((*after)[i] != 0 && uncertain == 0) {
        v.Violation(absl::StrCat("last-widget: product ", id,
                                 " answered OUT_OF_STOCK but shows ",
                                 (*after)[i], " available"));
      }
    }
  }
  if (o.scenario == Scenario::kLastWidget) {
    v.notes.push_back(absl::StrCat(v.sold_out_products, " of ", o.products,
                                   " product(s) raced to sold out"));
  }

  // 2. Sampled products read whole: never oversold, counters moved exactly.
  std::vector<ProductState> now;
  std::vector<int64_t> lagging;  // indexes
  if (absl::Status s = ReadSample(clients, o, baseline.sampled, &now); !s.ok()) {
    v.Violation(absl::StrCat("cannot read products after the run: ", s.message()));
  } else {
    for (size_t k = 0; k < baseline.sampled.size(); ++k) {
      const int64_t i = baseline.sampled[k];
      const int64_t id = o.product_base + i;
      const ProductState& a = baseline.sampled_state[k];
      const ProductState& b = now[k];
      if (!b.found) {
        v.Violation(absl::StrCat("product ", id, " has disappeared"));
        continue;
      }
      ++v.products_read;
      if (b.strict && b.reserved + b.purchased > b.total) {
        v.Violation(absl::StrCat("OVERSOLD: product ", id, " has ", b.reserved,
                                 " reserved + ", b.purchased,
                                 " purchased > total ", b.total));
      }
      const int64_t demand = b.reserved + b.purchased;
      if (!b.strict && (b.backordered < 0 || b.backordered > demand ||
                        demand - b.backordered > b.total)) {
        v.Violation(absl::StrCat(
            "OVERSOLD: BACKORDER product ", id, " has ", b.reserved,
            " reserved + ", b.purchased, " purchased - ", b.backordered,
            " backordered covered by stock, not within 0..total ", b.total));
      } else if (LagsAFill(b)) {
        lagging.push_back(i);
      }
      if (!b.strict) v.backordered_units += b.backordered;
      if (b.available != std::max<int64_t>(0, b.total - b.reserved - b.purchased)) {
        v.Violation(absl::StrCat("product ", id, ": available ", b.available,
                                 " != total - reserved - purchased"));
      }
      const int64_t slack = tally.uncertain(i) * q;
      const int64_t want_reserved =
          tally.granted(i) - tally.committed(i) - tally.released(i);
      const int64_t moved = b.reserved - a.reserved;
      const int64_t expired_at_most = tally.abandoned(i);
      if (moved > want_reserved + slack ||
          moved < want_reserved - expired_at_most - slack ||
          std::llabs((b.purchased - a.purchased) - tally.committed(i)) > slack) {
        v.Violation(absl::StrCat(
            "product ", id, ": reserved moved by ", moved, " and purchased by ",
            b.purchased - a.purchased, "; acknowledged: ", want_reserved,
            " held", expired_at_most > 0
                ? absl::StrCat(" (", expired_at_most, " abandoned)")
                : "",
            ", ", tally.committed(i), " purchased"));
      }
    }
  }

  // A fill that skipped a row locked at the time is made by the product's
  // next change or the service's sweeper: read those products again later.
  v.lagging_fills = static_cast<int64_t>(lagging.size());
  if (!lagging.empty() && o.fill_grace > absl::ZeroDuration()) {
    absl::SleepFor(o.fill_grace);
    std::vector<ProductState> again;
    if (absl::Status s = ReadSample(clients, o, lagging, &again); !s.ok()) {
      v.Violation(absl::StrCat("cannot read products again: ", s.message()));
    } else {
      v.lagging_fills = std::count_if(again.begin(), again.end(), LagsAFill);
      v.notes.push_back(absl::StrCat(
          lagging.size(), " BACKORDER product(s) had backorders their stock "
          "could fill right after the run; ", v.lagging_fills, " still had "
          "after ", absl::FormatDuration(o.fill_grace), " (--fill_grace)"));
    }
  } else if (!lagging.empty()) {
    v.notes.push_back(absl::StrCat(
        v.lagging_fills, " BACKORDER product(s) read whole have backorders "
        "their stock could fill (a fill skipped a row locked at the time; the "
        "service's sweeper or the product's next change fills it)"));
  }

  // 3. Acknowledged reservations readable by id, in the expected state.
  std::atomic<int64_t> checked{0};
  absl::Mutex mu;
  std::vector<std::string> lost;
  ParallelFor(static_cast<int64_t>(run.sample.size()), [&](int64_t k) {
    const AckedReservation& r = run.sample[k];
    v1::GetReservationRequest req;
    req.set_reservation_id(r.reservation_id);
    v1::Reservation got;
    grpc::Status s;
    for (int attempt = 1; attempt <= kAttempts; ++attempt) {
      s = clients.For(k).GetReservation(Context().get(), req, &got);
      if (s.ok() || !Retryable(s)) break;
    }
    std::string problem;
    if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
      problem = absl::StrCat("LOST: acknowledged reservation ", r.reservation_id,
                             " (request ", r.request_id, ") is not found");
    } else if (!s.ok()) {
      problem = absl::StrCat("GetReservation ", r.reservation_id, ": ", Describe(s));
    } else {
      v1::ReservationStatus want = v1::RESERVATION_STATUS_PENDING;
      if (r.state == ExpectedState::kPurchased) want = v1::RESERVATION_STATUS_PURCHASED;
      if (r.state == ExpectedState::kReleased) want = v1::RESERVATION_STATUS_RELEASED;
      bool state_ok = got.status() == want;
      // A hold may run out by itself.
      if (want == v1::RESERVATION_STATUS_PENDING &&
          got.status() == v1::RESERVATION_STATUS_EXPIRED) {
        state_ok = true;
      }
      if (got.product_id() != r.product_id || got.quantity() != r.quantity ||
          got.request_id() != r.request_id || !state_ok) {
        problem = absl::StrCat("reservation ", r.reservation_id, " reads ",
                               got.ShortDebugString(), "; expected product ",
                               r.product_id, " x", r.quantity, " ",
                               StateName(want));
      }
    }
    checked.fetch_add(1);
    if (!problem.empty()) {
      absl::MutexLock lock(&mu);
      lost.push_back(std::move(problem));
    }
  });
  v.reservations_checked = checked.load();
  for (auto& p : lost) v.Violation(std::move(p));
  if (run.acknowledged > v.reservations_checked) {
    v.notes.push_back(absl::StrCat("read back a random sample of ",
                                   v.reservations_checked, " of ",
                                   run.acknowledged,
                                   " acknowledged reservations (--verify_sample)"));
  }
  if (v.abandoned_units > 0) {
    v.notes.push_back(absl::StrCat(
        v.abandoned_units, " unit(s) of abandoned carts may have run out; the "
        "counter checks allowed for them"));
  }
  if (v.uncertain_calls > 0) {
    v.notes.push_back(absl::StrCat(
        v.uncertain_calls,
        " call(s) ended in an error with an unknown effect; the counter checks "
        "allowed for them"));
  }
  return v;
}

}  // namespace inventory::loadgen
