#include "channels/operator_digest.h"

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "signing/signing.h"

using namespace tactd;
using namespace std::chrono_literals;
using Catch::Contains;

namespace {

Timestamp at(const char* text) { return *parse_rfc3339(text); }

Finding finding(const char* kind, const std::string& entity) {
  return Finding{kind, "price-change", entity + ": rule 'price-change': " + entity + " has no price_reason", {}};
}

OperatorsConfig webhook(std::string secret = "", OperatorsConfig::Auth auth = OperatorsConfig::Auth::kHmac) {
  OperatorsConfig config;
  config.webhook = "https://chat.example/hooks/T0/B0/XYZ";
  config.secret = std::move(secret);
  config.auth = auth;
  return config;
}

}  // namespace

TEST_CASE("many findings within one interval make one digest, when the interval after the first has passed") {
  VirtualClock clock(at("2026-11-20T16:00:00Z"));
  OperatorDigest digest(clock, 15min);
  for (int i = 0; i < 50; ++i) {
    clock.advance_to(at("2026-11-20T16:00:00Z") + i * 10s);
    digest.add(finding("missing_field", "subscription/SUB-" + std::to_string(i)));
  }
  REQUIRE(digest.due());
  CHECK(*digest.due() == at("2026-11-20T16:15:00Z"));
  clock.advance_to(at("2026-11-20T16:14:59Z"));
  CHECK_FALSE(digest.take());
  clock.advance_to(at("2026-11-20T16:15:00Z"));
  auto sent = digest.take();
  REQUIRE(sent);
  CHECK(sent->findings.size() == 50);
  CHECK(sent->dropped == 0);
  CHECK(sent->findings.front().at == at("2026-11-20T16:00:00Z"));
  CHECK(sent->findings.back().at == at("2026-11-20T16:08:10Z"));
  CHECK_FALSE(digest.take());
  CHECK_FALSE(digest.due());

  // The next finding opens the next window; digests stay an interval apart.
  clock.advance_to(at("2026-11-20T16:20:00Z"));
  digest.add(finding("no_channel", "order/B-1"));
  CHECK(*digest.due() == at("2026-11-20T16:35:00Z"));
  clock.advance_to(at("2026-11-20T16:35:00Z"));
  auto next = digest.take();
  REQUIRE(next);
  CHECK(next->findings.size() == 1);
}

TEST_CASE("when nothing is found there is no digest, not even at a stop") {
  VirtualClock clock(at("2026-11-20T16:00:00Z"));
  OperatorDigest digest(clock, 15min);
  CHECK_FALSE(digest.due());
  clock.advance_to(at("2026-11-21T16:00:00Z"));
  CHECK_FALSE(digest.take());
  CHECK_FALSE(digest.take(true));
}

TEST_CASE("a stop takes what waits at once") {
  VirtualClock clock(at("2026-11-20T16:00:00Z"));
  OperatorDigest digest(clock, 15min);
  digest.add(finding("short_notice", "subscription/SUB-1"));
  CHECK_FALSE(digest.take());
  auto last = digest.take(true);
  REQUIRE(last);
  CHECK(last->findings.size() == 1);
}

TEST_CASE("the queue keeps at most kMaxFindings and counts the rest as dropped") {
  VirtualClock clock(at("2026-11-20T16:00:00Z"));
  OperatorDigest digest(clock, 1min);
  for (std::size_t i = 0; i < OperatorDigest::kMaxFindings + 25; ++i)
    digest.add(finding("missing_field", "subscription/SUB-" + std::to_string(i)));
  CHECK(digest.waiting() == OperatorDigest::kMaxFindings);
  clock.advance_to(at("2026-11-20T16:01:00Z"));
  auto sent = digest.take();
  REQUIRE(sent);
  CHECK(sent->findings.size() == OperatorDigest::kMaxFindings);
  CHECK(sent->dropped == 25);
  CHECK(sent->subject() == "tactd: 225 findings need a person (200 missing_field, 25 not kept)");
  const std::string text = sent->text();
  CHECK(text.size() <= Digest::kMaxText);
  CHECK_THAT(text, Contains("25 more findings were not kept: at most 200 wait for a digest at once."));
  CHECK_THAT(text, Contains(" more findings not shown here (the digest is cut at 8000 bytes)."));
  CHECK_THAT(text, Contains("The journal has every one"));
  // The next digest starts counting afresh.
  digest.add(finding("no_channel", "order/B-1"));
  clock.advance_to(at("2026-11-20T16:02:00Z"));
  CHECK(digest.take()->dropped == 0);
}

TEST_CASE("a digest that did not get through goes in front of the next one, an interval later") {
  VirtualClock clock(at("2026-11-20T16:00:00Z"));
  OperatorDigest digest(clock, 15min);
  digest.add(finding("missing_field", "subscription/SUB-1"));
  clock.advance_to(at("2026-11-20T16:15:00Z"));
  auto failed = digest.take();
  REQUIRE(failed);
  clock.advance_to(at("2026-11-20T16:15:02Z"));
  digest.add(finding("dead_letter", "order/B-2"));
  digest.put_back(std::move(*failed));
  CHECK(*digest.due() == at("2026-11-20T16:30:00Z"));  // not at once: no storm against a broken webhook
  clock.advance_to(at("2026-11-20T16:30:00Z"));
  auto again = digest.take();
  REQUIRE(again);
  REQUIRE(again->findings.size() == 2);
  CHECK(again->findings[0].kind == "missing_field");
  CHECK(again->findings[1].kind == "dead_letter");
}

TEST_CASE("a digest lists findings grouped by kind in a fixed order, each on one line, cut at its length") {
  Digest digest;
  digest.findings = {
      Finding{"dead_letter", "order-cancelled", "order/B-2: rule 'order-cancelled': outbox entry 2 is dead: HTTP 400",
              at("2026-11-20T16:05:00Z")},
      Finding{"missing_field", "price-change", "subscription/SUB-1: rule 'price-change': has no price_reason",
              at("2026-11-20T16:01:00Z")},
      Finding{"no_channel", "order-cancelled",
              "order/B-3: no channel can reach customer 'c-3'\nfor rule 'order-cancelled'", at("2026-11-20T16:02:00Z")},
      Finding{"missing_field", "price-change", "subscription/SUB-4: rule 'price-change': has no price_reason",
              at("2026-11-20T16:03:00Z")},
      Finding{"something_new", "x", "order/B-5: new", at("2026-11-20T16:04:00Z")},
      Finding{"short_notice", "price-change", "rule 'price-change'" + std::string(2000, 'x'),
              at("2026-11-20T16:04:30Z")},
  };
  CHECK(digest.subject() ==
        "tactd: 6 findings need a person (1 short_notice, 2 missing_field, 1 no_channel, 1 dead_letter, 1 "
        "something_new)");
  const std::string text = digest.text();
  INFO(text);
  CHECK(text.rfind("tactd: 6 findings need a person, found between 2026-11-20T16:05:00Z and ", 0) == 0);
  const auto short_notice = text.find("\nshort_notice (1): a change takes effect sooner than the rule's minimum");
  const auto missing = text.find(
      "\nmissing_field (2): the message lacks a field it cannot go without; not sent\n"
      "- subscription/SUB-1: rule 'price-change': has no price_reason\n"
      "- subscription/SUB-4: rule 'price-change': has no price_reason\n");
  const auto no_channel = text.find(
      "\nno_channel (1): no contact detail reaches the customer; not sent\n"
      "- order/B-3: no channel can reach customer 'c-3' for rule 'order-cancelled'\n");
  const auto dead = text.find("\ndead_letter (1): the provider refused the message, or its retries ran out");
  const auto other = text.find("\nsomething_new (1)\n- order/B-5: new (rule 'x')\n");
  CHECK(short_notice < missing);
  CHECK(missing < no_channel);
  CHECK(no_channel < dead);
  CHECK(dead < other);
  CHECK(other != std::string::npos);
  CHECK_THAT(text, Contains("- rule 'price-change'" + std::string(Digest::kMaxLine - 3 - 19, 'x') + "...\n"));
  CHECK_THAT(text, !Contains("not kept") && !Contains("not shown"));
}

TEST_CASE("a webhook digest is the JSON text chats take, escaped, and signed or with a bearer token") {
  Digest digest;
  digest.findings = {Finding{"missing_field", "r", "order/<!channel>: rule 'r': A & B", at("2026-11-20T16:01:00Z")}};
  const Timestamp now = at("2026-11-20T16:31:07Z");

  const ProviderRequest plain = operator_webhook_request(webhook(), digest, now);
  CHECK(plain.http.method == "POST");
  CHECK(plain.http.url == "https://chat.example/hooks/T0/B0/XYZ");
  const auto body = nlohmann::json::parse(plain.http.body);
  REQUIRE(body.size() == 1);
  CHECK_THAT(body["text"].get<std::string>(),
             Contains("- order/&lt;!channel&gt;: rule 'r': A &amp; B") && Contains("missing_field (1)"));
  CHECK(plain.http.headers == std::vector<std::pair<std::string, std::string>>{{"Content-Type", "application/json"}});
  CHECK(plain.secrets.empty());

  const ProviderRequest signed_ = operator_webhook_request(webhook("hook-key"), digest, now);
  CHECK(signed_.secrets == std::vector<std::string>{"hook-key"});
  CHECK(signed_.http.headers ==
        std::vector<std::pair<std::string, std::string>>{
            {"Content-Type", "application/json"},
            {"X-Tactd-Timestamp", "1795192267"},
            {"X-Tactd-Signature", webhook_signature("hook-key", "1795192267", signed_.http.body)}});

  const ProviderRequest bearer = operator_webhook_request(webhook("tok", OperatorsConfig::Auth::kBearer), digest, now);
  CHECK(bearer.http.headers == std::vector<std::pair<std::string, std::string>>{{"Content-Type", "application/json"},
                                                                                {"Authorization", "Bearer tok"}});
}

TEST_CASE("an email digest goes to the operators' address with a subject that counts by kind") {
  OperatorsConfig config;
  config.email = "ops@shop.example";
  Digest digest;
  digest.findings = {Finding{"no_channel", "r", "order/B-1: no channel", at("2026-11-20T16:01:00Z")}};
  const Notification n = operator_email(config, digest, at("2026-11-20T16:16:00Z"));
  CHECK(n.channel == Channel::kEmail);
  CHECK(n.to == "ops@shop.example");
  CHECK(n.subject == "tactd: 1 finding needs a person (1 no_channel)");
  CHECK(n.body == digest.text());
  CHECK(n.idempotency_key == "operators-digest@2026-11-20T16:16:00Z");
  CHECK(n.rule == "operators");
}
