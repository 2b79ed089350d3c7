// Unit tests of ShardHealth (include/inventory/health/shard_health.h): a shard
// serves nothing until verified; a failed round trip makes it unreachable and
// a successful one reachable again; a probe running longer than hang_after
// counts as unreachable (checked with a `now` in the future, never a sleep);
// last_error / last_error_time record the latest failure.
#include "inventory/health/shard_health.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace inventory {
namespace {

TEST(ShardHealthTest, NotReachableUntilVerified) {
  ShardHealth health;
  const absl::Time now = absl::Now();
  EXPECT_FALSE(health.verified());
  EXPECT_FALSE(health.Reachable(now));
  // A success before verification does not make it serve.
  health.ReportSuccess();
  EXPECT_FALSE(health.Reachable(now));
  health.MarkVerified();
  EXPECT_TRUE(health.verified());
  EXPECT_TRUE(health.Reachable(now));
}

TEST(ShardHealthTest, FailureThenSuccess) {
  ShardHealth health;
  health.MarkVerified();
  ASSERT_TRUE(health.Reachable(absl::Now()));
  health.ReportFailure("connection refused");
  EXPECT_FALSE(health.Reachable(absl::Now()));
  EXPECT_TRUE(health.verified()) << "a failure must not undo verification";
  health.ReportFailure("connection refused again");
  EXPECT_FALSE(health.Reachable(absl::Now()));
  health.ReportSuccess();
  EXPECT_TRUE(health.Reachable(absl::Now()));
  health.ReportSuccess();
  EXPECT_TRUE(health.Reachable(absl::Now()));
}

TEST(ShardHealthTest, FailureBeforeVerificationStaysUnreachableAfter) {
  ShardHealth health;
  health.ReportFailure("down");
  health.MarkVerified();
  EXPECT_FALSE(health.Reachable(absl::Now()));
  health.ReportSuccess();
  EXPECT_TRUE(health.Reachable(absl::Now()));
}

TEST(ShardHealthTest, HungProbeCountsAsUnreachable) {
  ShardHealth health(absl::Milliseconds(100));
  health.MarkVerified();
  const absl::Time start = absl::Now();
  health.ProbeStarted(start);
  // A probe running for less than hang_after is fine.
  EXPECT_TRUE(health.Reachable(start));
  EXPECT_TRUE(health.Reachable(start + absl::Milliseconds(50)));
  EXPECT_TRUE(health.Reachable(start + absl::Milliseconds(99)));
  // Longer than hang_after: the shard is treated as hung.
  EXPECT_FALSE(health.Reachable(start + absl::Milliseconds(101)));
  EXPECT_FALSE(health.Reachable(start + absl::Seconds(10)));
  EXPECT_FALSE(health.Reachable(start + absl::Hours(24)));
  // The probe ends: reachable again at any time.
  health.ProbeFinished(start + absl::Milliseconds(50));
  EXPECT_TRUE(health.Reachable(start + absl::Seconds(10)));
  EXPECT_TRUE(health.Reachable(start + absl::Hours(24)));
}

TEST(ShardHealthTest, HangAfterDefaultIsTwoSeconds) {
  ShardHealth health;
  health.MarkVerified();
  const absl::Time start = absl::Now();
  health.ProbeStarted(start);
  EXPECT_TRUE(health.Reachable(start + absl::Milliseconds(1900)));
  EXPECT_FALSE(health.Reachable(start + absl::Milliseconds(2100)));
}

TEST(ShardHealthTest, NewProbeRestartsTheClock) {
  ShardHealth health(absl::Seconds(1));
  health.MarkVerified();
  const absl::Time t0 = absl::Now();
  health.ProbeStarted(t0);
  EXPECT_FALSE(health.Reachable(t0 + absl::Seconds(5)));
  health.ProbeFinished(t0 + absl::Seconds(5));
  health.ProbeStarted(t0 + absl::Seconds(5));
  EXPECT_TRUE(health.Reachable(t0 + absl::Seconds(5) + absl::Milliseconds(500)));
  EXPECT_FALSE(health.Reachable(t0 + absl::Seconds(7)));
}

TEST(ShardHealthTest, HungProbeAndFailureAreIndependent) {
  ShardHealth health(absl::Seconds(1));
  health.MarkVerified();
  const absl::Time t0 = absl::Now();
  health.ProbeStarted(t0);
  health.ReportSuccess();
  // A call succeeding does not hide a hung probe...
  EXPECT_FALSE(health.Reachable(t0 + absl::Seconds(2)));
  health.ProbeFinished(t0 + absl::Seconds(2));
  // ...and a finished probe does not hide a reported failure.
  health.ReportFailure("reset by peer");
  EXPECT_FALSE(health.Reachable(t0 + absl::Seconds(2)));
  health.ReportSuccess();
  EXPECT_TRUE(health.Reachable(t0 + absl::Seconds(2)));
}

// A hang is the last failure while it lasts, and stays recorded after the
// probe ends, dated when the probe began to count as hung; an older error
// does not hide it.
TEST(ShardHealthTest, AHungProbeIsTheLastFailureAndIsKept) {
  ShardHealth health(absl::Seconds(2));
  health.MarkVerified();
  health.ReportFailure("connection refused");
  health.ReportSuccess();
  // Whole microseconds: the probe's start is kept at that resolution.
  const absl::Time t0 = absl::FromUnixMicros(absl::ToUnixMicros(absl::Now()));
  health.ProbeStarted(t0);
  EXPECT_EQ(health.LastFailure(t0 + absl::Seconds(1)).what,
            "connection refused");
  ShardHealth::Failure during = health.LastFailure(t0 + absl::Seconds(3));
  EXPECT_EQ(during.what,
            "a health probe has had no answer for 3s (shard hung or "
            "overloaded)");
  EXPECT_EQ(during.when, t0 + absl::Seconds(2));
  health.ProbeFinished(t0 + absl::Seconds(7));
  ShardHealth::Failure after = health.LastFailure(t0 + absl::Seconds(8));
  EXPECT_EQ(after.what, "a health probe took 7s (shard hung or overloaded)");
  EXPECT_EQ(after.when, t0 + absl::Seconds(2));
  EXPECT_EQ(health.LastFailure(t0 + absl::Hours(1)).what, after.what);
  // A slow probe that stays under hang_after is no failure.
  health.ReportFailure("reset by peer");
  health.ProbeStarted(t0 + absl::Seconds(10));
  health.ProbeFinished(t0 + absl::Seconds(11));
  EXPECT_EQ(health.LastFailure(t0 + absl::Seconds(12)).what, "reset by peer");
}

TEST(ShardHealthTest, LastErrorInitiallyEmpty) {
  ShardHealth health;
  EXPECT_EQ(health.LastFailure(absl::Now()).what, "");
  EXPECT_EQ(health.LastFailure(absl::Now()).when, absl::InfinitePast());
}

TEST(ShardHealthTest, LastErrorRecordsLatestFailure) {
  ShardHealth health;
  health.MarkVerified();
  const absl::Time before = absl::Now();
  health.ReportFailure("connection refused");
  const absl::Time after = absl::Now();
  EXPECT_EQ(health.LastFailure(absl::Now()).what, "connection refused");
  EXPECT_GE(health.LastFailure(absl::Now()).when, before);
  EXPECT_LE(health.LastFailure(absl::Now()).when, after);

  const absl::Time first_time = health.LastFailure(absl::Now()).when;
  health.ReportFailure("timeout");
  EXPECT_EQ(health.LastFailure(absl::Now()).what, "timeout");
  EXPECT_GE(health.LastFailure(absl::Now()).when, first_time);
  EXPECT_LE(health.LastFailure(absl::Now()).when, absl::Now());

  // A success does not erase what the last failure was.
  health.ReportSuccess();
  EXPECT_TRUE(health.Reachable(absl::Now()));
  EXPECT_EQ(health.LastFailure(absl::Now()).what, "timeout");
  EXPECT_GE(health.LastFailure(absl::Now()).when, first_time);
}

TEST(ShardHealthTest, ConcurrentReportsSettleOnTheLastOne) {
  ShardHealth health;
  health.MarkVerified();
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < 2000; ++i) {
        if ((i + t) % 2 == 0) {
          health.ReportFailure("flap");
        } else {
          health.ReportSuccess();
        }
        (void)health.Reachable(absl::Now());
        (void)health.LastFailure(absl::Now()).what;
      }
    });
  }
  go.store(true);
  for (auto& th : threads) th.join();
  health.ReportFailure("final");
  EXPECT_FALSE(health.Reachable(absl::Now()));
  EXPECT_EQ(health.LastFailure(absl::Now()).what, "final");
  health.ReportSuccess();
  EXPECT_TRUE(health.Reachable(absl::Now()));
}

}  // namespace
}  // namespace inventory
