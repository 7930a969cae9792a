// `tactd run`: the daemon. One io_context; the pipeline, the timers and the
// sources all run on it, so the store is only ever touched from the loop.
#include <utility>  // before Boost.Asio: Boost 1.74's awaitable.hpp needs it with C++20

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <ostream>
#include <random>

#include "app/commands.h"
#include "channels/delivery.h"
#include "net/http_client.h"
#include "net/http_server.h"
#include "net/smtp_client.h"
#include "pipeline/intake.h"
#include "pipeline/pipeline.h"
#include "sources/http_source.h"
#include "sources/push_endpoint.h"
#include "sources/spool_source.h"
#include "sources/sqlite_source.h"

namespace tactd {
namespace {

namespace asio = boost::asio;

// How long the timer loop sleeps at most: a timer scheduled by a source
// while it sleeps is found within this bound.
constexpr auto kMaxTimerSleep = std::chrono::seconds{1};

void log_outcome(const Outcome& outcome) {
  for (const auto& n : outcome.notifications)
    spdlog::info("outbox: {} {} for {} about {} by {}, due {}", to_string(n.kind), n.rule, n.customer, n.entity.str(),
                 to_string(n.channel), format_rfc3339(n.at, n.time_zone));
  for (const auto& h : outcome.held_back) spdlog::debug("held back: {} about {}: {}", h.rule, h.entity.str(), h.reason);
  for (const auto& problem : outcome.problems) spdlog::warn("{}", problem);
}

// Logs what ended a detached coroutine (never silently dropped).
auto log_end(std::string what) {
  return [what = std::move(what)](std::exception_ptr failure) {
    if (!failure) return;
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& e) {
      spdlog::error("{} stopped: {}", what, e.what());
    }
  };
}

// Fires due timers, then sleeps until the next one (at most kMaxTimerSleep).
asio::awaitable<void> timer_loop(Pipeline& pipeline, const Clock& clock) {
  asio::steady_timer sleep(co_await asio::this_coro::executor);
  for (;;) {
    try {
      log_outcome(pipeline.fire_due());
    } catch (const StoreError& e) {
      spdlog::error("timers: {}", e.what());
    }
    auto wait = std::chrono::duration_cast<std::chrono::steady_clock::duration>(kMaxTimerSleep);
    if (auto next = pipeline.next_timer()) wait = std::clamp<decltype(wait)>(*next - clock.now(), {}, wait);
    sleep.expires_after(wait);
    co_await sleep.async_wait(asio::use_awaitable);
  }
}

// Scans a spool folder every `interval`.
asio::awaitable<void> spool_loop(SourceConfig config, Intake& intake) {
  const SpoolSource spool(config.path);
  asio::steady_timer sleep(co_await asio::this_coro::executor);
  for (;;) {
    const SpoolSource::Scan scan = spool.scan(intake);
    if (scan.files > 0)
      spdlog::info("source {}: {} files, {} observations, {} rejected lines", config.name, scan.files,
                   scan.observations, scan.rejected);
    for (const auto& problem : scan.problems) spdlog::warn("source {}: {}", config.name, problem);
    sleep.expires_after(config.interval);
    co_await sleep.async_wait(asio::use_awaitable);
  }
}

// Polls a database every `interval`.
asio::awaitable<void> sql_loop(SourceConfig config, Intake& intake, const Clock& clock) {
  asio::steady_timer sleep(co_await asio::this_coro::executor);
  std::unique_ptr<SqlSource> source;
  for (;;) {
    try {
      if (!source) source = std::make_unique<SqlSource>(config, SqlDatabase::open_sqlite(config.path));
      const SqlSource::Poll poll = source->poll(intake, clock.now());
      if (poll.observations > 0 || poll.rejected > 0)
        spdlog::info("source {}: {} observations, {} rejected rows", config.name, poll.observations, poll.rejected);
      for (const auto& problem : poll.problems) spdlog::warn("source {}: {}", config.name, problem);
    } catch (const SqlError& e) {
      spdlog::warn("source {}: {}", config.name, e.what());
      source.reset();  // reconnect on the next round
    }
    sleep.expires_after(config.interval);
    co_await sleep.async_wait(asio::use_awaitable);
  }
}

// Polls a JSON API: after each poll it waits the interval plus jitter, or a
// backoff after failures.
asio::awaitable<void> http_loop(SourceConfig config, HttpClient& client, Intake& intake, const Clock& clock) {
  HttpSource source(config, client, intake, clock);
  std::mt19937_64 random(std::random_device{}());
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  asio::steady_timer sleep(co_await asio::this_coro::executor);
  for (;;) {
    const HttpSource::Poll poll = co_await source.poll();
    if (poll.observations > 0 || poll.rejected > 0)
      spdlog::info("source {}: {} pages, {} observations, {} rejected records", config.name, poll.pages,
                   poll.observations, poll.rejected);
    for (const auto& problem : poll.problems) spdlog::warn("source {}: {}", config.name, problem);
    const auto wait = source.next_delay(poll, unit(random));
    if (poll.failure)
      spdlog::warn("source {}: {}; next try in {}s", config.name, *poll.failure,
                   std::chrono::duration_cast<std::chrono::seconds>(wait).count());
    sleep.expires_after(wait);
    co_await sleep.async_wait(asio::use_awaitable);
  }
}

}  // namespace

int run(const RunOptions& options, std::ostream& err) {
  Diagnostics errors;
  auto snapshot = load_snapshot(options.config, errors);
  for (const auto& e : errors) err << e.str() << "\n";
  if (!snapshot) return kExitUnusable;
  for (const auto& source : snapshot->config->sources) {
    if (source.type == "spool" && !std::filesystem::is_directory(source.path)) {
      err << options.config.string() << ": source '" << source.name << "': " << source.path.string()
          << " is not a folder\n";
      return kExitUnusable;
    }
  }

  std::unique_ptr<Store> store;
  try {
    store = Store::open(snapshot->config->state_path);
  } catch (const StoreError& e) {
    err << e.what() << "\n";
    return kExitUnusable;
  }
  // Logs go to standard error, where journald (or a terminal) reads them.
  spdlog::set_default_logger(spdlog::stderr_color_mt("tactd"));
  const SystemClock clock;
  Pipeline pipeline(*snapshot, *store, clock);
  PipelineIntake intake(pipeline, *store, log_outcome);

  asio::io_context io;
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&io](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    spdlog::info("signal {}: stopping", signal);
    io.stop();  // every handler commits whole transactions: stopping between them loses nothing
  });
  // One client for every HTTP source, so that connections are reused.
  const std::unique_ptr<HttpClient> http = HttpClient::create(io);
  asio::co_spawn(io, timer_loop(pipeline, clock), log_end("timers"));
  for (const auto& source : snapshot->config->sources) {
    if (source.type == "spool")
      asio::co_spawn(io, spool_loop(source, intake), log_end("source " + source.name));
    else if (source.type == "sqlite")
      asio::co_spawn(io, sql_loop(source, intake, clock), log_end("source " + source.name));
    else
      asio::co_spawn(io, http_loop(source, *http, intake, clock), log_end("source " + source.name));
  }

  std::unique_ptr<PushEndpoint> push;
  std::unique_ptr<HttpServer> server;
  if (const auto& config = snapshot->config->push) {
    push = std::make_unique<PushEndpoint>(*config, intake, clock);
    HttpServerLimits limits;
    limits.max_body = config->max_body;
    try {
      server = HttpServer::start(io, config->address, config->port, limits,
                                 [&push](const HttpRequest& request) { return push->handle(request); });
    } catch (const std::runtime_error& e) {
      err << "push: " << e.what() << "\n";
      return kExitUnusable;
    }
    spdlog::info("push: listening on {}:{}", config->address, server->port());
  }

  // Delivery: one lane per configured channel, on the same clients.
  const std::unique_ptr<SmtpClient> smtp = SmtpClient::create(io);
  std::vector<Delivery::Lane> lanes;
  for (const auto& channel : snapshot->config->channels)
    lanes.push_back(Delivery::Lane{channel, Sender::create(channel, *http, *smtp, clock)});
  if (lanes.size() < 2)
    spdlog::warn("no [[channel]] for {}: its notifications stay in the outbox until one is configured",
                 lanes.empty()                                ? "email or sms"
                 : lanes[0].config.channel == Channel::kEmail ? "sms"
                                                              : "email");
  Delivery delivery(*store, clock, std::move(lanes));
  asio::co_spawn(io, delivery.run(), log_end("delivery"));

  spdlog::info("tactd {} running: {} rules, {} sources, {} channels, state {}", TACTD_VERSION_STRING,
               snapshot->rules->rules().size(), snapshot->config->sources.size(), snapshot->config->channels.size(),
               snapshot->config->state_path.string());
  io.run();
  spdlog::info("stopped");
  return kExitOk;
}

}  // namespace tactd
