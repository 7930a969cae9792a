#include "app/daemon.h"

#include <utility>  // before Boost.Asio: Boost 1.74's awaitable.hpp needs it with C++20

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <map>
#include <random>
#include <set>

#include "app/state.h"
#include "channels/actions.h"
#include "channels/delivery.h"
#include "channels/operator_digest.h"
#include "cluster/cluster.h"
#include "console/console.h"
#include "inbound/inbound_endpoint.h"
#include "inbound/reply_forwarder.h"
#include "net/http_client.h"
#include "net/http_server.h"
#include "net/smtp_client.h"
#include "ops/admin_endpoint.h"
#include "ops/logging.h"
#include "ops/metrics.h"
#include "ops/service_notifier.h"
#include "pipeline/intake.h"
#include "pipeline/pipeline.h"
#include "sources/http_source.h"
#include "sources/push_endpoint.h"
#include "sources/push_group_commit.h"
#include "sources/spool_source.h"
#include "sources/sqlite_source.h"
#include "store/state_runner.h"
#include "store/store.h"
#include "timeline/timeline.h"

namespace tactd {
namespace {

namespace asio = boost::asio;

// How long the timer loop sleeps at most: a timer scheduled by a source
// while it sleeps is found within this bound.
constexpr auto kMaxTimerSleep = std::chrono::seconds{1};
// After an unexpected failure of one iteration, a loop waits this long.
constexpr auto kLoopBackoff = std::chrono::seconds{5};
// How often STATUS= is refreshed for `systemctl status`.
constexpr auto kStatusInterval = std::chrono::seconds{10};
// How often the gauges, /readyz and STATUS= read the state when it is a
// database server (on SQLite they read it at each scrape): a scrape must
// not wait for the database.
constexpr auto kStateLookInterval = std::chrono::seconds{5};
// Timers fired (each in its own transaction) before the timer loop yields
// to the rest of the loop: a burst of thousands due at once must not hold
// the intake and the deliveries.
constexpr std::size_t kTimersPerTurn = 25;
// How often the shared intake is looked at while other replicas are live.
constexpr auto kIntakePoll = std::chrono::milliseconds{250};
// How long one spool batch should hold the loop: the batch size follows
// the time the last one took, between kMinSpoolBatch and
// SpoolSource::kBatchLines lines.
constexpr auto kSpoolBatchTime = std::chrono::milliseconds{50};
constexpr std::size_t kMinSpoolBatch = 50;
// The pause between two batches of long work (a spool file, timers set
// again after a reload). One turn of the loop is not enough: a push is
// read, committed and answered in several turns, so that with one turn
// between batches it waited three or four batches (about 250 ms behind a
// big spool file). In this pause everything that waits goes through. A
// step shorter than kGiveWayAfter (a small file) is followed by one turn
// only: waiting behind a few of them costs little, and a pause after each
// would halve the intake of a folder of small files.
constexpr auto kGiveWay = std::chrono::milliseconds{1};
constexpr auto kGiveWayAfter = std::chrono::milliseconds{5};
// Entities rescheduled per transaction after a reload added an `at` rule.
constexpr std::size_t kRescheduleBatch = 500;
// Timers removed per transaction after a reload removed or changed an `at`
// rule: a few milliseconds of the loop each (docs/performance.md).
constexpr std::size_t kCancelBatch = 2000;
// The name the push endpoint's observations are counted under.
constexpr const char* kPushSource = "push";
// Delivery latency buckets, seconds.
const std::vector<double> kLatencyBuckets{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};

Duration since(Timestamp earlier, Timestamp now) { return now - earlier; }

// The size of the next spool batch after one of `lines` took `took`.
std::size_t next_spool_batch(std::size_t lines, std::chrono::steady_clock::duration took) {
  const double ratio = std::chrono::duration<double>(kSpoolBatchTime).count() /
                       std::max(std::chrono::duration<double>(took).count(), 1e-6);
  // Grows at most twofold a step: a quick step (a listing, a move) says little.
  return std::clamp<std::size_t>(static_cast<std::size_t>(static_cast<double>(lines) * std::min(ratio, 2.0)),
                                 kMinSpoolBatch, SpoolSource::kBatchLines);
}

double seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

std::chrono::system_clock::time_point wall(Timestamp t) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(t.time_since_epoch()));
}

// Within how long a healthy source has polled successfully.
Duration readiness_window(const SourceConfig& source) { return 3 * (source.interval + source.jitter) + source.timeout; }

}  // namespace

// One running source: its configuration and health, shared by the daemon
// and the source's coroutine.
struct SourceRun {
  SourceConfig config;
  std::unique_ptr<PipelineIntake> intake;
  Timestamp started;
  std::optional<Timestamp> last_success;
  std::string last_failure;
  bool stop = false;
  bool finished = false;
  asio::steady_timer* sleep = nullptr;   // while the loop sleeps
  std::shared_ptr<SourceRun> successor;  // started once this one finished, unless stopped before
};

// The daemon's metrics, declared once.
struct DaemonMetrics {
  explicit DaemonMetrics(Metrics& m)
      : observations(m.counter("tactd_observations_total", "Observations committed, by source and entity type",
                               {"source", "type"})),
        events(m.counter("tactd_events_total",
                         "Events (changed fields) found by diffing observations, by source and "
                         "entity type",
                         {"source", "type"})),
        rejected(m.counter("tactd_observations_rejected_total",
                           "Observations, lines or records refused, by source and reason", {"source", "reason"})),
        notifications(m.counter("tactd_notifications_total",
                                "Notifications by rule, kind, channel and outcome (queued, sent, retry, dead, "
                                "interrupted_retry, interrupted_unknown)",
                                {"rule", "kind", "channel", "outcome"})),
        held_back(
            m.counter("tactd_notifications_held_back_total",
                      "Messages not sent or sent later, by rule and reason (opt_out, duplicate, cooldown, "
                      "superseded, quiet_hours, daily_cap, paused, no_channel, unknown_customer, short_notice, ...)",
                      {"rule", "reason"})),
        latency(m.histogram("tactd_delivery_latency_seconds",
                            "From the time a notification was due to its acceptance by the provider, by channel",
                            {"channel"}, kLatencyBuckets)),
        outbox_pending(m.gauge("tactd_outbox_pending", "Notifications waiting in the outbox", {})),
        outbox_unknown(m.gauge("tactd_outbox_unknown_outcome",
                               "Notifications whose send was cut off and whose outcome an operator must resolve "
                               "(tactd outbox resolve)",
                               {})),
        outbox_oldest(m.gauge("tactd_outbox_oldest_pending_age_seconds",
                              "How long the oldest notification already due has waited; 0 when none", {})),
        timers_pending(m.gauge("tactd_timers_pending", "Timers (at rules) still to fire", {})),
        state_writable(m.gauge("tactd_state_writable",
                               "0 while intake cannot commit to the state (a full disk, a read-only file), else 1",
                               {})),
        state_write_failures(m.counter("tactd_state_write_failures_total",
                                       "Intake batches the state could not commit (refused, kept by their source)",
                                       {})),
        polls(m.counter("tactd_source_polls_total", "Source polls or scans, by source and result (ok, error)",
                        {"source", "result"})),
        poll_errors(m.counter("tactd_source_poll_errors_total", "Failed source polls, by source", {"source"})),
        poll_failures(m.counter("tactd_source_poll_failures_total",
                                "Failed source polls, by source and problem (timeout, too_large, no_answer, status, "
                                "invalid_json, no_items, redirect, not_committed, error)",
                                {"source", "problem"})),
        last_success(m.gauge("tactd_source_last_success_timestamp_seconds",
                             "When each source last polled successfully (Unix time)", {"source"})),
        breaker_open(m.gauge("tactd_channel_breaker_open",
                             "1 while a channel's circuit breaker holds its deliveries back", {"channel"})),
        breaker_state(m.gauge("tactd_channel_breaker_state",
                              "A channel's circuit breaker: 0 closed, 1 half-open (a probe may go), 2 open",
                              {"channel"})),
        breaker_openings(m.counter("tactd_channel_breaker_openings_total",
                                   "Times a channel's circuit breaker opened, also again after a failed probe",
                                   {"channel"})),
        in_flight(
            m.gauge("tactd_deliveries_in_flight", "Delivery attempts waiting for the provider's answer", {"channel"})),
        reloads(m.counter("tactd_reloads_total", "Configuration reloads, successful or not", {})),
        reload_failures(
            m.counter("tactd_reload_failures_total", "Reloads refused because the new configuration had problems", {})),
        last_reload(m.gauge("tactd_last_reload_success", "1 when the last reload succeeded (or none was tried)", {})),
        build_info(m.gauge("tactd_build_info", "The running tactd; the value is always 1", {"version"})),
        replies(m.counter("tactd_replies_total",
                          "Replies received, by channel, what they were (stop, start, reply) and how they were matched "
                          "(message-id, sender, unmatched)",
                          {"channel", "what", "matched_by"})),
        actions(m.counter("tactd_actions_total",
                          "Attempts of actions taken before sending (a voucher), by action and outcome (ok, retry, "
                          "failed: the message went without it)",
                          {"action", "outcome"})) {}

  Counter& observations;
  Counter& events;
  Counter& rejected;
  Counter& notifications;
  Counter& held_back;
  Histogram& latency;
  Gauge& outbox_pending;
  Gauge& outbox_unknown;
  Gauge& outbox_oldest;
  Gauge& timers_pending;
  Gauge& state_writable;
  Counter& state_write_failures;
  Counter& polls;
  Counter& poll_errors;
  Counter& poll_failures;
  Gauge& last_success;
  Gauge& breaker_open;
  Gauge& breaker_state;
  Counter& breaker_openings;
  Gauge& in_flight;
  Counter& reloads;
  Counter& reload_failures;
  Gauge& last_reload;
  Gauge& build_info;
  Counter& replies;
  Counter& actions;
};

class Daemon::Impl {
 public:
  Impl(std::filesystem::path config_file, Snapshot snapshot, const Clock& clock)
      : config_file_(std::move(config_file)),
        clock_(clock),
        started_(clock.now()),
        metric_set_(metrics_),
        signals_(std::in_place, *io_, SIGINT, SIGTERM),
        hangup_(std::in_place, *io_, SIGHUP) {
    if (auto level = parse_log_level(snapshot.config->log_level)) setup_logging(*level);
    check_sources(*snapshot.config);
    try {
      // On PostgreSQL this migrates under the advisory lock first, so
      // replicas starting together take turns; the store then runs its
      // work on fibers of this loop (state_, store/state_runner.h).
      store_ = open_state(*snapshot.config, &*io_);
    } catch (const StoreError& e) {
      throw StartupError(e.what());
    }
    state_ = StateRunner(store_->fibers());
    if (!state_.direct()) {
      // The leases are renewed on a connection of their own, so that a
      // renewal never queues behind the store work of pushes, sources and
      // deliveries, which can take longer than a lease on a busy database.
      try {
        lease_store_ = open_state(*snapshot.config, &*io_);
      } catch (const StoreError& e) {
        throw StartupError(e.what());
      }
      leases_ = StateRunner(lease_store_->fibers());
    }
    pipeline_ = std::make_unique<Pipeline>(snapshot, *store_, clock_);
    // Shards before any intake: a lone replica (always on SQLite) owns them
    // all from the start (docs/scale-out.md).
    cluster_ = std::make_unique<Cluster>(lease_store_ ? *lease_store_ : *store_, clock_, make_replica_id(),
                                         snapshot.config->cluster_lease);
    pipeline_->set_cluster(cluster_.get());
    try {
      at_start(leases_, [this] { log_round(cluster_->renew()); });
    } catch (const StoreError& e) {
      // A deadlock or a lost connection: the cluster loop renews again
      // within a third of the lease; meanwhile everything goes to the
      // shared intake.
      if (!e.retryable) throw StartupError(std::string("cluster: ") + e.what());
      spdlog::warn("cluster: the first renewal failed, trying again at the next {}", kv("error", e.what()));
    }
    http_ = HttpClient::create(*io_);
    smtp_ = SmtpClient::create(*io_);
    delivery_ = std::make_unique<Delivery>(
        *store_, clock_, lanes(*snapshot.config), [this](const Delivery::AttemptEnd& end) { count(end); },
        [this](Store::Transaction& round, const OutboxEntry& entry) { return release(round, entry); },
        [this](bool committed) { released(committed); });
    delivery_->set_interrupt_observer([this](const Delivery::Interrupted& cut) { interrupted(cut); });
    delivery_->set_other_replicas([this] { return cluster_->live() > 1; });
    // Another replica's or an operator's commit wakes whoever has work now
    // (PostgreSQL; the loops look on their own schedule otherwise).
    store_->watch([this](Store::Change change) {
      if (change == Store::Change::kIntake) {
        intake_again_ = true;
        wake(cluster_sleep_);
      } else if (delivery_)
        delivery_->wake();
    });
    actions_ = std::make_unique<Actions>(
        *store_, clock_, *http_, snapshot.config->actions, [this](const Actions::Taken& taken) { action_taken(taken); },
        [this](const OutboxEntry& entry) { return action_wanted(entry); });
    operators_ = std::make_unique<OperatorChannel>(*http_, *smtp_, clock_);
    operators_->configure(snapshot.config->operators, snapshot.config->channel(Channel::kEmail));
    if (snapshot.config->push) start_push(*snapshot.config->push);
    if (snapshot.config->admin) start_admin(*snapshot.config->admin);
    forwarder_ = std::make_unique<ReplyForwarder>(*io_, *store_, *store_, *store_, *http_, *smtp_, clock_, state_);
    forwarder_->on_refused(
        [this](const ForwardRefusal& refusal) { operators_->report(forward_refused_finding(refusal)); });
    forwarder_->configure(snapshot.config->inbound, snapshot.config->channel(Channel::kEmail));
    if (snapshot.config->inbound) start_inbound(*snapshot.config->inbound);
    metric_set_.build_info.set({TACTD_VERSION_STRING}, 1);
    metric_set_.last_reload.set({}, 1);
    metric_set_.state_writable.set({}, 1);
    metrics_.on_scrape([this] { collect(); });
  }

  ~Impl() {
    // Servers, clients and signal sets hold I/O objects of io_; they go
    // first. Destroying io_ then destroys the coroutines that never
    // finished, while everything they refer to is still alive.
    push_server_.reset();
    admin_server_.reset();
    inbound_server_.reset();
    forwarder_.reset();
    http_.reset();
    smtp_.reset();
    signals_.reset();
    hangup_.reset();
    // A worker still running a query hands its outcome to io_: it ends first.
    for (const auto& source : sql_sources_)
      if (auto alive = source.lock()) alive->stop();
    // A store on fibers unwinds the work suspended in them and closes its
    // connection while io_ (and what the work refers to) still exists.
    store_.reset();
    lease_store_.reset();
    io_.reset();
  }

  int run() {
    warn_missing_channels(*pipeline_->snapshot().config);
    signals_->async_wait([this](const boost::system::error_code& ec, int signal) {
      if (ec) return;
      spdlog::info("signal {}: stopping", signal);
      start_shutdown();
    });
    wait_for_hangup();
    spawn("leases", lease_loop());
    spawn("cluster", cluster_loop());
    spawn("timers", timer_loop());
    spawn("delivery", delivery_loop());
    spawn("actions", actions_->run());
    spawn("operators", operators_->run());
    forwarder_->wake();  // what was not forwarded before a stop
    for (const auto& source : pipeline_->snapshot().config->sources) start_source(source);
    spawn("watchdog", watchdog_loop());
    spawn("status", status_loop());
    if (!state_.direct()) spawn("state look", state_look_loop());
    const Config& config = *pipeline_->snapshot().config;
    spdlog::info("tactd {} running: {} rules, {} sources, {} channels, state {}", TACTD_VERSION_STRING,
                 pipeline_->snapshot().rules->rules().size(), config.sources.size(), config.channels.size(),
                 state_name(config));
    notifier_.ready(status_line());
    io_->run();
    spdlog::info("stopped");
    return exit_status_;
  }

  // --- reload ---

  void reload() {
    notifier_.reloading();
    metric_set_.reloads.add({});
    Diagnostics errors;
    auto next = load_snapshot(config_file_, errors);
    if (next) validate_reload(*next->config, errors);
    if (!next || !errors.empty()) {
      metric_set_.reload_failures.add({});
      metric_set_.last_reload.set({}, 0);
      // The problems first and the verdict last, so whoever waits for the
      // verdict in the log has every problem already.
      for (const auto& e : errors) spdlog::error("reload: {}", e.str());
      spdlog::error("reload: refused, the running configuration stays: {} problems above", errors.size());
      ReloadRecord refused{clock_.now(), false, {}};
      for (const auto& e : errors) refused.problems.push_back(e.str());
      reload_log_.add(std::move(refused));
      notifier_.ready("reload refused (" + std::to_string(errors.size()) + " problems, see the log); " + status_line());
      return;
    }
    // The new snapshot takes over between two pieces of store work, never
    // in the middle of one: on PostgreSQL a piece suspended on its fiber
    // still reads the rules, templates and configuration it began with
    // (the pipeline holds them by reference), so swapping them under it
    // would leave it reading freed memory. On SQLite this runs at once.
    run_detached(
        io_->get_executor(), state_, [this, taken = std::move(*next)] { apply_reload(taken); }, "reload");
  }

  void apply_reload(const Snapshot& next) {
    const Snapshot old = pipeline_->snapshot();
    pipeline_->set_snapshot(next);
    metric_set_.last_reload.set({}, 1);
    if (auto level = parse_log_level(next.config->log_level)) spdlog::set_level(*level);
    reload_rules(*old.rules, *next.rules);
    reload_channels(*old.config, *next.config);
    if (old.config->actions != next.config->actions) {
      spdlog::info("reload: actions reconfigured {}", kv("actions", std::to_string(next.config->actions.size())));
      actions_->reconfigure(next.config->actions);
    }
    operators_->configure(next.config->operators, next.config->channel(Channel::kEmail));
    forwarder_->configure(next.config->inbound, next.config->channel(Channel::kEmail));
    forwarder_->wake();
    reload_sources(*old.config, *next.config);
    reload_endpoints(*old.config, *next.config);
    reload_log_.add(ReloadRecord{clock_.now(), true, {}});
    spdlog::info("reload: done; {} rules, {} sources, {} channels", next.rules->rules().size(),
                 next.config->sources.size(), next.config->channels.size());
    notifier_.ready(status_line());
  }

  // --- stop ---

  void start_shutdown() {
    if (stopping_) return;
    stopping_ = true;
    notifier_.stopping();
    const Timestamp deadline = clock_.now() + pipeline_->snapshot().config->stop_grace;
    spdlog::info("stopping: intake stops, deliveries in flight get until {}", format_rfc3339(deadline, "UTC"));
    if (push_) push_->stop_intake();
    if (inbound_) inbound_->stop_intake();
    forwarder_->stop();
    for (auto& [name, run] : sources_) stop_source(*run);
    for (const auto& source : sql_sources_)
      if (auto alive = source.lock()) alive->interrupt();  // a slow query does not hold the stop
    boost::system::error_code ignored;
    signals_->cancel(ignored);
    hangup_->cancel(ignored);
    wake(timer_sleep_);
    wake(cluster_sleep_);
    wake(lease_sleep_);
    wake(watchdog_sleep_);
    wake(status_sleep_);
    wake(state_look_sleep_);
    actions_->start_shutdown();
    delivery_->start_shutdown(deadline);
    operators_->start_shutdown(deadline);
    // The others take this replica's shards and sources at their next
    // renewal instead of after the leases end. What still arrives goes to
    // the shared intake.
    run_detached(
        io_->get_executor(), leases_,
        [this] {
          try {
            cluster_->leave();
            spdlog::info("cluster: left; shards and sources given up {}", kv("replica", cluster_->replica()));
          } catch (const StoreError& e) {
            spdlog::warn("cluster: cannot give up the leases; they end by themselves {}", kv("error", e.what()));
          }
        },
        "cluster: leave");
  }

  // --- replicas (docs/scale-out.md) ---

  // Store work at start, before the loop runs: on fibers (PostgreSQL), the
  // loop is turned here until the work is done; directly otherwise.
  void at_start(StateRunner runner, const std::function<void()>& work) {
    if (runner.direct()) return work();
    std::exception_ptr failure;
    bool done = false;
    asio::co_spawn(
        *io_, [runner, &work]() -> asio::awaitable<void> { co_await runner.run(work); },
        [&](std::exception_ptr e) {
          failure = e;
          done = true;
        });
    while (!done && io_->run_one() > 0) {
    }
    if (failure) std::rethrow_exception(failure);
    if (!done) throw StoreError("the event loop stopped before the state answered");
  }

  void log_round(const Cluster::Round& round) const {
    const auto count = [](const std::vector<int>& shards) { return std::to_string(shards.size()); };
    if (!round.taken.empty() || !round.released.empty() || !round.lost.empty())
      spdlog::info("cluster: shards {} {} {} {} {} {}", kv("replica", cluster_->replica()),
                   kv("owned", std::to_string(round.owned)), kv("taken", count(round.taken)),
                   kv("released", count(round.released)), kv("lost", count(round.lost)),
                   kv("live", std::to_string(round.live)));
  }

  // Renews the shard and source leases every lease/3 on their own
  // connection (leases_), whatever the other store work takes, and logs
  // what changed. What follows from it on this replica's side (its share of
  // the channels' rates, the sends a dead replica cut off) is left to the
  // cluster loop's next turn: it changes what store work under way may be
  // reading, so it runs through state_, between two pieces of that work.
  asio::awaitable<void> lease_loop() {
    asio::steady_timer sleep(*io_);
    Duration wait = cluster_->renew_every();  // the first renewal was at start
    while (!stopping_) {
      co_await nap(sleep, lease_sleep_,
                   std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::max(wait, Duration::zero())));
      if (stopping_) break;
      wait = cluster_->renew_every();
      try {
        const auto renew = [this] { return cluster_->renew(); };
        log_round(co_await leases_.run(renew));
        renewed_ = true;
        wake(cluster_sleep_);
      } catch (const std::exception& e) {
        spdlog::error("cluster: cannot renew the leases {} {}", kv("error", e.what()),
                      kv("next_try_s", std::to_string(kLoopBackoff.count())));
        wait = std::min<Duration>(kLoopBackoff, cluster_->renew_every());
      }
    }
  }

  // Applies the shared intake of the owned shards, often while other
  // replicas are live, and what each renewal of the leases calls for.
  asio::awaitable<void> cluster_loop() {
    asio::steady_timer sleep(*io_);
    std::size_t live = cluster_->live();
    while (!stopping_) {
      Duration wait = cluster_->live() > 1 ? kIntakePoll : cluster_->renew_every();
      intake_again_ = false;  // what comes from here on is for the next turn
      const bool renewed = std::exchange(renewed_, false);
      try {
        const auto turn = [this, renewed, &live] {
          if (cluster_->live() != live) {
            live = cluster_->live();
            delivery_->reconfigure(lanes(*pipeline_->snapshot().config));  // each replica its share of a rate
          }
          // Sends a dead replica left cut off: nobody else restarts to settle them.
          if (renewed && live > 1) delivery_->settle_interrupted();
          return pipeline_->apply_intake();
        };
        const Outcome outcome = co_await state_.run(turn);
        if (outcome.from_intake > 0)
          spdlog::debug("intake: applied from the shared intake {}",
                        kv("observations", std::to_string(outcome.from_intake)));
        record(outcome);
        if (outcome.from_intake >= Pipeline::kIntakeBatch) wait = Duration::zero();  // more waiting
      } catch (const std::exception& e) {
        spdlog::error("cluster: failed {} {}", kv("error", e.what()),
                      kv("next_try_s", std::to_string(kLoopBackoff.count())));
        wait = std::min<Duration>(kLoopBackoff, cluster_->renew_every());
        intake_again_ = false;  // the backoff first
      }
      if (intake_again_ || renewed_) wait = Duration::zero();  // told of more while this turn ran
      co_await nap(sleep, cluster_sleep_,
                   std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::max(wait, Duration::zero())));
    }
  }

 private:
  // --- start ---

  static void check_sources(const Config& config) {
    for (const auto& source : config.sources)
      if (source.type == "spool" && !std::filesystem::is_directory(source.path))
        throw StartupError(config.file.string() + ": source '" + source.name + "': " + source.path.string() +
                           " is not a folder");
  }

  // What a reload cannot change while running.
  void validate_reload(const Config& next, Diagnostics& errors) const {
    const Config& now = *pipeline_->snapshot().config;
    if (next.state_path != now.state_path || next.state_url != now.state_url)
      errors.push_back(Diagnostic{next.file.string(), 0, 0,
                                  "[tactd] state cannot change on reload (from " + state_name(now) + " to " +
                                      state_name(next) + "); restart tactd to move the state"});
    if (next.full_sync != now.full_sync)
      errors.push_back(Diagnostic{next.file.string(), 0, 0, "[tactd] sync cannot change on reload; restart tactd"});
    for (const auto& source : next.sources)
      if (source.type == "spool" && !std::filesystem::is_directory(source.path))
        errors.push_back(Diagnostic{next.file.string(), 0, 0,
                                    "source '" + source.name + "': " + source.path.string() + " is not a folder"});
  }

  std::vector<Delivery::Lane> lanes(const Config& config) {
    std::vector<Delivery::Lane> out;
    for (ChannelConfig channel : config.channels) {
      channel.rate /= static_cast<double>(cluster_->live());  // each replica its share (docs/scale-out.md)
      out.push_back(Delivery::Lane{channel, Sender::create(channel, *http_, *smtp_, clock_)});
    }
    return out;
  }

  static void warn_missing_channels(const Config& config) {
    if (config.channels.size() >= 2) return;
    spdlog::warn("no [[channel]] for {}: its notifications stay in the outbox until one is configured",
                 config.channels.empty()                         ? "email or sms"
                 : config.channels[0].channel == Channel::kEmail ? "sms"
                                                                 : "email");
  }

  std::unique_ptr<PipelineIntake> intake_for(const std::string& source, bool partial) {
    return std::make_unique<PipelineIntake>(
        *pipeline_, *store_, partial,
        [this, source](std::span<const Observation> observations, const Outcome& outcome) {
          for (const Observation& o : observations)
            metric_set_.observations.add({source, std::string(to_string(o.ref.type))});
          for (const Event& e : outcome.events) metric_set_.events.add({source, std::string(to_string(e.entity.type))});
          for (const auto& stale : outcome.stale) {
            spdlog::info("source: stale observation ignored {} {} {} {}", kv("source", source),
                         kv("entity", stale.entity.str()), kv("observed_at", format_rfc3339(stale.observed_at)),
                         kv("known", format_rfc3339(stale.known)));
            metric_set_.rejected.add({source, "stale"});
          }
          record(outcome);
          state_writes_ok();
        },
        [this, source](const std::string& error) { state_write_failed(source, error); });
  }

  // Intake commits that fail (a full disk, a read-only state file) are said
  // once when they start and once when they end; meanwhile /readyz is not
  // ready, the push endpoint answers 503 and sources keep their input.
  void state_write_failed(const std::string& source, const std::string& error) {
    metric_set_.state_write_failures.add({});
    metric_set_.state_writable.set({}, 0);
    if (!state_failing_since_) {
      state_failing_since_ = clock_.now();
      spdlog::error("state: cannot commit; new intake is refused until it can, nothing accepted is lost {} {} {}",
                    kv("state", state_name(*pipeline_->snapshot().config)), kv("source", source), kv("error", error));
    }
    state_failure_ = error;
  }

  void state_writes_ok() {
    if (!state_failing_since_) return;
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(clock_.now() - *state_failing_since_);
    spdlog::info("state: commits again; intake resumed {} {}", kv("state", state_name(*pipeline_->snapshot().config)),
                 kv("after_s", std::to_string(seconds.count())));
    state_failing_since_.reset();
    state_failure_.clear();
    metric_set_.state_writable.set({}, 1);
  }

  void start_push(const PushConfig& config) {
    push_intake_ = intake_for(kPushSource, config.partial);
    push_ = std::make_unique<PushEndpoint>(config, *push_intake_, clock_);
    push_group_ = std::make_unique<PushGroupCommit>(*io_, *push_);
    HttpServerLimits limits;
    limits.max_body = config.max_body;
    try {
      push_server_ = HttpServer::start(
          *io_, config.address, config.port, limits,
          [this](HttpRequest request, HttpResponder respond) {
            push_group_->handle(std::move(request), std::move(respond));
          },
          [this](const HttpRequest& head) { return push_group_->screen(head); },
          [this](const HttpRequest& head) { push_group_->unscreened(head); });
    } catch (const std::runtime_error& e) {
      throw StartupError(std::string("push: ") + e.what());
    }
    spdlog::info("push: listening on {}:{}", config.address, push_server_->port());
  }

  // The inbound endpoint reads the configuration in force at each request;
  // its listener is set at start (a changed `listen` needs a restart).
  void start_inbound(const InboundConfig& config) {
    inbound_ = std::make_unique<InboundEndpoint>([this] { return pipeline_->snapshot().config; }, *store_, clock_,
                                                 [this](const ReplyOutcome& outcome) { received(outcome); });
    HttpServerLimits limits;
    limits.max_body = config.max_body;
    try {
      inbound_server_ = start_server(
          config.address, config.port, limits, [this](const HttpRequest& request) { return inbound_->handle(request); },
          [](const HttpRequest&) { return true; }, [this](const HttpRequest& head) { return inbound_->screen(head); });
    } catch (const std::exception& e) {
      throw StartupError(std::string("inbound: ") + e.what());
    }
    spdlog::info("inbound: listening on {}:{}", config.address, inbound_server_->port());
  }

  // A reply recorded: logged (without its text), counted, and acted on.
  void received(const ReplyOutcome& outcome) {
    const Reply& r = outcome.reply;
    if (r.id == 0) {
      spdlog::info("inbound: a reply sent again by {}, recorded before {}", r.provider, kv("id", r.provider_id));
      return;
    }
    // An opt-out, a pause and `received` are read by the release check.
    pipeline_->changed_outside(r.customer);
    metric_set_.replies.add({std::string(to_string(r.channel)),
                             r.stop             ? "stop"
                             : outcome.opted_in ? "start"
                                                : "reply",
                             r.matched_by.empty() ? "unmatched" : r.matched_by});
    spdlog::info("inbound: reply {} {} {} {} {} {}", r.id, kv("channel", to_string(r.channel)),
                 kv("customer", r.customer), kv("entity", r.entity ? r.entity->str() : std::string()),
                 kv("matched_by", r.matched_by), kv("stop", r.stop ? "yes" : "no"));
    if (outcome.opted_out || outcome.opted_in)
      spdlog::info("inbound: {} {} {}", outcome.opted_out ? "opted out of" : "opted in again to", to_string(r.channel),
                   kv("customer", r.customer.empty() ? std::string("(unmatched)") : r.customer));
    if (outcome.pause)
      spdlog::info("inbound: automated messages about {} paused until {}", r.entity ? r.entity->str() : "",
                   format_rfc3339(outcome.pause->until, "UTC"));
    // Without a support destination a person must still hear of it.
    const auto& inbound = pipeline_->snapshot().config->inbound;
    if (!r.forwarded_at && inbound && inbound->forward_email.empty() && inbound->forward_webhook.empty())
      operators_->report(
          Finding{"reply",
                  "",
                  "reply " + std::to_string(r.id) + " by " + std::string(to_string(r.channel)) +
                      (r.customer.empty() ? " (not matched to a customer)" : " from customer " + r.customer) +
                      " goes to no support desk ([inbound] has no forward_email or forward_webhook)",
                  {}});
    if (outcome.confirmation_queued) delivery_->wake();
    forwarder_->wake();
  }

  void start_admin(const AdminConfig& config) {
    if (!admin_) {
      admin_ = std::make_unique<AdminEndpoint>(metrics_, [this] { return readiness(); });
      admin_->set_throttle(&token_throttle_, &clock_);
      admin_->add_route(std::string(kTimelineRoutePrefix), [this](const HttpRequest& request) {
        return timeline_route(*store_, request, clock_.now(), pipeline_->snapshot().config->default_time_zone);
      });
      console_ =
          std::make_unique<Console>(ConsoleContext{store_.get(), &clock_, [this] { return pipeline_->snapshot(); },
                                                   &reload_log_, [this] { delivery_->wake(); }, &token_throttle_},
                                    config.token);
      admin_->set_console([this](const HttpRequest& request) { return console_->handle(request); });
    }
    admin_->set_token(config.token);
    console_->set_token(config.token);
    try {
      // /healthz, /readyz and /metrics answer from memory (state_look_);
      // the timeline and the console read the state.
      admin_server_ = start_server(
          config.address, config.port, HttpServerLimits{},
          [this](const HttpRequest& request) { return admin_->handle(request); },
          [](const HttpRequest& request) {
            const std::string path = request.target.substr(0, request.target.find('?'));
            return path != "/healthz" && path != "/readyz" && path != "/metrics";
          });
    } catch (const std::runtime_error& e) {
      throw StartupError(std::string("admin: ") + e.what());
    }
    spdlog::info("admin: /healthz, /readyz and /metrics on {}:{}", config.address, admin_server_->port());
    if (config.token.empty())
      spdlog::warn(
          "admin: the /v1/ routes (the customer timeline) answer 403: [admin] has no token_file, "
          "token_credential or token_env");
  }

  // An HTTP server whose handler may read or write the state: on a store
  // with fibers, a request for which `uses_state` holds is answered from
  // the store's fiber (it waits its turn; the loop goes on meanwhile), others
  // at once. Throws what HttpServer::start throws.
  std::unique_ptr<HttpServer> start_server(const std::string& address, unsigned short port, HttpServerLimits limits,
                                           HttpHandler handler, std::function<bool(const HttpRequest&)> uses_state,
                                           HttpScreen screen = {}) {
    if (state_.direct()) return HttpServer::start(*io_, address, port, limits, std::move(handler), std::move(screen));
    auto shared = std::make_shared<HttpHandler>(std::move(handler));
    return HttpServer::start(
        *io_, address, port, limits,
        [this, shared, uses_state = std::move(uses_state)](HttpRequest request, HttpResponder respond) {
          if (!uses_state(request)) {
            respond((*shared)(request));
            return;
          }
          asio::co_spawn(*io_, answer_from_state(shared, std::move(request), respond),
                         [respond](std::exception_ptr failure) {
                           if (!failure) return;
                           try {
                             std::rethrow_exception(failure);
                           } catch (const std::exception& e) {
                             spdlog::error("http: {}", e.what());
                           }
                           respond(HttpResponse{500, "{\"error\":\"internal error\"}\n", "application/json", {}});
                         });
        },
        std::move(screen));
  }

  asio::awaitable<void> answer_from_state(std::shared_ptr<HttpHandler> handler, HttpRequest request,
                                          HttpResponder respond) {
    const auto work = [&] { return (*handler)(request); };
    HttpResponse response = co_await state_.run(work);
    respond(std::move(response));
  }

  // --- what happened: logs and metrics ---

  void record(const Outcome& outcome) {
    for (const auto& n : outcome.notifications) {
      spdlog::info("outbox: queued {} {} {} {} {} {}", kv("kind", to_string(n.kind)), kv("rule", n.rule),
                   kv("customer", n.customer), kv("entity", n.entity.str()), kv("channel", to_string(n.channel)),
                   kv("due", format_rfc3339(n.at, n.time_zone)));
      metric_set_.notifications.add(
          {n.rule, std::string(to_string(n.kind)), std::string(to_string(n.channel)), "queued"});
    }
    for (const auto& h : outcome.held_back) {
      if (spdlog::should_log(spdlog::level::debug))  // its fields are not built for nothing
        spdlog::debug("held back: {} {} {} {}", kv("rule", h.rule), kv("entity", h.entity.str()), kv("reason", h.code),
                      kv("detail", h.reason));
      metric_set_.held_back.add({h.rule, h.code});
    }
    for (const auto& d : outcome.deferred) {
      spdlog::info("deferred: {} {} {}", kv("rule", d.rule), kv("entity", d.entity.str()), kv("detail", d.reason));
      metric_set_.held_back.add({d.rule, d.code});
    }
    for (const auto& p : outcome.problems) {
      spdlog::warn("not sent: {} {} {}", kv("rule", p.rule), kv("reason", p.code), kv("detail", p.text));
      metric_set_.held_back.add({p.rule, p.code});
      operators_->report(Finding{p.code, p.rule, p.text, {}});
    }
    if (!outcome.notifications.empty()) {
      actions_->wake();
      delivery_->wake();
    }
    if (outcome.forwarded > 0) {  // perhaps to this replica's own shards (Pipeline::apply)
      intake_again_ = true;
      wake(cluster_sleep_);
    }
  }

  // The pipeline's look at a due entry just before it is sent, inside the
  // delivery round's transaction; what it decided is told once that commits.
  std::optional<Notification> release(Store::Transaction& round, const OutboxEntry& entry) {
    return pipeline_->release(round, entry, released_);
  }
  void released(bool committed) {
    Outcome outcome = std::exchange(released_, {});
    if (committed) record(outcome);
  }
  // The same look before an entry's action is taken, in a transaction of its own.
  bool action_wanted(const OutboxEntry& entry) {
    Outcome outcome;
    auto transaction = store_->begin();
    const bool wanted = pipeline_->release(*transaction, entry, outcome).has_value();
    transaction->commit();
    record(outcome);
    return wanted;
  }

  void count(const Delivery::AttemptEnd& end) {
    const std::string channel(to_string(end.channel));
    const char* outcome = end.verdict == Verdict::kDelivered ? "sent" : end.dead ? "dead" : "retry";
    metric_set_.notifications.add({end.rule, std::string(to_string(end.kind)), channel, outcome});
    if (end.verdict == Verdict::kDelivered) metric_set_.latency.observe({channel}, seconds(end.latency));
    if (end.verdict == Verdict::kDelivered) ++delivered_;
    if (end.dead) message_died(end);
  }

  // An attempt of an action: counted; once it is settled (taken, or
  // failed for good) the message may go; a failure reaches the operators.
  void action_taken(const Actions::Taken& taken) {
    metric_set_.actions.add({taken.action, taken.outcome});
    if (taken.outcome == "retry") return;
    delivery_->wake();
    if (taken.outcome != "failed") return;
    operators_->report(Finding{"action_failed",
                               taken.rule,
                               taken.entity.str() + ": rule '" + taken.rule + "': action '" + taken.action +
                                   "' for customer " + taken.customer + " (outbox entry " +
                                   std::to_string(taken.outbox) + ") failed: " + taken.detail,
                               {}});
  }

  // A send cut off by a crash or a stop; one held for an operator reaches them.
  void interrupted(const Delivery::Interrupted& cut) {
    const Notification& n = cut.entry.notification;
    metric_set_.notifications.add({n.rule, std::string(to_string(n.kind)), std::string(to_string(n.channel)),
                                   cut.retried ? "interrupted_retry" : "interrupted_unknown"});
    if (cut.retried) return;
    operators_->report(Finding{"unknown_outcome",
                               n.rule,
                               n.entity.str() + ": rule '" + n.rule + "': outbox entry " +
                                   std::to_string(cut.entry.id) + " to customer " + n.customer + " by " +
                                   std::string(to_string(n.channel)) + ": " + cut.detail,
                               {}});
  }

  // A dead letter is no contact: the customer's silence counts on from
  // their last real one. Then operators hear of it.
  void message_died(const Delivery::AttemptEnd& end) {
    const std::string channel(to_string(end.channel));
    try {
      pipeline_->message_died(end.customer);
    } catch (const StoreError& e) {
      spdlog::error("timers: cannot reschedule the silence of a dead letter's customer {} {}",
                    kv("customer", end.customer), kv("error", e.what()));
    }
    operators_->report(Finding{"dead_letter",
                               end.rule,
                               end.entity.str() + ": rule '" + end.rule + "': outbox entry " +
                                   std::to_string(end.outbox) + " to customer " + end.customer + " by " + channel +
                                   " is dead: " + end.detail + ". See tactd outbox show " + std::to_string(end.outbox) +
                                   "; retry it once the cause is fixed",
                               {}});
  }

  // What the gauges, /readyz and STATUS= show of the state. Read at each
  // use when the store answers on the loop (SQLite); else every
  // kStateLookInterval on the store's fiber (state_look_loop()).
  struct StateLook {
    bool read = false;
    OutboxStore::OutboxDepth depth;
    std::size_t timers = 0;
    std::string error;  // the last look failed: why
  };
  void look_at_state() {
    try {
      const Timestamp now = clock_.now();
      state_look_.depth = store_->outbox_depth(now);
      state_look_.timers = store_->pending_timers();
      state_look_.error.clear();
    } catch (const StoreError& e) {
      state_look_.error = e.what();
    }
    state_look_.read = true;
  }
  const StateLook& state_look() {
    if (state_.direct()) look_at_state();
    return state_look_;
  }

  // Gauges read from the state when Prometheus scrapes.
  void collect() {
    const Timestamp now = clock_.now();
    const StateLook& look = state_look();
    if (look.error.empty() && look.read) {
      const auto& depth = look.depth;
      metric_set_.outbox_pending.set({}, static_cast<double>(depth.pending));
      metric_set_.outbox_unknown.set({}, static_cast<double>(depth.unknown));
      metric_set_.outbox_oldest.set({}, depth.oldest_due ? std::max(0.0, seconds(now - *depth.oldest_due)) : 0.0);
      metric_set_.timers_pending.set({}, static_cast<double>(look.timers));
    }
    for (const auto& channel : delivery_->channels()) {
      const std::string name(to_string(channel.channel));
      metric_set_.breaker_open.set({name}, channel.breaker_open ? 1 : 0);
      metric_set_.breaker_state.set({name}, channel.breaker == CircuitBreaker::State::kOpen       ? 2
                                            : channel.breaker == CircuitBreaker::State::kHalfOpen ? 1
                                                                                                  : 0);
      // The count lives with the channel's breaker, which a reload that changes the channel starts afresh.
      if (const double more =
              static_cast<double>(channel.breaker_openings) - metric_set_.breaker_openings.value({name});
          more > 0)
        metric_set_.breaker_openings.add({name}, more);
      metric_set_.in_flight.set({std::string(to_string(channel.channel))}, channel.in_flight);
    }
  }

  std::vector<ReadinessCheck> readiness() {
    std::vector<ReadinessCheck> checks;
    const Timestamp now = clock_.now();
    const StateLook& look = state_look();
    if (!look.read)
      checks.push_back({"state", false, "not read yet"});
    else if (!look.error.empty())
      checks.push_back({"state", false, look.error});
    else
      checks.push_back({"state", true, state_name(*pipeline_->snapshot().config)});
    if (state_failing_since_)
      checks.push_back(
          {"state writes", false,
           "intake refused since " + format_rfc3339(*state_failing_since_, "UTC") + ": " + state_failure_});
    checks.push_back({"configuration", true, config_file_.string()});
    if (stopping_) checks.push_back({"running", false, "stopping"});
    for (const auto& [name, run] : sources_) {
      const Duration window = readiness_window(run->config);
      const auto window_s = std::chrono::duration_cast<std::chrono::seconds>(window).count();
      if (!run->last_success) {
        const bool young = since(run->started, now) < window;
        checks.push_back({"source " + name, false,
                          (young ? "no successful poll yet" : "no successful poll since start") +
                              (run->last_failure.empty() ? std::string() : ": " + run->last_failure)});
        continue;
      }
      const auto age = std::chrono::duration_cast<std::chrono::seconds>(now - *run->last_success).count();
      const bool ok = now - *run->last_success <= window;
      checks.push_back({"source " + name, ok,
                        "last successful poll " + std::to_string(age) + " s ago; window " + std::to_string(window_s) +
                            " s" + (ok || run->last_failure.empty() ? std::string() : "; " + run->last_failure)});
    }
    for (const auto& channel : delivery_->channels())
      checks.push_back({"channel " + std::string(to_string(channel.channel)), !channel.breaker_open,
                        channel.breaker_open ? channel.provider + ": circuit breaker open: " + channel.breaker_why
                                             : channel.provider});
    return checks;
  }

  std::string status_line() {
    std::size_t ok = 0;
    const Timestamp now = clock_.now();
    for (const auto& [name, run] : sources_)
      if (run->last_success && now - *run->last_success <= readiness_window(run->config)) ++ok;
    std::string line = std::to_string(ok) + "/" + std::to_string(sources_.size()) + " sources polled";
    if (const StateLook& look = state_look(); look.read && look.error.empty()) {
      const auto& depth = look.depth;
      line += "; outbox " + std::to_string(depth.pending) + " pending";
      if (depth.oldest_due)
        line += " (oldest due " +
                std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - *depth.oldest_due).count()) +
                " s ago)";
    } else {
      line += "; outbox unreadable";
    }
    line += "; " + std::to_string(delivered_) + " delivered since start";
    return line;
  }

  // --- loops ---

  // Starts a coroutine; one that ends by an exception is a bug that must not
  // leave a half-alive daemon: it is logged and the process exits 1, so that
  // systemd restarts it.
  void spawn(std::string what, asio::awaitable<void> work) {
    asio::co_spawn(*io_, std::move(work), [this, what = std::move(what)](std::exception_ptr failure) {
      if (!failure) return;
      try {
        std::rethrow_exception(failure);
      } catch (const std::exception& e) {
        spdlog::critical("{} stopped, exiting so that the service restarts {}", what, kv("error", e.what()));
      } catch (...) {
        spdlog::critical("{} stopped by an unknown exception; exiting so that the service restarts", what);
      }
      exit_status_ = 1;
      io_->stop();
    });
  }

  // Lets the loop serve what waits before the next batch of long work (kGiveWay).
  asio::awaitable<void> give_way() {
    asio::steady_timer pause(*io_, kGiveWay);
    co_await pause.async_wait(asio::use_awaitable);
  }

  static void wake(asio::steady_timer* sleep) {
    if (sleep) sleep->cancel();
  }

  // Sleeps `wait`, or less when woken through `slot`.
  static asio::awaitable<void> nap(asio::steady_timer& sleep, asio::steady_timer*& slot,
                                   std::chrono::steady_clock::duration wait) {
    sleep.expires_after(wait);
    slot = &sleep;
    boost::system::error_code ec;  // cancelled: woken
    co_await sleep.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    slot = nullptr;
  }

  // Fires due timers, kTimersPerTurn at a time, then sleeps until the next
  // one (at most kMaxTimerSleep; not at all while more are due).
  asio::awaitable<void> timer_loop() {
    asio::steady_timer sleep(*io_);
    while (!stopping_) {
      auto wait = std::chrono::duration_cast<std::chrono::steady_clock::duration>(kMaxTimerSleep);
      try {
        bool skipped = false;  // due for another replica: not a busy loop
        const auto fire = [this, &skipped] {
          const Outcome fired = pipeline_->fire_due(kTimersPerTurn, cancelling_);
          record(fired);
          skipped = fired.skipped_timers > 0;
          return pipeline_->next_timer();
        };
        if (auto next = co_await state_.run(fire)) wait = std::clamp<decltype(wait)>(*next - clock_.now(), {}, wait);
        if (skipped) wait = kMaxTimerSleep;
      } catch (const std::exception& e) {
        spdlog::error("timers: failed {} {}", kv("error", e.what()),
                      kv("next_try_s", std::to_string(kLoopBackoff.count())));
        wait = kLoopBackoff;
      }
      co_await nap(sleep, timer_sleep_, wait);
    }
  }

  asio::awaitable<void> delivery_loop() {
    co_await delivery_->run();
    spdlog::info("delivery: drained");
    co_await operators_->finished();  // its last digest, within the same stop grace
    // Delivery is the last to finish: stop the rest, then the loop.
    if (push_server_) push_server_->stop();
    if (admin_server_) admin_server_->stop();
    if (inbound_server_) inbound_server_->stop();
    io_->stop();
  }

  asio::awaitable<void> watchdog_loop() {
    const auto interval = notifier_.watchdog_interval();
    if (!interval) co_return;
    asio::steady_timer sleep(*io_);
    while (!stopping_) {
      notifier_.watchdog();  // from the loop itself: a stuck loop sends none
      co_await nap(sleep, watchdog_sleep_, *interval / 2);
    }
  }

  // Reads what the gauges, /readyz and STATUS= show, on the store's fiber.
  asio::awaitable<void> state_look_loop() {
    asio::steady_timer sleep(*io_);
    const auto look = [this] { look_at_state(); };
    while (!stopping_) {
      co_await state_.run(look);
      co_await nap(sleep, state_look_sleep_, kStateLookInterval);
    }
  }

  asio::awaitable<void> status_loop() {
    asio::steady_timer sleep(*io_);
    while (!stopping_) {
      co_await nap(sleep, status_sleep_, kStatusInterval);
      if (!stopping_) notifier_.status(status_line());
    }
  }

  void wait_for_hangup() {
    hangup_->async_wait([this](const boost::system::error_code& ec, int) {
      if (ec) return;
      spdlog::info("signal SIGHUP: reloading {}", config_file_.string());
      try {
        reload();
      } catch (const std::exception& e) {
        spdlog::error("reload: {}", e.what());
        reload_log_.add(ReloadRecord{clock_.now(), false, {e.what()}});
      }
      if (!stopping_) wait_for_hangup();
    });
  }

  // --- sources ---

  void start_source(const SourceConfig& config) {
    auto run = std::make_shared<SourceRun>();
    run->config = config;
    run->intake = intake_for(config.name, config.partial);
    run->started = clock_.now();
    sources_[config.name] = run;
    spawn("source " + config.name, source_loop(run));
  }

  static void stop_source(SourceRun& run) {
    run.stop = true;
    wake(run.sleep);
  }

  // A changed source restarts from its persisted cursor once the old one
  // has finished its poll, so that no page is read by both.
  void restart_source(const SourceConfig& config) {
    auto old = sources_.at(config.name);
    auto next = std::make_shared<SourceRun>();
    next->config = config;
    next->intake = intake_for(config.name, config.partial);
    next->started = clock_.now();
    stop_source(*old);
    old->successor = next;
    sources_[config.name] = next;  // readiness follows the new one at once
    if (old->finished) start_successor(*old);
  }

  // Starts the run that replaces `finished`. One that a later reload
  // stopped before it started (the source changed again, or was removed)
  // is skipped for its own successor, if any: a removed source stays
  // stopped.
  void start_successor(SourceRun& finished) {
    for (auto next = finished.successor; next && !stopping_; next = next->successor) {
      if (!next->stop) {
        spawn("source " + next->config.name, source_loop(next));
        return;
      }
      next->finished = true;
    }
  }

  // Polls one source until stopped. One iteration that fails (an I/O
  // error, a database that went away, an exception) is logged and counted;
  // the loop backs off and goes on.
  asio::awaitable<void> source_loop(std::shared_ptr<SourceRun> run) {
    asio::steady_timer sleep(*io_);
    const SourceConfig& config = run->config;
    std::unique_ptr<SpoolSource> spool;
    std::size_t spool_batch = SpoolSource::kBatchLines;
    std::shared_ptr<SqlSource> sql;
    std::unique_ptr<HttpSource> http;
    std::mt19937_64 random(std::random_device{}());
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    spdlog::info("source: started {} {}", kv("source", config.name), kv("type", config.type));
    while (!run->stop) {
      Duration wait = config.interval;
      std::optional<std::string> failure;
      std::string failure_kind = "error";
      int observations = 0;
      int rejected = 0;
      std::vector<std::string> problems;
      bool standby = false;
      try {
        // Each source is read by the one replica holding its lease.
        const auto hold = [this, &config] { return cluster_->hold_source(config.name); };
        if (!co_await leases_.run(hold)) {
          standby = true;
          wait = std::min<Duration>(wait, cluster_->renew_every());
        } else if (config.type == "spool") {
          // A batch at a time, yielding between them: a big file must not
          // hold the push endpoint, the timers and the deliveries.
          if (!spool) spool = std::make_unique<SpoolSource>(config.path, "spool:" + config.name);
          SpoolSource::Scan scan;
          for (;;) {
            const auto started = std::chrono::steady_clock::now();
            const auto step = [&] { return spool->step(*run->intake, scan, spool_batch); };
            if (!co_await state_.run(step) || run->stop) break;
            const auto took = std::chrono::steady_clock::now() - started;
            spool_batch = next_spool_batch(spool_batch, took);
            if (took >= kGiveWayAfter)
              co_await give_way();
            else
              co_await asio::post(*io_, asio::use_awaitable);
          }
          observations = scan.observations;
          rejected = scan.rejected;
          problems = scan.problems;
        } else if (config.type == "sqlite") {
          if (!sql) {
            sql = std::make_shared<SqlSource>(config, SqlDatabase::open_sqlite(config.path));
            std::erase_if(sql_sources_, [](const auto& s) { return s.expired(); });
            sql_sources_.push_back(sql);
          }
          const SqlSource::Poll poll = co_await sql->poll(*run->intake, clock_.now());
          observations = poll.observations;
          rejected = poll.rejected;
          problems = poll.problems;
        } else {
          if (!http) http = std::make_unique<HttpSource>(config, *http_, *run->intake, clock_);
          const HttpSource::Poll poll = co_await http->poll();
          observations = poll.observations;
          rejected = poll.rejected;
          problems = poll.problems;
          failure = poll.failure;
          failure_kind = poll.problem;
          wait = http->next_delay(poll, unit(random));
        }
      } catch (const std::exception& e) {
        failure = e.what();
        sql.reset();    // reconnect on the next round
        spool.reset();  // and resume from the committed progress
        wait = std::max<Duration>(wait, kLoopBackoff);
      }
      const Timestamp now = clock_.now();
      if (observations > 0 || rejected > 0)
        spdlog::info("source: polled {} {} {}", kv("source", config.name),
                     kv("observations", std::to_string(observations)), kv("rejected", std::to_string(rejected)));
      for (const auto& problem : problems)
        spdlog::warn("source: problem {} {}", kv("source", config.name), kv("detail", problem));
      if (rejected > 0) metric_set_.rejected.add({config.name, "invalid"}, rejected);
      if (standby) {
        run->last_success = now;  // read by another replica: healthy
        run->last_failure.clear();
      } else if (failure) {
        run->last_failure = *failure;
        metric_set_.polls.add({config.name, "error"});
        metric_set_.poll_errors.add({config.name});
        metric_set_.poll_failures.add({config.name, failure_kind});
        spdlog::warn("source: poll failed {} {} {}", kv("source", config.name), kv("error", *failure),
                     kv("next_try_s", std::to_string(std::chrono::duration_cast<std::chrono::seconds>(wait).count())));
      } else {
        run->last_success = now;
        run->last_failure.clear();
        metric_set_.polls.add({config.name, "ok"});
        metric_set_.last_success.set_to_time({config.name}, wall(now));
      }
      if (run->stop) break;
      co_await nap(sleep, run->sleep, std::chrono::duration_cast<std::chrono::steady_clock::duration>(wait));
    }
    run->finished = true;
    spdlog::info("source: stopped {}", kv("source", config.name));
    start_successor(*run);
  }

  // --- reload, part by part ---

  void reload_rules(const RuleSet& old_rules, const RuleSet& new_rules) {
    std::set<EntityType> reschedule;
    std::vector<std::pair<std::string, bool>> cancel;  // rules whose timers go, and whether removed
    for (const Rule& rule : old_rules.rules()) {
      const Rule* now = new_rules.find(rule.id);
      if (now && now->definition == rule.definition) continue;
      if (!now) {
        spdlog::info("reload: rule removed {}", kv("rule", rule.id));
      } else {
        spdlog::info("reload: rule changed {}", kv("rule", rule.id));
        if (now->deadline) reschedule.insert(now->deadline->entity);
      }
      if (rule.deadline) cancel.emplace_back(rule.id, !now);
    }
    for (const Rule& rule : new_rules.rules()) {
      if (old_rules.find(rule.id)) continue;
      spdlog::info("reload: rule added {}", kv("rule", rule.id));
      if (rule.deadline) reschedule.insert(rule.deadline->entity);
    }
    // Cancelled before anything is scheduled again: a rule changed twice
    // (or removed and added again) by reloads in a row loses its old timers
    // and keeps the new ones.
    for (const auto& [rule, removed] : cancel) {
      if (cancelling_.insert(rule).second) cancelled_count_[rule] = 0;
      cancel_removed_[rule] = removed;
    }
    ++reload_generation_;
    // A type set again starts over: the entities done so far saw the rules before.
    for (EntityType type : reschedule) rescheduling_[type] = Rescheduling{{}, 0, reload_generation_};
    if (!timers_reloading_ && (!cancelling_.empty() || !rescheduling_.empty())) {
      timers_reloading_ = true;
      spawn("reload: timers", reload_timers());
    }
  }

  // After reloads: removes the timers of the rules in cancelling_, then
  // sets again the timers of the entity types in rescheduling_ (new or
  // changed `at` rules) for the entities already known. A rule can have a
  // timer per entity (millions), so both go in batches, each a short
  // transaction, yielding to the loop between them so that intake, delivery
  // and /metrics go on. One runs at a time; a reload meanwhile adds to
  // what it does, and a cancellation it adds goes before any further
  // scheduling. Timers of a rule being cancelled that come due meanwhile
  // are removed unfired (Pipeline::fire_due).
  asio::awaitable<void> reload_timers() {
    while (!stopping_) {
      if (!cancelling_.empty()) {
        const std::string rule = *cancelling_.begin();
        try {
          const auto batch = [&] { return store_->cancel_timers(rule, kCancelBatch); };
          const CancelledTimers cancelled = co_await state_.run(batch);
          cancelled_count_[rule] += cancelled.unfired;
          if (cancelled.removed < kCancelBatch) {
            const std::size_t count = cancelled_count_[rule];
            if (count > 0 || cancel_removed_[rule])
              spdlog::info("reload: timers cancelled {} {}", kv("rule", rule), kv("count", std::to_string(count)));
            forget_cancel(rule);
            continue;  // the next rule at once: this one's last batch was short
          }
        } catch (const StoreError& e) {
          spdlog::error("reload: cancelling timers: {}", e.what());
          forget_cancel(rule);
        }
      } else if (!rescheduling_.empty()) {
        const EntityType type = rescheduling_.begin()->first;
        const Rescheduling was = rescheduling_.begin()->second;
        std::optional<std::string> last;
        try {
          const auto batch = [&] { return pipeline_->reschedule_known(type, was.after, kRescheduleBatch); };
          last = co_await state_.run(batch);
        } catch (const StoreError& e) {
          spdlog::error("reload: scheduling timers for {}: {}", to_string(type), e.what());
          rescheduling_.erase(type);
          continue;
        }
        auto now = rescheduling_.find(type);
        if (now == rescheduling_.end() || now->second.generation != was.generation) continue;  // set to start over
        if (!last) {
          spdlog::info("reload: timers scheduled {} {}", kv("type", to_string(type)),
                       kv("entities_up_to", std::to_string(was.done)));
          rescheduling_.erase(now);
          continue;
        }
        now->second.after = *last;
        now->second.done += kRescheduleBatch;
      } else {
        break;
      }
      co_await give_way();
    }
    timers_reloading_ = false;
  }

  void forget_cancel(const std::string& rule) {
    cancelling_.erase(rule);
    cancelled_count_.erase(rule);
    cancel_removed_.erase(rule);
  }

  void reload_channels(const Config& old_config, const Config& new_config) {
    auto find = [](const Config& config, Channel channel) -> const ChannelConfig* {
      for (const auto& c : config.channels)
        if (c.channel == channel) return &c;
      return nullptr;
    };
    bool changed = false;
    for (Channel channel : {Channel::kEmail, Channel::kSms}) {
      const ChannelConfig* before = find(old_config, channel);
      const ChannelConfig* after = find(new_config, channel);
      const std::string name(to_string(channel));
      if (!before && after)
        spdlog::info("reload: channel added {} {}", kv("channel", name), kv("provider", after->provider));
      if (before && !after) spdlog::info("reload: channel removed {}", kv("channel", name));
      if (before && after && !(*before == *after))
        spdlog::info("reload: channel changed {} {}", kv("channel", name), kv("provider", after->provider));
      changed = changed || (before == nullptr) != (after == nullptr) || (before && after && !(*before == *after));
    }
    if (changed) delivery_->reconfigure(lanes(new_config));
  }

  void reload_sources(const Config& old_config, const Config& new_config) {
    for (const auto& source : old_config.sources) {
      const auto it = std::find_if(new_config.sources.begin(), new_config.sources.end(),
                                   [&](const SourceConfig& s) { return s.name == source.name; });
      if (it == new_config.sources.end()) {
        spdlog::info("reload: source removed {}", kv("source", source.name));
        stop_source(*sources_.at(source.name));
        sources_.erase(source.name);
      } else if (!(*it == source)) {
        spdlog::info("reload: source changed, restarting from its cursor {}", kv("source", source.name));
        restart_source(*it);
      }
    }
    for (const auto& source : new_config.sources) {
      if (sources_.count(source.name)) continue;
      spdlog::info("reload: source added {}", kv("source", source.name));
      start_source(source);
    }
  }

  void reload_endpoints(const Config& old_config, const Config& new_config) {
    if (old_config.push != new_config.push) {
      if (push_server_) push_server_->stop();
      push_server_.reset();
      if (push_group_) push_group_->flush();  // what it took in is answered by the old endpoint
      // On fibers the flush goes on after this: the old ones live until the end.
      if (push_group_ && !push_group_->idle())
        retired_push_.push_back(RetiredPush{std::move(push_intake_), std::move(push_), std::move(push_group_)});
      push_group_.reset();
      push_.reset();
      if (new_config.push) {
        try {
          start_push(*new_config.push);
          spdlog::info("reload: push endpoint reconfigured");
        } catch (const StartupError& e) {
          spdlog::error("reload: {}; the push endpoint is closed until the next reload", e.what());
        }
      } else {
        spdlog::info("reload: push endpoint removed");
      }
    }
    if (old_config.admin != new_config.admin) {
      if (admin_server_) admin_server_->stop();
      admin_server_.reset();
      if (new_config.admin) {
        try {
          start_admin(*new_config.admin);
        } catch (const StartupError& e) {
          spdlog::error("reload: {}; the admin endpoint is closed until the next reload", e.what());
        }
      }
    }
  }

  const std::filesystem::path config_file_;
  const Clock& clock_;
  const Timestamp started_;
  // Reset by the destructor, before what the coroutines refer to.
  std::optional<asio::io_context> io_{std::in_place};
  Metrics metrics_;
  DaemonMetrics metric_set_;
  ServiceNotifier notifier_;
  std::unique_ptr<Store> store_;
  StateRunner state_;  // runs the store's work: directly, or on its fibers
  // On PostgreSQL, the cluster's leases on a connection of their own (see
  // the constructor); on SQLite none, and leases_ runs directly on store_.
  std::unique_ptr<Store> lease_store_;
  StateRunner leases_;
  StateLook state_look_;  // see state_look()
  std::unique_ptr<Pipeline> pipeline_;
  std::unique_ptr<HttpClient> http_;
  std::unique_ptr<SmtpClient> smtp_;
  std::unique_ptr<Delivery> delivery_;
  std::unique_ptr<Actions> actions_;  // before delivery: a notification's action is taken first
  Outcome released_;                  // what the release checks of the current delivery round decided
  std::unique_ptr<OperatorChannel> operators_;
  std::unique_ptr<PipelineIntake> push_intake_;
  std::unique_ptr<PushEndpoint> push_;
  std::unique_ptr<PushGroupCommit> push_group_;
  std::unique_ptr<Cluster> cluster_;  // this replica's shards and sources
  std::unique_ptr<HttpServer> push_server_;
  // A push endpoint a reload replaced while its last groups were still
  // being committed on the store's fibers (PushGroupCommit::flush()).
  struct RetiredPush {
    std::unique_ptr<PipelineIntake> intake;
    std::unique_ptr<PushEndpoint> endpoint;
    std::unique_ptr<PushGroupCommit> group;
  };
  std::vector<RetiredPush> retired_push_;
  ReloadLog reload_log_;              // the last reloads, for the console
  TokenThrottle token_throttle_;      // wrong admin tokens, of the API and the console's login
  std::unique_ptr<Console> console_;  // on the admin endpoint; its sessions outlive a restart of the endpoint
  std::unique_ptr<AdminEndpoint> admin_;
  std::unique_ptr<HttpServer> admin_server_;
  std::unique_ptr<ReplyForwarder> forwarder_;
  std::unique_ptr<InboundEndpoint> inbound_;
  std::unique_ptr<HttpServer> inbound_server_;
  std::map<std::string, std::shared_ptr<SourceRun>> sources_;
  // Every SQL source alive, to interrupt their queries when stopping and to
  // end their worker threads before the loop is destroyed.
  std::vector<std::weak_ptr<SqlSource>> sql_sources_;
  std::optional<asio::signal_set> signals_;  // SIGINT, SIGTERM
  std::optional<asio::signal_set> hangup_;   // SIGHUP
  asio::steady_timer* timer_sleep_ = nullptr;
  asio::steady_timer* cluster_sleep_ = nullptr;
  bool intake_again_ = false;  // the shared intake grew (Store::watch) since the cluster loop's turn began
  asio::steady_timer* lease_sleep_ = nullptr;
  bool renewed_ = false;  // the leases were renewed since the cluster loop's turn began
  asio::steady_timer* watchdog_sleep_ = nullptr;
  asio::steady_timer* status_sleep_ = nullptr;
  asio::steady_timer* state_look_sleep_ = nullptr;
  bool stopping_ = false;
  int exit_status_ = 0;
  // The timers a reload left to remove and to set again (reload_timers()).
  struct Rescheduling {
    std::string after;  // the last entity id done
    std::size_t done = 0;
    int generation = 0;  // of the reload that set it (again)
  };
  int reload_generation_ = 0;
  std::set<std::string> cancelling_;                    // rules whose timers are being removed
  std::map<std::string, std::size_t> cancelled_count_;  // how many were still to fire, so far
  std::map<std::string, bool> cancel_removed_;          // whether the rule is gone (else changed)
  std::map<EntityType, Rescheduling> rescheduling_;     // by entity type
  bool timers_reloading_ = false;                       // reload_timers() runs
  long long delivered_ = 0;
  std::optional<Timestamp> state_failing_since_;  // since when intake commits fail
  std::string state_failure_;                     // the last such failure
};

Daemon::Daemon(std::filesystem::path config_file, Snapshot snapshot, const Clock& clock)
    : impl_(std::make_unique<Impl>(std::move(config_file), std::move(snapshot), clock)) {}
Daemon::~Daemon() = default;
int Daemon::run() { return impl_->run(); }
void Daemon::reload() { impl_->reload(); }
void Daemon::start_shutdown() { impl_->start_shutdown(); }

}  // namespace tactd
