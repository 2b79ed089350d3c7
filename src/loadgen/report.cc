#include "inventory/loadgen/report.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace inventory::loadgen {
namespace {

constexpr double kPercentiles[] = {10, 25, 50, 75, 90, 95, 99, 99.9};

std::string Ms(int64_t ns) { return absl::StrFormat("%.2f ms", ns / 1e6); }

std::string Seconds(int64_t ns) {
  return ns >= 1'000'000'000 ? absl::StrFormat("%.2f s", ns / 1e9) : Ms(ns);
}

double Rps(int64_t count, int64_t ns) {
  return ns > 0 ? count / (ns / 1e9) : 0.0;
}

// All methods merged.
CallStats Overall(const RunResult& run) {
  CallStats all;
  for (const auto& s : run.stats) all.Merge(s);
  return all;
}

// Minimal JSON writer: objects and arrays of numbers and strings.
class Json {
 public:
  Json& Open(char c) {
    Comma();
    out_ += c;
    first_ = true;
    return *this;
  }
  Json& Close(char c) {
    out_ += c;
    first_ = false;
    return *this;
  }
  Json& Key(absl::string_view k) {
    Comma();
    Quote(k);
    out_ += ':';
    first_ = true;
    return *this;
  }
  Json& Str(absl::string_view s) {
    Comma();
    Quote(s);
    return *this;
  }
  Json& Num(int64_t n) {
    Comma();
    absl::StrAppend(&out_, n);
    return *this;
  }
  Json& Num(double d) {
    Comma();
    absl::StrAppend(&out_, absl::StrFormat("%.6g", d));
    return *this;
  }
  Json& Bool(bool b) {
    Comma();
    out_ += b ? "true" : "false";
    return *this;
  }
  const std::string& str() const { return out_; }

 private:
  void Comma() {
    if (!first_) out_ += ',';
    first_ = false;
  }
  void Quote(absl::string_view s) {
    out_ += '"';
    for (unsigned char c : s) {
      switch (c) {
        case '"': out_ += "\\\""; break;
        case '\\': out_ += "\\\\"; break;
        case '\n': out_ += "\\n"; break;
        case '\r': out_ += "\\r"; break;
        case '\t': out_ += "\\t"; break;
        default:
          if (c < 0x20) {
            absl::StrAppend(&out_, absl::StrFormat("\\u%04x", c));
          } else {
            out_ += static_cast<char>(c);
          }
      }
    }
    out_ += '"';
  }

  std::string out_;
  bool first_ = true;
};

// The ghz-like figures of a set of calls.
void StatsJson(Json& j, const CallStats& s, int64_t total_ns) {
  const LatencyHistogram& h = s.latency();
  j.Key("count").Num(s.count());
  j.Key("total").Num(total_ns);
  j.Key("average").Num(static_cast<int64_t>(h.mean()));
  j.Key("fastest").Num(h.min());
  j.Key("slowest").Num(h.max());
  j.Key("rps").Num(Rps(s.count(), total_ns));
  j.Key("latencyDistribution").Open('[');
  for (double p : kPercentiles) {
    j.Open('{').Key("percentage").Num(p).Key("latency").Num(h.Percentile(p)).Close('}');
  }
  j.Close(']');
  j.Key("statusCodeDistribution").Open('{');
  for (const auto& [k, n] : s.outcomes()) j.Key(k).Num(n);
  j.Close('}');
  j.Key("unexpected").Num(s.unexpected());
  j.Key("errorDistribution").Open('{');
  for (const auto& [k, n] : s.errors()) j.Key(k).Num(n);
  j.Close('}');
}

}  // namespace

std::vector<std::string> FailuresOf(const LoadOptions& options,
                                    const RunResult& run,
                                    const Verification& v) {
  std::vector<std::string> out;
  const CallStats all = Overall(run);
  if (all.unexpected() > 0) {
    std::vector<std::string> kinds;
    for (const auto& [k, n] : all.outcomes()) {
      if (k != "OK" && k != "OUT_OF_STOCK") kinds.push_back(absl::StrCat(k, " x", n));
    }
    out.push_back(absl::StrCat(all.unexpected(), " call(s) ended with an unexpected code: ",
                               absl::StrJoin(kinds, ", ")));
  }
  if (v.violation_count > 0) {
    out.push_back(absl::StrCat(v.violation_count, " invariant violation(s)"));
  } else if (run.problem_count > 0) {
    out.push_back(absl::StrCat(run.problem_count, " wrong answer(s)"));
  }
  if (all.count() == 0 && run.issued_calls == 0) {
    out.push_back("no call was made");
  }
  return out;
}

std::string FormatSummary(const Report& r) {
  const LoadOptions& o = *r.options;
  const RunResult& run = *r.run;
  const CallStats all = Overall(run);
  const LatencyHistogram& h = all.latency();
  std::string s;
  absl::StrAppend(&s, "\nSummary:\n");
  absl::StrAppend(
      &s, "  Scenario:\t", ScenarioName(o.scenario),
      o.backorder ? " on BACKORDER products" : "", " (",
      o.rate > 0 ? absl::StrFormat("open loop at %.0f/s", o.rate)
                 : absl::StrCat("closed loop, concurrency ", o.concurrency),
      ", ", o.threads, " thread(s), ", o.targets.size(), " target(s))\n");
  absl::StrAppend(&s, "  Count:\t", all.count(), "\n");
  absl::StrAppend(&s, "  Total:\t", Seconds(run.measured_ns), "\n");
  absl::StrAppend(&s, "  Slowest:\t", Ms(h.max()), "\n");
  absl::StrAppend(&s, "  Fastest:\t", Ms(h.min()), "\n");
  absl::StrAppend(&s, "  Average:\t", Ms(static_cast<int64_t>(h.mean())), "\n");
  absl::StrAppend(&s, "  Requests/sec:\t",
                  absl::StrFormat("%.2f", Rps(all.count(), run.measured_ns)), "\n");

  auto bars = h.Coarse(10);
  if (!bars.empty()) {
    int64_t most = 1;
    for (const auto& b : bars) most = std::max(most, b.count);
    absl::StrAppend(&s, "\nResponse time histogram:\n");
    for (const auto& b : bars) {
      const int len = static_cast<int>(40 * b.count / most);
      std::string bar;
      for (int i = 0; i < len; ++i) bar += "\xe2\x88\x8e";  // ∎
      absl::StrAppend(&s, absl::StrFormat("  %.3f [%d]\t|%s\n", b.mark / 1e6,
                                          b.count, bar));
    }
    absl::StrAppend(&s, "\nLatency distribution:\n");
    for (double p : kPercentiles) {
      absl::StrAppend(&s, absl::StrFormat("  %g %% in %s\n", p, Ms(h.Percentile(p))));
    }
  }

  absl::StrAppend(&s, "\nStatus code distribution:\n");
  for (const auto& [k, n] : all.outcomes()) {
    const bool expected = k == "OK" || k == "OUT_OF_STOCK";
    absl::StrAppend(&s, "  [", k, "]\t", n, " responses",
                    k == "OUT_OF_STOCK" ? " (expected: no stock left)" : "",
                    expected ? "" : " (UNEXPECTED)", "\n");
  }
  if (!all.errors().empty()) {
    absl::StrAppend(&s, "\nError distribution:\n");
    for (const auto& [k, n] : all.errors()) {
      absl::StrAppend(&s, "  [", n, "]\t", k, "\n");
    }
  }

  int methods = 0;
  for (const auto& m : run.stats) methods += m.count() > 0;
  if (methods > 1) {
    absl::StrAppend(&s, "\nPer method:\n");
    absl::StrAppend(&s, absl::StrFormat("  %-18s %10s %10s %10s %10s %10s\n",
                                        "method", "count", "rps", "avg ms",
                                        "p50 ms", "p99 ms"));
    for (int m = 0; m < kMethodCount; ++m) {
      const CallStats& c = run.stats[m];
      if (c.count() == 0) continue;
      absl::StrAppend(
          &s, absl::StrFormat("  %-18s %10d %10.1f %10.2f %10.2f %10.2f\n",
                              MethodName(static_cast<Method>(m)), c.count(),
                              Rps(c.count(), run.measured_ns),
                              c.latency().mean() / 1e6,
                              c.latency().Percentile(50) / 1e6,
                              c.latency().Percentile(99) / 1e6));
    }
  }
  if (o.scenario == Scenario::kCart) {
    absl::StrAppend(&s, absl::StrFormat(
        "\nCarts: %d started, %d committed, %d released, %d abandoned, %d out "
        "of stock (warm-up included); %.1f carts/s measured\n",
        run.carts_started, run.carts_committed, run.carts_released,
        run.carts_abandoned, run.carts_out_of_stock,
        // Every cart makes exactly one ReserveItem call.
        Rps(run.stats[static_cast<int>(Method::kReserveItem)].count(),
            run.measured_ns)));
  }
  if (o.rate > 0) {
    absl::StrAppend(&s, "\nDropped (over --max_inflight): ", run.dropped, "\n");
  }
  absl::StrAppend(&s, "\nResources (measured window):\n");
  absl::StrAppend(&s, absl::StrFormat(
      "  load generator:\t%.2f cores\n",
      run.window_seconds > 0 ? run.client_cpu_seconds / run.window_seconds : 0));
  if (run.server_cpu_cores >= 0) {
    absl::StrAppend(&s, absl::StrFormat("  server (pid %d):\t%.2f cores\n",
                                        o.server_pid, run.server_cpu_cores));
  }
  if (run.machine_busy_cores >= 0) {
    absl::StrAppend(&s, absl::StrFormat("  machine busy:\t%.2f of %d cores\n",
                                        run.machine_busy_cores, run.machine_cores));
  }
  if (run.server_peak_rss_kb >= 0) {
    absl::StrAppend(&s, absl::StrFormat("  server peak RSS:\t%.1f MiB\n",
                                        run.server_peak_rss_kb / 1024.0));
  }

  const Verification& v = *r.verification;
  absl::StrAppend(&s, "\nVerification:\n");
  if (!v.ran) {
    absl::StrAppend(&s, "  skipped\n");
  } else {
    if (UsesProducts(o.scenario)) {
      absl::StrAppend(&s, "  products checked:\t", v.products_checked,
                      " (", v.products_read, " read whole with GetProduct)\n");
      absl::StrAppend(&s, "  reservations read:\t", v.reservations_checked,
                      " of ", run.acknowledged, " acknowledged\n");
      absl::StrAppend(&s, "  units granted:\t", v.granted_units, "\n");
      if (o.scenario == Scenario::kCart) {
        absl::StrAppend(&s, "  units committed:\t", v.committed_units, "\n");
        absl::StrAppend(&s, "  units released:\t", v.released_units, "\n");
        if (v.abandoned_units > 0) {
          absl::StrAppend(&s, "  units abandoned:\t", v.abandoned_units, "\n");
        }
      }
      absl::StrAppend(&s, "  stock consumed:\t", v.consumed_units,
                      o.scenario == Scenario::kCart ? " (granted - released)" : "",
                      "\n");
    }
    for (const auto& n : v.notes) absl::StrAppend(&s, "  note: ", n, "\n");
    for (const auto& x : v.violations) absl::StrAppend(&s, "  VIOLATION: ", x, "\n");
    if (v.violation_count > static_cast<int64_t>(v.violations.size())) {
      absl::StrAppend(&s, "  ... and ",
                      v.violation_count - static_cast<int64_t>(v.violations.size()),
                      " more\n");
    }
    absl::StrAppend(&s, "  invariants:\t", v.passed() ? "hold" : "BROKEN", "\n");
  }
  if (!v.ran) {
    for (const auto& p : run.problems) absl::StrAppend(&s, "  WRONG ANSWER: ", p, "\n");
  }
  absl::StrAppend(&s, "\nResult: ", r.failures.empty() ? "PASS" : "FAIL", "\n");
  for (const auto& f : r.failures) absl::StrAppend(&s, "  - ", f, "\n");
  return s;
}

std::string FormatJson(const Report& r) {
  const LoadOptions& o = *r.options;
  const RunResult& run = *r.run;
  const Verification& v = *r.verification;
  const CallStats all = Overall(run);
  Json j;
  j.Open('{');
  j.Key("date").Str(absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone()));
  j.Key("options").Open('{');
  j.Key("scenario").Str(ScenarioName(o.scenario));
  j.Key("targets").Open('[');
  for (const auto& t : o.targets) j.Str(t);
  j.Close(']');
  j.Key("concurrency").Num(static_cast<int64_t>(o.concurrency));
  j.Key("rate").Num(o.rate);
  j.Key("duration").Num(absl::ToInt64Nanoseconds(o.EffectiveDuration()));
  j.Key("requests").Num(o.requests);
  j.Key("warmup").Num(absl::ToInt64Nanoseconds(o.warmup));
  j.Key("threads").Num(static_cast<int64_t>(o.threads));
  j.Key("connections").Num(static_cast<int64_t>(o.connections));
  j.Key("timeout").Num(absl::ToInt64Nanoseconds(o.timeout));
  j.Key("products").Num(o.products);
  j.Key("productBase").Num(o.product_base);
  j.Key("stock").Num(o.stock);
  j.Key("backorder").Bool(o.backorder);
  j.Key("quantity").Num(o.quantity);
  j.Key("commitRatio").Num(o.commit_ratio);
  j.Key("seed").Num(static_cast<int64_t>(o.seed));
  j.Key("runId").Str(o.run_id);
  j.Close('}');

  StatsJson(j, all, run.measured_ns);
  j.Key("histogram").Open('[');
  for (const auto& b : all.latency().Coarse(10)) {
    j.Open('{').Key("mark").Num(b.mark).Key("count").Num(b.count).Close('}');
  }
  j.Close(']');
  j.Key("methods").Open('{');
  for (int m = 0; m < kMethodCount; ++m) {
    if (run.stats[m].count() == 0) continue;
    j.Key(MethodName(static_cast<Method>(m))).Open('{');
    StatsJson(j, run.stats[m], run.measured_ns);
    j.Close('}');
  }
  j.Close('}');
  j.Key("issuedCalls").Num(run.issued_calls);
  j.Key("carts").Open('{')
      .Key("started").Num(run.carts_started)
      .Key("committed").Num(run.carts_committed)
      .Key("released").Num(run.carts_released)
      .Key("abandoned").Num(run.carts_abandoned)
      .Key("outOfStock").Num(run.carts_out_of_stock)
      .Close('}');
  j.Key("dropped").Num(run.dropped);
  j.Key("resources").Open('{')
      .Key("windowSeconds").Num(run.window_seconds)
      .Key("clientCpuSeconds").Num(run.client_cpu_seconds)
      .Key("machineCores").Num(static_cast<int64_t>(run.machine_cores))
      .Key("machineBusyCores").Num(run.machine_busy_cores)
      .Key("serverCpuCores").Num(run.server_cpu_cores)
      .Key("serverPeakRssKb").Num(run.server_peak_rss_kb)
      .Close('}');
  j.Key("acknowledged").Num(run.acknowledged);

  j.Key("verification").Open('{');
  j.Key("ran").Bool(v.ran);
  j.Key("passed").Bool(v.passed());
  j.Key("grantedUnits").Num(v.granted_units);
  j.Key("releasedUnits").Num(v.released_units);
  j.Key("committedUnits").Num(v.committed_units);
  j.Key("abandonedUnits").Num(v.abandoned_units);
  j.Key("consumedUnits").Num(v.consumed_units);
  j.Key("uncertainCalls").Num(v.uncertain_calls);
  j.Key("productsChecked").Num(v.products_checked);
  j.Key("productsRead").Num(v.products_read);
  j.Key("reservationsChecked").Num(v.reservations_checked);
  j.Key("soldOutProducts").Num(v.sold_out_products);
  j.Key("laggingFills").Num(v.lagging_fills);
  j.Key("backorderedUnits").Num(v.backordered_units);
  j.Key("violationCount").Num(v.violation_count);
  j.Key("violations").Open('[');
  for (const auto& x : v.violations) j.Str(x);
  j.Close(']');
  j.Key("notes").Open('[');
  for (const auto& x : v.notes) j.Str(x);
  j.Close(']');
  j.Close('}');
  j.Key("wrongAnswers").Num(run.problem_count);
  j.Key("passed").Bool(r.failures.empty());
  j.Key("failures").Open('[');
  for (const auto& f : r.failures) j.Str(f);
  j.Close(']');
  j.Close('}');
  return j.str() + "\n";
}

}  // namespace inventory::loadgen
