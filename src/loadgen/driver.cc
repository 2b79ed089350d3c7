#include "inventory/loadgen/driver.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "inventory/v1/inventory.grpc.pb.h"

namespace inventory::loadgen {
namespace {

namespace v1 = ::inventory::v1;
namespace health = ::grpc::health::v1;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The wall-clock deadline gRPC wants for a steady-clock instant.
std::chrono::system_clock::time_point DeadlineOf(int64_t ns, int64_t now_ns) {
  return std::chrono::system_clock::now() +
         std::chrono::nanoseconds(std::max<int64_t>(0, ns - now_ns));
}

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec +
         (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// CPU time of the machine and of one process, from /proc (Linux).
struct CpuSample {
  int64_t at_ns = 0;
  double self_s = 0;
  double busy_s = -1;    // all CPUs: not idle, not waiting for I/O
  double server_s = -1;  // --server_pid: user + system
};

CpuSample SampleCpu(int server_pid) {
  static const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  CpuSample c;
  c.at_ns = NowNs();
  c.self_s = CpuSeconds();
  if (std::ifstream stat("/proc/stat"); stat) {
    std::string cpu;
    int64_t v[8] = {0};
    stat >> cpu >> v[0] >> v[1] >> v[2] >> v[3] >> v[4] >> v[5] >> v[6] >> v[7];
    if (stat && cpu == "cpu") {
      int64_t total = 0;
      for (int64_t x : v) total += x;
      c.busy_s = (total - v[3] - v[4]) / tick;  // minus idle and iowait
    }
  }
  if (server_pid > 0) {
    std::ifstream in(absl::StrCat("/proc/", server_pid, "/stat"));
    std::string line;
    if (std::getline(in, line)) {
      // Fields after the command name (which is in parentheses): state is
      // field 3, utime 14, stime 15.
      const size_t close = line.rfind(')');
      if (close != std::string::npos) {
        std::vector<std::string> f =
            absl::StrSplit(line.substr(close + 2), ' ', absl::SkipEmpty());
        int64_t utime = 0, stime = 0;
        if (f.size() > 12 && absl::SimpleAtoi(f[11], &utime) &&
            absl::SimpleAtoi(f[12], &stime)) {
          c.server_s = (utime + stime) / tick;
        }
      }
    }
  }
  return c;
}

// VmHWM of a process in KiB, or -1.
int64_t PeakRssKb(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "VmHWM:")) {
      int64_t kb = 0;
      std::vector<std::string> f = absl::StrSplit(
          line.substr(6), absl::ByAnyChar(" \t"), absl::SkipEmpty());
      if (!f.empty() && absl::SimpleAtoi(f[0], &kb)) return kb;
    }
  }
  return -1;
}

// State every worker shares.
struct Shared {
  Shared(const LoadOptions& o, Tally* t) : options(o), tally(t) {}
  const LoadOptions& options;
  Tally* const tally;
  int64_t measure_start_ns = 0;
  int64_t stop_ns = 0;
  // Units (requests or carts) still to start when --requests is set.
  std::atomic<int64_t> budget{0};
  // Set when the run must end early (last-widget: all products sold out).
  std::atomic<bool> stop{false};
  // last-widget: the product every client is racing for now.
  std::atomic<int64_t> widget_cursor{0};
};

// The stubs of one channel (one TCP connection).
struct Stubs {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::InventoryService::Stub> inventory;
  std::unique_ptr<health::Health::Stub> health;
};

class Worker;

// One call in flight; its address is the completion-queue tag.
class Call {
 public:
  Call(Method method, int64_t start_ns) : method(method), start_ns(start_ns) {}
  virtual ~Call() = default;
  // Hands the answer to whoever started the call.
  virtual void Deliver(const Outcome& outcome) = 0;

  grpc::ClientContext context;
  grpc::Status status;
  const Method method;
  const int64_t start_ns;
};

template <typename Response, typename Then>
class TypedCall : public Call {
 public:
  TypedCall(Method method, int64_t start_ns, Then then)
      : Call(method, start_ns), then_(std::move(then)) {}
  void Deliver(const Outcome& outcome) override { then_(outcome, response); }

  Response response;
  std::unique_ptr<grpc::ClientAsyncResponseReader<Response>> reader;

 private:
  Then then_;
};

// A client: one request (or one cart) at a time. Closed-loop sessions live for
// the whole run; open-loop sessions serve one arrival and are deleted.
class Session {
 public:
  explicit Session(Worker& worker) : w_(worker) {}
  virtual ~Session() = default;
  // Starts the next unit of work, scheduled at `scheduled_ns`; false if the
  // run's bounds say no more.
  virtual bool Begin(int64_t scheduled_ns) = 0;

 protected:
  Worker& w_;
};

class Worker {
 public:
  Worker(int index, Shared& shared, int sessions)
      : index_(index),
        shared_(shared),
        o_(shared.options),
        closed_sessions_(sessions),
        rng_(o_.seed * 1000003 + static_cast<uint64_t>(index)),
        reservoir_(static_cast<size_t>(o_.verify_sample),
                   o_.seed * 7919 + static_cast<uint64_t>(index)) {}

  // Opens the channels; fails if a target does not answer in time.
  absl::Status Connect();
  void Run();
  void Collect(RunResult* out);

  // --- used by sessions ---
  const LoadOptions& options() const { return o_; }
  Shared& shared() { return shared_; }
  Tally& tally() { return *shared_.tally; }
  std::mt19937_64& rng() { return rng_; }
  Reservoir& reservoir() { return reservoir_; }
  RunResult& counters() { return counters_; }
  int index() const { return index_; }
  std::string NextRequestId() {
    return absl::StrCat(o_.run_id, "-", index_, "-", ++sequence_);
  }
  // Claims the next unit of work within the run's bounds.
  bool TakeUnit(int64_t now_ns);
  // No unit of work starts any more (time is up, the --requests are all
  // started, or the run was stopped).
  bool RunOver(int64_t now_ns) const;
  // Called by a session when its unit of work is over.
  void UnitDone(Session* session);
  // An OK answer that breaks the contract.
  void Problem(std::string what);

  template <typename Response, typename Prepare, typename Then>
  void Start(Method method, int64_t start_ns, Prepare prepare, Then then) {
    auto* call =
        new TypedCall<Response, Then>(method, start_ns, std::move(then));
    call->context.set_deadline(std::chrono::system_clock::now() +
                               absl::ToChronoNanoseconds(o_.timeout));
    Stubs& stubs = *stubs_[next_stub_];
    next_stub_ = (next_stub_ + 1) % stubs_.size();
    call->reader = prepare(stubs, &call->context, &cq_);
    call->reader->StartCall();
    call->reader->Finish(&call->response, &call->status, call);
    ++inflight_calls_;
    ++counters_.issued_calls;
  }

 private:
  // Time is up, or the run was stopped.
  bool Stopped(int64_t now_ns) const;
  std::unique_ptr<Session> NewSession();
  void Complete(Call* call);

  const int index_;
  Shared& shared_;
  const LoadOptions& o_;
  const int closed_sessions_;
  std::mt19937_64 rng_;
  Reservoir reservoir_;
  grpc::CompletionQueue cq_;
  std::vector<std::unique_ptr<Stubs>> stubs_;
  size_t next_stub_ = 0;
  int64_t sequence_ = 0;

  std::vector<std::unique_ptr<Session>> sessions_;  // closed loop
  int active_sessions_ = 0;                         // closed loop
  int64_t open_units_ = 0;                          // open loop
  int64_t inflight_calls_ = 0;

  MethodStats stats_;
  int64_t last_measured_done_ns_ = 0;
  RunResult counters_;
};

// ---------------------------------------------------------------- sessions

// Picks the product of the next reservation: uniform, hot, or (last-widget)
// the product all clients race for now.
int64_t PickProduct(Worker& w) {
  const LoadOptions& o = w.options();
  switch (o.scenario) {
    case Scenario::kHot:
      return 0;
    case Scenario::kLastWidget:
      return std::min(w.shared().widget_cursor.load(), o.products - 1);
    default: {
      std::uniform_int_distribution<int64_t> d(0, o.products - 1);
      return d(w.rng());
    }
  }
}

// Records an OUT_OF_STOCK; in last-widget it moves the race to the next
// product, and ends the run after the last one.
void SoldOut(Worker& w, int64_t index) {
  w.tally().MarkSoldOut(index);
  if (w.options().scenario != Scenario::kLastWidget) return;
  int64_t expected = index;
  if (w.shared().widget_cursor.compare_exchange_strong(expected, index + 1) &&
      index + 1 >= w.options().products) {
    w.shared().stop.store(true);
  }
}

void FillReserve(Worker& w, int64_t index, v1::ReserveItemRequest* req,
                 const std::string& customer) {
  const LoadOptions& o = w.options();
  req->set_request_id(w.NextRequestId());
  req->set_product_id(o.product_base + index);
  req->set_quantity(o.quantity);
  req->set_customer_id(customer);
  if (o.hold_ttl > absl::ZeroDuration()) {
    req->mutable_hold_ttl()->set_seconds(absl::ToInt64Seconds(o.hold_ttl));
  }
}

// Checks an acknowledged reservation against its request; false (and a
// problem noted) if it does not match.
bool CheckGrant(Worker& w, const v1::ReserveItemRequest& req,
                const v1::ReserveItemResponse& resp) {
  const v1::Reservation& r = resp.reservation();
  if (resp.replayed() || r.product_id() != req.product_id() ||
      r.quantity() != req.quantity() ||
      r.status() != v1::RESERVATION_STATUS_PENDING ||
      r.reservation_id().empty() || r.request_id() != req.request_id()) {
    w.Problem(absl::StrCat("ReserveItem ", req.request_id(),
                           " was answered with a mismatching reservation: ",
                           r.ShortDebugString(),
                           resp.replayed() ? " (replayed)" : ""));
    return false;
  }
  return true;
}

// uniform, hot, last-widget: one ReserveItem per unit.
class ReserveSession : public Session {
 public:
  ReserveSession(Worker& w, std::string customer)
      : Session(w), customer_(std::move(customer)) {}

  bool Begin(int64_t scheduled_ns) override {
    if (!w_.TakeUnit(NowNs())) return false;
    const int64_t index = PickProduct(w_);
    v1::ReserveItemRequest req;
    FillReserve(w_, index, &req, customer_);
    w_.Start<v1::ReserveItemResponse>(
        Method::kReserveItem, scheduled_ns,
        [&req](Stubs& s, grpc::ClientContext* ctx, grpc::CompletionQueue* cq) {
          return s.inventory->PrepareAsyncReserveItem(ctx, req, cq);
        },
        [this, index, req](const Outcome& outcome,
                           const v1::ReserveItemResponse& resp) {
          if (outcome.key == "OK") {
            w_.counters().acknowledged++;
            if (CheckGrant(w_, req, resp)) {
              w_.tally().Granted(index, req.quantity());
              w_.reservoir().Offer({resp.reservation().reservation_id(),
                                    req.product_id(), req.quantity(),
                                    req.request_id(), ExpectedState::kPending});
            } else {
              w_.tally().Uncertain(index);
            }
          } else if (outcome.out_of_stock) {
            SoldOut(w_, index);
          } else {
            w_.tally().Uncertain(index);
          }
          w_.UnitDone(this);
        });
    return true;
  }

 private:
  const std::string customer_;
};

// cart: browse (GetAvailability), reserve, view the cart (GetAvailability),
// then commit, release or (abandoned) leave the hold to run out. A started
// cart always finishes; with --abandon_at_end, one that reaches its checkout
// after the run is over leaves its hold.
class CartSession : public Session {
 public:
  CartSession(Worker& w, std::string customer)
      : Session(w), customer_(std::move(customer)) {}

  bool Begin(int64_t scheduled_ns) override {
    if (!w_.TakeUnit(NowNs())) return false;
    w_.counters().carts_started++;
    index_ = PickProduct(w_);
    const LoadOptions& o = w_.options();
    v1::GetAvailabilityRequest req;
    req.add_product_ids(o.product_base + index_);
    std::uniform_int_distribution<int64_t> d(0, o.products - 1);
    for (int i = 0; i < o.browse_ids; ++i) {
      req.add_product_ids(o.product_base + d(w_.rng()));
    }
    Read(req, scheduled_ns, [this] { Reserve(); });
    return true;
  }

 private:
  template <typename Next>
  void Read(const v1::GetAvailabilityRequest& req, int64_t start_ns,
            Next next) {
    w_.Start<v1::GetAvailabilityResponse>(
        Method::kGetAvailability, start_ns,
        [&req](Stubs& s, grpc::ClientContext* ctx, grpc::CompletionQueue* cq) {
          return s.inventory->PrepareAsyncGetAvailability(ctx, req, cq);
        },
        [this, next, pid = req.product_ids(0)](
            const Outcome& outcome, const v1::GetAvailabilityResponse& resp) {
          if (outcome.key == "OK") CheckRead(pid, resp);
          // A failed read does not stop a shopper.
          next();
        });
  }

  void CheckRead(int64_t pid, const v1::GetAvailabilityResponse& resp) {
    if (resp.unavailable_product_ids_size() > 0) {
      w_.Problem(absl::StrCat("GetAvailability answered OK but ",
                              resp.unavailable_product_ids_size(),
                              " product(s) unavailable (a shard down?)"));
      return;
    }
    for (const auto& a : resp.availabilities()) {
      if (a.product_id() == pid) {
        if (a.available_quantity() < 0) {
          w_.Problem(absl::StrCat("product ", pid, " shows negative availability"));
        }
        return;
      }
    }
    w_.Problem(absl::StrCat("GetAvailability does not know product ", pid));
  }

  void Reserve() {
    v1::ReserveItemRequest req;
    FillReserve(w_, index_, &req, customer_);
    w_.Start<v1::ReserveItemResponse>(
        Method::kReserveItem, NowNs(),
        [&req](Stubs& s, grpc::ClientContext* ctx, grpc::CompletionQueue* cq) {
          return s.inventory->PrepareAsyncReserveItem(ctx, req, cq);
        },
        [this, req](const Outcome& outcome,
                    const v1::ReserveItemResponse& resp) {
          if (outcome.key == "OK") {
            w_.counters().acknowledged++;
            if (!CheckGrant(w_, req, resp)) {
              w_.tally().Uncertain(index_);
              w_.UnitDone(this);
              return;
            }
            w_.tally().Granted(index_, req.quantity());
            reservation_ = {resp.reservation().reservation_id(),
                            req.product_id(), req.quantity(), req.request_id(),
                            ExpectedState::kPending};
            v1::GetAvailabilityRequest view;
            view.add_product_ids(req.product_id());
            Read(view, NowNs(), [this] { Checkout(); });
            return;
          }
          if (outcome.out_of_stock) {
            w_.counters().carts_out_of_stock++;
            SoldOut(w_, index_);
          } else {
            w_.tally().Uncertain(index_);
          }
          w_.UnitDone(this);
        });
  }

  void Checkout() {
    std::uniform_real_distribution<double> coin(0, 1);
    const double toss = coin(w_.rng());
    const LoadOptions& o = w_.options();
    if ((toss >= o.commit_ratio && toss < o.commit_ratio + o.abandon_ratio) ||
        (o.abandon_at_end && w_.RunOver(NowNs()))) {
      w_.tally().Abandoned(index_, reservation_.quantity);
      w_.counters().carts_abandoned++;
      w_.reservoir().Offer(reservation_);  // pending, or expired by now
      w_.UnitDone(this);
      return;
    }
    const bool commit = toss < o.commit_ratio;
    const std::string id = reservation_.reservation_id;
    auto done = [this, commit](const Outcome& outcome,
                               const v1::Reservation& r) {
      if (outcome.key != "OK") {
        w_.tally().Uncertain(index_);
        w_.UnitDone(this);
        return;
      }
      const auto want = commit ? v1::RESERVATION_STATUS_PURCHASED
                               : v1::RESERVATION_STATUS_RELEASED;
      if (r.status() != want || r.reservation_id() != reservation_.reservation_id) {
        w_.Problem(absl::StrCat(commit ? "CommitReservation" : "ReleaseItem",
                                " of ", reservation_.reservation_id,
                                " answered ", r.ShortDebugString()));
        w_.tally().Uncertain(index_);
        w_.UnitDone(this);
        return;
      }
      if (commit) {
        w_.tally().Committed(index_, reservation_.quantity);
        w_.counters().carts_committed++;
        reservation_.state = ExpectedState::kPurchased;
      } else {
        w_.tally().Released(index_, reservation_.quantity);
        w_.counters().carts_released++;
        reservation_.state = ExpectedState::kReleased;
      }
      w_.reservoir().Offer(reservation_);
      w_.UnitDone(this);
    };
    if (commit) {
      v1::CommitReservationRequest req;
      req.set_reservation_id(id);
      w_.Start<v1::CommitReservationResponse>(
          Method::kCommitReservation, NowNs(),
          [&req](Stubs& s, grpc::ClientContext* ctx, grpc::CompletionQueue* cq) {
            return s.inventory->PrepareAsyncCommitReservation(ctx, req, cq);
          },
          [done](const Outcome& outcome,
                 const v1::CommitReservationResponse& resp) {
            done(outcome, resp.reservation());
          });
    } else {
      v1::ReleaseItemRequest req;
      req.set_reservation_id(id);
      w_.Start<v1::ReleaseItemResponse>(
          Method::kReleaseItem, NowNs(),
          [&req](Stubs& s, grpc::ClientContext* ctx, grpc::CompletionQueue* cq) {
            return s.inventory->PrepareAsyncReleaseItem(ctx, req, cq);
          },
          [done](const Outcome& outcome, const v1::ReleaseItemResponse& resp) {
            done(outcome, resp.reservation());
          });
    }
  }

  const std::string customer_;
  int64_t index_ = 0;
  AckedReservation reservation_;
};

// health: grpc.health.v1.Health/Check, the cheapest call the server answers.
class HealthSession : public Session {
 public:
  using Session::Session;

  bool Begin(int64_t scheduled_ns) override {
    if (!w_.TakeUnit(NowNs())) return false;
    health::HealthCheckRequest req;
    req.set_service(w_.options().health_service);
    w_.Start<health::HealthCheckResponse>(
        Method::kHealthCheck, scheduled_ns,
        [&req](Stubs& s, grpc::ClientContext* ctx, grpc::CompletionQueue* cq) {
          return s.health->PrepareAsyncCheck(ctx, req, cq);
        },
        [this](const Outcome& outcome, const health::HealthCheckResponse& r) {
          if (outcome.key == "OK" &&
              r.status() != health::HealthCheckResponse::SERVING) {
            w_.Problem(absl::StrCat("health: ",
                                    health::HealthCheckResponse::ServingStatus_Name(
                                        r.status())));
          }
          w_.UnitDone(this);
        });
    return true;
  }
};

// ------------------------------------------------------------------ worker

absl::Status Worker::Connect() {
  for (int c = 0; c < o_.connections; ++c) {
    for (const std::string& target : o_.targets) {
      grpc::ChannelArguments args;
      // A channel of its own: its own subchannel, hence its own connection.
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      args.SetString("inventory.loadgen.channel",
                     absl::StrCat(index_, "/", c, "/", target));
      auto stubs = std::make_unique<Stubs>();
      stubs->channel = grpc::CreateCustomChannel(
          target, grpc::InsecureChannelCredentials(), args);
      if (!stubs->channel->WaitForConnected(std::chrono::system_clock::now() +
                                            std::chrono::seconds(5))) {
        return absl::UnavailableError(
            absl::StrCat("cannot connect to ", target, " within 5 s"));
      }
      stubs->inventory = v1::InventoryService::NewStub(stubs->channel);
      stubs->health = health::Health::NewStub(stubs->channel);
      stubs_.push_back(std::move(stubs));
    }
  }
  return absl::OkStatus();
}

bool Worker::Stopped(int64_t now_ns) const {
  return now_ns >= shared_.stop_ns || shared_.stop.load(std::memory_order_relaxed);
}

bool Worker::TakeUnit(int64_t now_ns) {
  if (Stopped(now_ns)) return false;
  if (o_.requests > 0 && shared_.budget.fetch_sub(1) <= 0) return false;
  return true;
}

bool Worker::RunOver(int64_t now_ns) const {
  return Stopped(now_ns) || (o_.requests > 0 && shared_.budget.load() <= 0);
}

void Worker::Problem(std::string what) {
  ++counters_.problem_count;
  if (counters_.problems.size() < 20) counters_.problems.push_back(std::move(what));
}

std::unique_ptr<Session> Worker::NewSession() {
  const std::string customer =
      absl::StrCat("cust-", index_, "-", sessions_.size() + open_units_, "-",
                   sequence_);
  switch (o_.scenario) {
    case Scenario::kCart:
      return std::make_unique<CartSession>(*this, customer);
    case Scenario::kHealth:
      return std::make_unique<HealthSession>(*this);
    default:
      return std::make_unique<ReserveSession>(*this, customer);
  }
}

void Worker::UnitDone(Session* session) {
  if (o_.rate > 0) {
    --open_units_;
    delete session;
    return;
  }
  if (!session->Begin(NowNs())) --active_sessions_;
}

void Worker::Complete(Call* call) {
  const int64_t end = NowNs();
  const Outcome outcome = Classify(call->method, call->status);
  if (call->start_ns >= shared_.measure_start_ns) {
    stats_[static_cast<int>(call->method)].Record(
        end - call->start_ns, outcome,
        outcome.expected ? std::string() : call->status.error_message());
    last_measured_done_ns_ = std::max(last_measured_done_ns_, end);
  }
  --inflight_calls_;
  call->Deliver(outcome);
  delete call;
}

void Worker::Run() {
  const bool open = o_.rate > 0;
  bool stopping = false;
  int64_t interval_ns = 0;
  int64_t next_ns = 0;
  int64_t max_units = 0;
  const int64_t start = NowNs();
  if (open) {
    const double per_thread = o_.rate / o_.threads;
    interval_ns = std::max<int64_t>(1, static_cast<int64_t>(1e9 / per_thread));
    // Stagger the threads' schedules.
    next_ns = start + interval_ns * index_ / o_.threads;
    max_units = std::max<int64_t>(1, o_.max_inflight / o_.threads);
  } else {
    for (int i = 0; i < closed_sessions_; ++i) {
      sessions_.push_back(NewSession());
      if (sessions_.back()->Begin(start)) ++active_sessions_;
    }
  }
  while (true) {
    int64_t now = NowNs();
    if (open && !stopping) {
      while (next_ns <= now) {
        if (next_ns >= shared_.stop_ns) {
          stopping = true;
          break;
        }
        if (open_units_ >= max_units) {
          ++counters_.dropped;
        } else {
          std::unique_ptr<Session> s = NewSession();
          if (!s->Begin(next_ns)) {
            stopping = true;
            break;
          }
          s.release();  // deleted by UnitDone
          ++open_units_;
        }
        next_ns += interval_ns;
      }
      if (now >= shared_.stop_ns || shared_.stop.load()) stopping = true;
    }
    const bool idle = open ? (stopping && open_units_ == 0)
                           : active_sessions_ == 0;
    if (idle && inflight_calls_ == 0) break;
    int64_t wake = now + 100'000'000;  // re-check the bounds at least 10x/s
    if (open && !stopping) wake = std::min(next_ns, shared_.stop_ns);
    void* tag = nullptr;
    bool ok = false;
    const auto status = cq_.AsyncNext(&tag, &ok, DeadlineOf(wake, now));
    if (status == grpc::CompletionQueue::GOT_EVENT) {
      Complete(static_cast<Call*>(tag));
    } else if (status == grpc::CompletionQueue::SHUTDOWN) {
      break;
    }
  }
  cq_.Shutdown();
  void* tag;
  bool ok;
  while (cq_.Next(&tag, &ok)) {
  }
}

void Worker::Collect(RunResult* out) {
  for (int m = 0; m < kMethodCount; ++m) out->stats[m].Merge(stats_[m]);
  const int64_t measured = last_measured_done_ns_ - shared_.measure_start_ns;
  out->measured_ns = std::max(out->measured_ns, measured);
  out->issued_calls += counters_.issued_calls;
  out->carts_started += counters_.carts_started;
  out->carts_committed += counters_.carts_committed;
  out->carts_released += counters_.carts_released;
  out->carts_abandoned += counters_.carts_abandoned;
  out->carts_out_of_stock += counters_.carts_out_of_stock;
  out->dropped += counters_.dropped;
  out->acknowledged += counters_.acknowledged;
  out->problem_count += counters_.problem_count;
  for (auto& p : counters_.problems) {
    if (out->problems.size() < 20) out->problems.push_back(std::move(p));
  }
  for (auto& r : reservoir_.items()) out->sample.push_back(std::move(r));
}

}  // namespace

absl::StatusOr<RunResult> RunLoad(const LoadOptions& options, Tally* tally) {
  Shared shared(options, tally);
  shared.budget.store(options.requests);
  const int threads = options.rate > 0
                          ? options.threads
                          : std::min(options.threads, options.concurrency);
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < threads; ++t) {
    const int sessions = options.concurrency / threads +
                         (t < options.concurrency % threads ? 1 : 0);
    workers.push_back(std::make_unique<Worker>(t, shared, sessions));
    if (absl::Status s = workers.back()->Connect(); !s.ok()) return s;
  }

  const int64_t start = NowNs();
  shared.measure_start_ns = start + absl::ToInt64Nanoseconds(options.warmup);
  shared.stop_ns = shared.measure_start_ns +
                   absl::ToInt64Nanoseconds(options.EffectiveDuration());
  std::vector<std::thread> running;
  for (auto& w : workers) running.emplace_back([&w] { w->Run(); });
  // Resources are sampled over the measured window.
  const int64_t wait_ns = shared.measure_start_ns - NowNs();
  if (wait_ns > 0) absl::SleepFor(absl::Nanoseconds(wait_ns));
  const CpuSample c0 = SampleCpu(options.server_pid);
  for (auto& t : running) t.join();
  const CpuSample c1 = SampleCpu(options.server_pid);
  RunResult result;
  result.window_seconds = (c1.at_ns - c0.at_ns) / 1e9;
  result.client_cpu_seconds = c1.self_s - c0.self_s;
  result.machine_cores = static_cast<int>(std::thread::hardware_concurrency());
  if (result.window_seconds > 0) {
    if (c0.busy_s >= 0 && c1.busy_s >= 0) {
      result.machine_busy_cores = (c1.busy_s - c0.busy_s) / result.window_seconds;
    }
    if (c0.server_s >= 0 && c1.server_s >= 0) {
      result.server_cpu_cores = (c1.server_s - c0.server_s) / result.window_seconds;
    }
  }
  if (options.server_pid > 0) result.server_peak_rss_kb = PeakRssKb(options.server_pid);
  for (auto& w : workers) w->Collect(&result);
  result.measured_ns = std::max<int64_t>(result.measured_ns, 0);
  if (options.scenario == Scenario::kLastWidget) {
    result.all_sold_out = tally->sold_out_count() >= options.products;
  }
  // The merged sample keeps at most verify_sample items, chosen at random.
  if (static_cast<int64_t>(result.sample.size()) > options.verify_sample) {
    std::mt19937_64 rng(options.seed);
    std::shuffle(result.sample.begin(), result.sample.end(), rng);
    result.sample.resize(options.verify_sample);
  }
  return result;
}

}  // namespace inventory::loadgen
