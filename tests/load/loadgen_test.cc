// Unit tests of the load generator's parts that need no server: the latency
// histogram, outcome classification, option defaults and the report.
#include <random>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "inventory/loadgen/histogram.h"
#include "inventory/loadgen/options.h"
#include "inventory/loadgen/report.h"
#include "inventory/loadgen/stats.h"
#include "inventory/loadgen/tally.h"

namespace inventory::loadgen {
namespace {

using ::testing::HasSubstr;

TEST(LatencyHistogramTest, BucketsCoverEveryValueContiguously) {
  EXPECT_EQ(LatencyHistogram::IndexOf(0), 0);
  EXPECT_EQ(LatencyHistogram::IndexOf(127), 127);
  EXPECT_EQ(LatencyHistogram::IndexOf(128), 128);
  for (int i = 0; i + 1 < LatencyHistogram::bucket_count(); ++i) {
    ASSERT_EQ(LatencyHistogram::HighestOf(i) + 1, LatencyHistogram::LowestOf(i + 1))
        << "gap after bucket " << i;
    ASSERT_EQ(LatencyHistogram::IndexOf(LatencyHistogram::LowestOf(i)), i);
    ASSERT_EQ(LatencyHistogram::IndexOf(LatencyHistogram::HighestOf(i)), i);
  }
  // Values past the range land in the last bucket rather than overflowing.
  EXPECT_EQ(LatencyHistogram::IndexOf(int64_t{1} << 50),
            LatencyHistogram::bucket_count() - 1);
}

TEST(LatencyHistogramTest, PercentilesWithinOnePercentOfExact) {
  LatencyHistogram h;
  std::vector<int64_t> values;
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> d(13.0, 1.0);  // ~0.4 ms median
  for (int i = 0; i < 100000; ++i) {
    const int64_t v = static_cast<int64_t>(d(rng));
    values.push_back(v);
    h.Record(v);
  }
  std::sort(values.begin(), values.end());
  for (double p : {50.0, 90.0, 99.0, 99.9}) {
    const int64_t exact = values[static_cast<size_t>(std::ceil(p / 100 * values.size())) - 1];
    EXPECT_NEAR(h.Percentile(p), exact, exact * 0.01) << "p" << p;
  }
  EXPECT_EQ(h.count(), 100000);
  EXPECT_EQ(h.min(), values.front());
  EXPECT_EQ(h.max(), values.back());
  EXPECT_EQ(h.Percentile(100), values.back());
}

TEST(LatencyHistogramTest, MergeEqualsRecordingEverythingInOne) {
  LatencyHistogram a, b, all;
  for (int64_t v = 1; v < 5000000; v = v * 3 / 2 + 1) {
    (v % 2 ? a : b).Record(v);
    all.Record(v);
  }
  a.Merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.min(), all.min());
  EXPECT_EQ(a.max(), all.max());
  EXPECT_DOUBLE_EQ(a.mean(), all.mean());
  EXPECT_EQ(a.Percentile(99), all.Percentile(99));
}

TEST(LatencyHistogramTest, CoarseBarsHoldEverySample) {
  LatencyHistogram h;
  for (int i = 1; i <= 1000; ++i) h.Record(i * 1000);
  auto bars = h.Coarse(10);
  ASSERT_EQ(bars.size(), 10u);
  int64_t total = 0;
  for (const auto& b : bars) total += b.count;
  EXPECT_EQ(total, 1000);
  EXPECT_EQ(bars.back().mark, 1000000);
}

grpc::Status WithReason(grpc::StatusCode code, const std::string& reason) {
  google::rpc::ErrorInfo info;
  info.set_reason(reason);
  info.set_domain("inventory.v1");
  google::rpc::Status details;
  details.set_code(code);
  details.add_details()->PackFrom(info);
  return grpc::Status(code, "message", details.SerializeAsString());
}

TEST(ClassifyTest, OutOfStockIsExpectedForReserveOnly) {
  const grpc::Status oos =
      WithReason(grpc::StatusCode::FAILED_PRECONDITION, "OUT_OF_STOCK");
  Outcome reserve = Classify(Method::kReserveItem, oos);
  EXPECT_EQ(reserve.key, "OUT_OF_STOCK");
  EXPECT_TRUE(reserve.expected);
  EXPECT_TRUE(reserve.out_of_stock);
  EXPECT_FALSE(Classify(Method::kCommitReservation, oos).expected);
}

TEST(ClassifyTest, OtherErrorsAreUnexpectedAndNamedWithTheirReason) {
  Outcome o = Classify(Method::kReserveItem,
                       WithReason(grpc::StatusCode::UNAVAILABLE, "SHARD_UNAVAILABLE"));
  EXPECT_EQ(o.key, "UNAVAILABLE [SHARD_UNAVAILABLE]");
  EXPECT_FALSE(o.expected);
  Outcome plain = Classify(Method::kHealthCheck,
                           grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "late"));
  EXPECT_EQ(plain.key, "DEADLINE_EXCEEDED");
  EXPECT_FALSE(plain.expected);
  EXPECT_TRUE(Classify(Method::kHealthCheck, grpc::Status::OK).expected);
}

TEST(CallStatsTest, CountsUnexpectedErrorsAndCapsTheirKinds) {
  CallStats s;
  Outcome bad{"INTERNAL", false, false};
  for (int i = 0; i < 100; ++i) s.Record(1000, bad, "error " + std::to_string(i));
  s.Record(1000, Outcome{"OK", true, false}, "");
  EXPECT_EQ(s.count(), 101);
  EXPECT_EQ(s.unexpected(), 100);
  EXPECT_EQ(s.outcomes().at("INTERNAL"), 100);
  EXPECT_LE(s.errors().size(), CallStats::kMaxErrors + 1);
  int64_t listed = 0;
  for (const auto& [k, n] : s.errors()) listed += n;
  EXPECT_EQ(listed, 100);
}

TEST(OptionsTest, ScenarioDefaults) {
  LoadOptions hot;
  hot.scenario = Scenario::kHot;
  ASSERT_TRUE(Finalize(&hot).ok());
  EXPECT_EQ(hot.products, 1);
  EXPECT_GT(hot.stock, 1'000'000'000);
  EXPECT_GT(hot.product_base, 0);
  EXPECT_FALSE(hot.run_id.empty());

  LoadOptions widget;
  widget.scenario = Scenario::kLastWidget;
  ASSERT_TRUE(Finalize(&widget).ok());
  EXPECT_EQ(widget.stock, 100);
  EXPECT_EQ(widget.EffectiveDuration(), absl::Seconds(10));
  widget.requests = 5;
  EXPECT_EQ(widget.EffectiveDuration(), absl::Minutes(5));
}

// ci_load_test runs a last-widget race that can end in a few hundred ms and
// then a cart run: their derived product ids must not overlap.
TEST(OptionsTest, RunsMillisecondsApartGetDisjointProducts) {
  LoadOptions first;
  first.scenario = Scenario::kLastWidget;
  first.products = 1000;
  ASSERT_TRUE(Finalize(&first).ok());
  absl::SleepFor(absl::Milliseconds(2));
  LoadOptions second;
  second.scenario = Scenario::kCart;
  second.products = 1000;
  ASSERT_TRUE(Finalize(&second).ok());
  EXPECT_GE(second.product_base, first.product_base + first.products);
}

TEST(OptionsTest, RejectsExistingProductsWithoutABase) {
  LoadOptions o;
  o.setup = false;
  EXPECT_EQ(Finalize(&o).code(), absl::StatusCode::kInvalidArgument);
  LoadOptions hot;
  hot.scenario = Scenario::kHot;
  hot.products = 5;
  EXPECT_EQ(Finalize(&hot).code(), absl::StatusCode::kInvalidArgument);
}

TEST(OptionsTest, BackorderOnlyWhereProductsCanBeOversubscribed) {
  for (Scenario s : {Scenario::kUniform, Scenario::kHot, Scenario::kCart}) {
    LoadOptions o;
    o.scenario = s;
    o.backorder = true;
    EXPECT_TRUE(Finalize(&o).ok()) << ScenarioName(s);
  }
  LoadOptions widget;
  widget.scenario = Scenario::kLastWidget;
  widget.backorder = true;
  absl::Status refused = Finalize(&widget);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("never sells out"));
  LoadOptions health;
  health.scenario = Scenario::kHealth;
  health.backorder = true;
  EXPECT_EQ(Finalize(&health).code(), absl::StatusCode::kInvalidArgument);
  LoadOptions existing;
  existing.backorder = true;
  existing.setup = false;
  existing.product_base = 1000;
  EXPECT_EQ(Finalize(&existing).code(), absl::StatusCode::kInvalidArgument);
}

// Each refusal names the flag at fault.
TEST(OptionsTest, CartShareFlagsMustSplitTheCarts) {
  auto refusal = [](double commit, double abandon, Scenario s) {
    LoadOptions o;
    o.scenario = s;
    o.commit_ratio = commit;
    o.abandon_ratio = abandon;
    absl::Status st = Finalize(&o);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument)
        << commit << " " << abandon << " " << ScenarioName(s);
    return std::string(st.message());
  };
  EXPECT_THAT(refusal(1.5, 0, Scenario::kCart), HasSubstr("--commit_ratio must"));
  EXPECT_THAT(refusal(0, -0.1, Scenario::kCart), HasSubstr("--abandon_ratio must"));
  EXPECT_THAT(refusal(0, 1.5, Scenario::kCart), HasSubstr("--abandon_ratio must"));
  EXPECT_THAT(refusal(0.6, 0.5, Scenario::kCart),
              HasSubstr("--commit_ratio + --abandon_ratio must be at most 1"));
  EXPECT_THAT(refusal(0, 0.5, Scenario::kUniform),
              HasSubstr("--abandon_ratio applies to cart, not uniform"));
  LoadOptions hot;
  hot.scenario = Scenario::kHot;
  hot.abandon_at_end = true;
  absl::Status refused = Finalize(&hot);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.message()),
              HasSubstr("--abandon_at_end applies to cart, not hot"));

  LoadOptions all_split;
  all_split.scenario = Scenario::kCart;
  all_split.commit_ratio = 0.25;
  all_split.abandon_ratio = 0.75;
  EXPECT_TRUE(Finalize(&all_split).ok());
}

TEST(OptionsTest, FillGraceMustNotBeNegative) {
  LoadOptions o;
  o.fill_grace = absl::Seconds(-1);
  absl::Status refused = Finalize(&o);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("--fill_grace"));
}

TEST(ReservoirTest, KeepsAtMostItsCapacityAndCountsAll) {
  Reservoir r(10, 1);
  for (int i = 0; i < 1000; ++i) r.Offer({absl::StrCat("r", i), 1, 1, "", {}});
  EXPECT_EQ(r.items().size(), 10u);
  EXPECT_EQ(r.seen(), 1000);
}

TEST(ReportTest, FailsOnUnexpectedErrorsAndViolations) {
  LoadOptions o;
  ASSERT_TRUE(Finalize(&o).ok());
  RunResult run;
  run.measured_ns = 1'000'000'000;
  run.issued_calls = 2;
  run.stats[0].Record(2'000'000, Outcome{"OK", true, false}, "");
  run.stats[0].Record(3'000'000, Outcome{"UNAVAILABLE", false, false}, "down");
  Verification v;
  v.ran = true;
  v.Violation("OVERSOLD: product 1");
  Report report{&o, &run, &v, FailuresOf(o, run, v)};
  ASSERT_EQ(report.failures.size(), 2u);
  EXPECT_THAT(report.failures[0], HasSubstr("UNAVAILABLE x1"));
  const std::string text = FormatSummary(report);
  EXPECT_THAT(text, HasSubstr("Requests/sec:\t2.00"));
  EXPECT_THAT(text, HasSubstr("VIOLATION: OVERSOLD"));
  EXPECT_THAT(text, HasSubstr("Result: FAIL"));
  const std::string json = FormatJson(report);
  EXPECT_THAT(json, HasSubstr("\"count\":2"));
  EXPECT_THAT(json, HasSubstr("\"passed\":false"));
  EXPECT_THAT(json, HasSubstr("\"UNAVAILABLE\":1"));
}

}  // namespace
}  // namespace inventory::loadgen
