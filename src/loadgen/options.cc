#include "inventory/loadgen/options.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace inventory::loadgen {
namespace {

// CreateProduct accepts totals up to 2^50.
constexpr int64_t kHugeStock = int64_t{1'000'000'000'000'000};
// Largest --products: per-product tallies are kept in memory (8 bytes each
// per counter).
constexpr int64_t kMaxProducts = 10'000'000;

}  // namespace

std::optional<Scenario> ParseScenario(absl::string_view name) {
  if (name == "uniform") return Scenario::kUniform;
  if (name == "hot") return Scenario::kHot;
  if (name == "last-widget" || name == "last_widget") {
    return Scenario::kLastWidget;
  }
  if (name == "cart") return Scenario::kCart;
  if (name == "health") return Scenario::kHealth;
  return std::nullopt;
}

const char* ScenarioName(Scenario s) {
  switch (s) {
    case Scenario::kUniform: return "uniform";
    case Scenario::kHot: return "hot";
    case Scenario::kLastWidget: return "last-widget";
    case Scenario::kCart: return "cart";
    case Scenario::kHealth: return "health";
  }
  return "?";
}

bool UsesProducts(Scenario s) { return s != Scenario::kHealth; }

absl::Duration LoadOptions::EffectiveDuration() const {
  if (duration > absl::ZeroDuration()) return duration;
  return requests > 0 ? absl::Minutes(5) : absl::Seconds(10);
}

absl::Status Finalize(LoadOptions* o) {
  if (o->targets.empty()) return absl::InvalidArgumentError("--target is empty");
  for (const auto& t : o->targets) {
    if (t.empty()) {
      return absl::InvalidArgumentError("--target has an empty entry");
    }
  }
  if (o->concurrency < 1 || o->concurrency > 100000) {
    return absl::InvalidArgumentError("--concurrency must be 1..100000");
  }
  if (o->rate < 0) return absl::InvalidArgumentError("--rate must be >= 0");
  if (o->max_inflight < 1) {
    return absl::InvalidArgumentError("--max_inflight must be >= 1");
  }
  if (o->duration < absl::ZeroDuration() || o->requests < 0) {
    return absl::InvalidArgumentError(
        "--duration and --requests must not be negative");
  }
  if (o->warmup < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--warmup must not be negative");
  }
  if (o->warmup > absl::ZeroDuration() && o->requests > 0) {
    return absl::InvalidArgumentError(
        "--warmup applies to duration-bound runs; drop it or --requests");
  }
  if (o->threads < 1 || o->threads > 64) {
    return absl::InvalidArgumentError("--threads must be 1..64");
  }
  if (o->connections < 1 || o->connections > 64) {
    return absl::InvalidArgumentError("--connections must be 1..64");
  }
  if (o->timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--timeout must be positive");
  }
  if (o->quantity < 1) return absl::InvalidArgumentError("--quantity must be >= 1");
  if (o->commit_ratio < 0 || o->commit_ratio > 1) {
    return absl::InvalidArgumentError("--commit_ratio must be within 0..1");
  }
  if (o->abandon_ratio < 0 || o->abandon_ratio > 1) {
    return absl::InvalidArgumentError("--abandon_ratio must be within 0..1");
  }
  if (o->commit_ratio + o->abandon_ratio > 1) {
    return absl::InvalidArgumentError(
        "--commit_ratio + --abandon_ratio must be at most 1 (the other carts "
        "release)");
  }
  if ((o->abandon_ratio > 0 || o->abandon_at_end) &&
      o->scenario != Scenario::kCart) {
    return absl::InvalidArgumentError(absl::StrCat(
        o->abandon_ratio > 0 ? "--abandon_ratio" : "--abandon_at_end",
        " applies to cart, not ", ScenarioName(o->scenario)));
  }
  if (o->browse_ids < 0 || o->browse_ids > 999) {
    return absl::InvalidArgumentError("--browse_ids must be 0..999");
  }
  if (o->verify_sample < 0) {
    return absl::InvalidArgumentError("--verify_sample must be >= 0");
  }
  if (o->fill_grace < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--fill_grace must not be negative");
  }
  if (o->products < 0 || o->stock < 0 || o->product_base < 0) {
    return absl::InvalidArgumentError(
        "--products, --stock and --product_base must not be negative");
  }

  switch (o->scenario) {
    case Scenario::kHot:
      if (o->products > 1) {
        return absl::InvalidArgumentError("hot uses one product (--products 1)");
      }
      o->products = 1;
      if (o->stock == 0) o->stock = kHugeStock;
      break;
    case Scenario::kUniform:
      if (o->products == 0) o->products = 1000;
      if (o->stock == 0) o->stock = 1'000'000'000;
      break;
    case Scenario::kCart:
      if (o->products == 0) o->products = 1000;
      if (o->stock == 0) o->stock = 1'000'000'000;
      break;
    case Scenario::kLastWidget:
      if (o->products == 0) o->products = 1;
      if (o->stock == 0) o->stock = 100;
      break;
    case Scenario::kHealth:
      break;
  }
  if (o->backorder && (o->scenario == Scenario::kLastWidget ||
                       o->scenario == Scenario::kHealth)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--backorder applies to uniform, hot and cart, not ",
        ScenarioName(o->scenario),
        o->scenario == Scenario::kLastWidget
            ? " (a BACKORDER product never sells out)"
            : " (it creates no products)"));
  }
  if (o->backorder && !o->setup) {
    return absl::InvalidArgumentError(
        "--backorder creates the products; with --setup=false they keep "
        "their own policy");
  }
  if (o->products > kMaxProducts) {
    return absl::InvalidArgumentError(
        absl::StrCat("--products must be at most ", kMaxProducts));
  }
  if (UsesProducts(o->scenario) && o->stock > kHugeStock) {
    return absl::InvalidArgumentError(
        absl::StrCat("--stock must be at most ", kHugeStock));
  }
  if (UsesProducts(o->scenario) && o->product_base == 0) {
    if (!o->setup) {
      return absl::InvalidArgumentError(
          "--setup=false needs --product_base (the first id of the existing "
          "products)");
    }
    // Ids nobody used before: the clock in milliseconds times 10^4, so two
    // runs collide only if the second starts within products / 10^4 ms of
    // the first (seconds times 10^7 made two short runs in one second
    // collide). Bases made by the seconds formula are all older.
    o->product_base = absl::ToUnixMillis(absl::Now()) * 10'000 + 1;
  }
  if (UsesProducts(o->scenario) &&
      o->product_base > INT64_MAX - o->products) {
    return absl::InvalidArgumentError("--product_base is too large");
  }
  if (o->run_id.empty()) {
    std::random_device rd;
    o->run_id = absl::StrFormat("lg%08x%08x", rd(), rd());
  }
  return absl::OkStatus();
}

}  // namespace inventory::loadgen
