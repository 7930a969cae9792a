#include "console/console.h"

#include <catch2/catch.hpp>

#include "model/clock.h"
#include "support/temp_dir.h"

namespace tactd {
namespace {

Timestamp at(const char* text) { return *parse_rfc3339(text); }

HttpRequest request(std::string method, std::string target, std::string body = {}) {
  HttpRequest r;
  r.method = std::move(method);
  r.target = std::move(target);
  r.body = std::move(body);
  r.headers["host"] = "127.0.0.1:9090";
  return r;
}

std::string header(const HttpResponse& response, std::string_view name) {
  for (const auto& [key, value] : response.headers)
    if (key == name) return value;
  return {};
}

// A console over a temporary store and the shipped configuration.
struct ConsoleFixture {
  ConsoleFixture() : clock(at("2026-11-20T12:00:00Z")) {
    Diagnostics errors;
    auto loaded = load_snapshot(test::source_dir() / "config/tactd.toml", errors);
    REQUIRE(loaded);
    snapshot = *loaded;
    console = std::make_unique<Console>(
        ConsoleContext{store.get(), &clock, [this] { return snapshot; }, &reloads, [this] { ++woken; }}, "s3cret");
  }

  // Logs in; the cookie header of the session.
  std::string log_in() {
    HttpRequest r = request("POST", "/console/login", "token=s3cret");
    r.headers["origin"] = "http://127.0.0.1:9090";
    const HttpResponse response = console->handle(r);
    REQUIRE(response.status == 303);
    const std::string set_cookie = header(response, "Set-Cookie");
    REQUIRE(set_cookie.starts_with("tactd_console="));
    return set_cookie.substr(0, set_cookie.find(';'));
  }

  std::unique_ptr<Store> store = Store::open_temporary();
  VirtualClock clock;
  Snapshot snapshot;
  ReloadLog reloads;
  int woken = 0;
  std::unique_ptr<Console> console;
};

Notification notification(const char* key, const char* customer) {
  Notification n;
  n.idempotency_key = key;
  n.at = at("2026-11-20T11:30:00Z");
  n.rule = "order-cancelled";
  n.kind = Kind::kApology;
  n.customer = customer;
  n.entity = EntityRef{EntityType::kOrder, "A"};
  n.channel = Channel::kSms;
  n.to = "+31600000000";
  n.body = "Sorry <b>& more</b>";
  n.locale = "en";
  n.time_zone = "Europe/Amsterdam";
  return n;
}

}  // namespace

TEST_CASE("console sessions are random, found by their cookie, expire, and end") {
  ConsoleSessions sessions;
  const Timestamp now = at("2026-11-20T12:00:00Z");
  const ConsoleSession a = sessions.open(now);
  const ConsoleSession b = sessions.open(now);
  CHECK(a.id.size() == 64);
  CHECK(a.csrf.size() == 64);
  CHECK(a.id != b.id);
  CHECK(a.csrf != a.id);
  REQUIRE(sessions.find(a.id, now));
  CHECK(sessions.find(a.id, now)->csrf == a.csrf);
  CHECK_FALSE(sessions.find("not-a-session", now));
  CHECK_FALSE(sessions.find(a.id, now + ConsoleSessions::kLifetime));  // expired, and forgotten
  CHECK(sessions.size() == 1);
  sessions.close(b.id);
  CHECK_FALSE(sessions.find(b.id, now));
  for (std::size_t i = 0; i < ConsoleSessions::kMax + 5; ++i) sessions.open(now + std::chrono::seconds(i));
  CHECK(sessions.size() == ConsoleSessions::kMax);
}

TEST_CASE("a console POST must come from the console's own origin") {
  HttpRequest r = request("POST", "/console/outbox/retry");
  CHECK_THAT(cross_site_problem(r), Catch::Contains("neither Origin nor Referer"));
  r.headers["origin"] = "http://evil.example";
  CHECK_THAT(cross_site_problem(r), Catch::Contains("another site"));
  r.headers["origin"] = "http://127.0.0.1:9090";
  CHECK(cross_site_problem(r).empty());
  r.headers.erase("origin");
  r.headers["referer"] = "http://127.0.0.1:9090/console/outbox?status=dead";
  CHECK(cross_site_problem(r).empty());
  r.headers["referer"] = "http://127.0.0.1:9090.evil.example/console";
  CHECK_FALSE(cross_site_problem(r).empty());
  CHECK(same_secret("abc", "abc"));
  CHECK_FALSE(same_secret("abc", "abd"));
  CHECK_FALSE(same_secret("abc", "abcd"));
}

TEST_CASE("form bodies are decoded") {
  const auto fields = form_fields("token=a%2Bb+c&id=12&empty=&id=13&broken=%zz");
  CHECK(fields.at("token") == "a+b c");
  CHECK(fields.at("id") == "12");
  CHECK(fields.at("empty").empty());
  CHECK(fields.at("broken") == "%zz");
}

TEST_CASE("a console page is rendered from data with every value escaped") {
  const nlohmann::json data{{"title", "Outbox <script>"},
                            {"signed_in", true},
                            {"csrf", "c\"s"},
                            {"nav", {{{"href", "/console/outbox"}, {"label", "Outbox"}, {"current", true}}}},
                            {"statuses", {{{"name", "pending"}, {"count", "2"}, {"current", true}}}},
                            {"status", "pending"},
                            {"limit", "50"},
                            {"zone", "UTC"},
                            {"has_rows", true},
                            {"rows",
                             {{{"id", "7"},
                               {"kind", "apology"},
                               {"rule", "r"},
                               {"customer", "<img src=x>"},
                               {"customer_query", "%3Cimg"},
                               {"channel", "sms"},
                               {"due", "2026"},
                               {"attempts", "1"},
                               {"last_error", "a & b"},
                               {"can_act", true}}}}};
  const std::string html = render_console_page("outbox", data);
  CHECK_THAT(html, Catch::StartsWith("<!DOCTYPE html>\n<html lang=\"en\">"));
  CHECK_THAT(html, Catch::Contains("<title>Outbox &lt;script&gt; · tactd console</title>"));
  CHECK_THAT(html, Catch::Contains("&lt;img src=x&gt;"));
  CHECK_THAT(html, !Catch::Contains("<img"));
  CHECK_THAT(html, Catch::Contains("a &amp; b"));
  CHECK_THAT(html, Catch::Contains("value=\"c&quot;s\""));
  CHECK_THAT(html,
             Catch::Contains("<button type=\"submit\" class=\"retry\" aria-label=\"Retry entry 7\">Retry</button>"));
  CHECK_THAT(html, Catch::Contains("<a class=\"skip\" href=\"#main\">"));
  CHECK_THAT(html, Catch::Contains("aria-current=\"page\""));
  CHECK_THAT(html, !Catch::Contains("<script"));
  CHECK_THAT(html, !Catch::Contains("style="));
  CHECK_THROWS_AS(render_console_page("nope", data), std::invalid_argument);
}

TEST_CASE("the hourly chart stacks messages per kind and gives the same figures as a table") {
  std::vector<Timestamp> hours;
  for (int i = 0; i < 24; ++i) hours.push_back(at("2026-11-19T13:00:00Z") + std::chrono::hours{i});
  std::map<std::string, std::vector<std::size_t>> counts{{"apology", std::vector<std::size_t>(24, 0)},
                                                         {"thank_you", std::vector<std::size_t>(24, 0)}};
  counts["apology"][23] = 3;
  counts["thank_you"][23] = 1;
  counts["thank_you"][0] = 2;
  const auto chart = hourly_chart(hours, counts, "UTC");
  CHECK(chart["total"] == "6");
  CHECK(chart["bars"].size() == 3);
  CHECK(chart["rows"].size() == 24);
  CHECK(chart["rows"][23]["total"] == "4");
  CHECK(chart["rows"][0]["hour"] == "13:00");
  CHECK(chart["kinds"] == nlohmann::json{"apology", "thank_you"});
}

TEST_CASE("the console answers 303 to the login page without a session, and logs in with the admin token") {
  ConsoleFixture f;
  const HttpResponse anonymous = f.console->handle(request("GET", "/console/outbox"));
  CHECK(anonymous.status == 303);
  CHECK(header(anonymous, "Location") == "/console/login");
  CHECK(header(anonymous, "X-Frame-Options") == "DENY");
  CHECK_THAT(header(anonymous, "Content-Security-Policy"), Catch::Contains("default-src 'self'"));

  const HttpResponse form = f.console->handle(request("GET", "/console/login"));
  CHECK(form.status == 200);
  CHECK_THAT(form.body, Catch::Contains("<label for=\"token\">"));
  CHECK(header(form, "X-Content-Type-Options") == "nosniff");
  CHECK(header(form, "Referrer-Policy") == "same-origin");

  HttpRequest wrong = request("POST", "/console/login", "token=guess");
  wrong.headers["origin"] = "http://127.0.0.1:9090";
  CHECK(f.console->handle(wrong).status == 403);
  HttpRequest cross = request("POST", "/console/login", "token=s3cret");
  cross.headers["origin"] = "http://evil.example";
  CHECK(f.console->handle(cross).status == 403);

  const std::string cookie = f.log_in();
  HttpRequest signed_in = request("GET", "/console/outbox");
  signed_in.headers["cookie"] = "other=1; " + cookie;
  const HttpResponse page = f.console->handle(signed_in);
  CHECK(page.status == 200);
  CHECK_THAT(page.body, Catch::Contains("<h1>Outbox</h1>"));

  f.console->set_token("another");  // a reload with a new token ends the sessions
  CHECK(f.console->handle(signed_in).status == 303);
}

TEST_CASE("after five wrong tokens in a minute every login is refused with 429 until the minute is over") {
  ConsoleFixture f;
  const auto attempt = [&](const char* token) {
    HttpRequest r = request("POST", "/console/login", std::string("token=") + token);
    r.headers["origin"] = "http://127.0.0.1:9090";
    return f.console->handle(r);
  };
  for (int i = 0; i < 4; ++i) {
    CHECK(attempt("guess").status == 403);
    f.clock.advance_to(f.clock.now() + std::chrono::seconds{5});
  }
  CHECK(attempt("s3cret").status == 303);  // four wrong ones do not stop the operator
  CHECK(attempt("guess").status == 403);   // the fifth, at 20 s
  const HttpResponse throttled = attempt("s3cret");
  CHECK(throttled.status == 429);  // even the right token: the answer says nothing about it
  CHECK(header(throttled, "Retry-After") == "40");
  CHECK_THAT(throttled.body, Catch::Contains("too many wrong tokens") && Catch::Contains("40 s"));
  CHECK(attempt("guess").status == 429);  // not counted again, and not compared
  f.clock.advance_to(f.clock.now() + std::chrono::seconds{39});
  CHECK(attempt("s3cret").status == 429);
  f.clock.advance_to(f.clock.now() + std::chrono::seconds{1});  // the first wrong one is a minute old
  CHECK(attempt("guess").status == 403);
  CHECK(attempt("s3cret").status == 429);  // five within the minute again
  f.clock.advance_to(f.clock.now() + std::chrono::seconds{5});
  CHECK(attempt("s3cret").status == 303);
  // The throttle is about the login form only: a session keeps working.
  HttpRequest page = request("GET", "/console/outbox");
  page.headers["cookie"] = f.log_in();
  CHECK(f.console->handle(page).status == 200);

  // The daemon's console counts with the admin API's bearer tokens (one throttle).
  TokenThrottle shared;
  Console console(ConsoleContext{f.store.get(), &f.clock, [&] { return f.snapshot; }, &f.reloads, [] {}, &shared},
                  "s3cret");
  for (int i = 0; i < 5; ++i) shared.failed(f.clock.now());  // wrong bearer tokens on /v1/
  HttpRequest login = request("POST", "/console/login", "token=s3cret");
  login.headers["origin"] = "http://127.0.0.1:9090";
  CHECK(console.handle(login).status == 429);
  CHECK(console.handle(request("GET", "/console/login")).status == 200);  // the form itself is shown
}

TEST_CASE("a console retry needs the session's CSRF token and does what tactd outbox retry does") {
  ConsoleFixture f;
  REQUIRE(f.store->enqueue(notification("k1", "c-1")));
  f.store->record_failure(1, at("2026-11-20T11:31:00Z"), "550 unknown number", std::nullopt);
  const std::string cookie = f.log_in();
  HttpRequest get = request("GET", "/console/outbox?status=dead");
  get.headers["cookie"] = cookie;
  const HttpResponse page = f.console->handle(get);
  REQUIRE(page.status == 200);
  CHECK_THAT(page.body, Catch::Contains("550 unknown number"));
  const auto at_csrf = page.body.find("name=\"csrf\" value=\"");
  REQUIRE(at_csrf != std::string::npos);
  const std::string csrf = page.body.substr(at_csrf + 19, 64);

  HttpRequest post = request("POST", "/console/outbox/retry", "id=1&status=dead");
  post.headers["cookie"] = cookie;
  post.headers["origin"] = "http://127.0.0.1:9090";
  const HttpResponse refused = f.console->handle(post);
  CHECK(refused.status == 403);
  CHECK_THAT(refused.body, Catch::Contains("no CSRF token"));
  post.body = "id=1&status=dead&csrf=" + std::string(64, '0');
  CHECK(f.console->handle(post).status == 403);
  CHECK(f.store->outbox_entry(1)->status == OutboxStatus::kDead);

  post.body = "id=1&status=dead&csrf=" + csrf;
  const HttpResponse done = f.console->handle(post);
  CHECK(done.status == 303);
  CHECK(header(done, "Location") == "/console/outbox?status=dead&done=retry&id=1");
  CHECK(f.store->outbox_entry(1)->status == OutboxStatus::kPending);
  CHECK(f.woken == 1);
  const auto decisions = f.store->decisions(1);
  CHECK(decisions.back().decision == "retried");
  CHECK(decisions.back().reason == "an operator, by the console");

  post.target = "/console/outbox/drop";
  CHECK(f.console->handle(post).status == 303);
  CHECK(f.store->outbox_entry(1)->status == OutboxStatus::kDropped);
  const HttpResponse again = f.console->handle(post);  // dropped: nothing to do
  CHECK_THAT(header(again, "Location"), Catch::Contains("done=refused"));
}

TEST_CASE("the console's pages show the reloads, the rules, a customer and the templates") {
  ConsoleFixture f;
  f.reloads.add(ReloadRecord{at("2026-11-20T11:00:00Z"), false, {"rules/x.toml:3:1: unknown key 'whn'"}});
  f.store->put_entity(Entity{EntityRef{EntityType::kCustomer, "c-1"},
                             at("2026-11-20T10:00:00Z"),
                             {{"email", "mia@example.com"}, {"name", "Mia"}},
                             std::nullopt});
  REQUIRE(f.store->enqueue(notification("k1", "c-1")));
  f.store->record_not_made(NotMade{at("2026-11-20T11:00:00Z"), "order-cancelled", "c-1",
                                   EntityRef{EntityType::kOrder, "A"}, "cooldown", "a message 2 hours ago"});
  REQUIRE(f.store->enqueue(notification("k2", "c-1")));  // dead
  f.store->record_failure(2, at("2026-11-20T11:31:00Z"), "550 unknown number", std::nullopt);
  REQUIRE(f.store->enqueue(notification("k3", "c-1")));  // overtaken
  REQUIRE(f.store->mark_overtaken(3, at("2026-11-20T11:32:00Z"), "the order was delivered"));
  const std::string cookie = f.log_in();
  auto get = [&](const char* target) {
    HttpRequest r = request("GET", target);
    r.headers["cookie"] = cookie;
    return f.console->handle(r);
  };
  const auto reloads = get("/console/reloads");
  CHECK_THAT(reloads.body, Catch::Contains("unknown key &apos;whn&apos;"));
  const auto rules = get("/console/rules");
  CHECK_THAT(rules.body, Catch::Contains("<svg id=\"chart\""));
  // Fired 4 (three messages made, one not), sent 0, held back 1 (cooldown), overtaken 1, dead 1.
  CHECK_THAT(rules.body, Catch::Contains("<th scope=\"row\">order-cancelled</th><td>apology</td><td "
                                         "class=\"num\">4</td><td class=\"num\">0</td><td class=\"num\">1<ul "
                                         "class=\"reasons\"><li>cooldown: 1</li></ul></td><td class=\"num\">1</td><td "
                                         "class=\"num\">1</td></tr>"));
  const auto customer = get("/console/customer?q=mia%40example.com");
  CHECK(customer.status == 200);
  CHECK_THAT(customer.body, Catch::Contains("c-1 (Mia)"));
  CHECK_THAT(customer.body, Catch::Contains("Sorry &lt;b&gt;&amp; more&lt;/b&gt;"));
  CHECK(get("/console/customer?q=nobody").status == 404);
  const auto templates = get("/console/templates");
  CHECK(templates.status == 200);
  CHECK_THAT(templates.body, Catch::Contains("<h3>order-cancelled: nl, sms</h3>"));
}

}  // namespace tactd
