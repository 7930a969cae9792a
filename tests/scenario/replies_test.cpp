// Replies come back (issue 14): a customer's answer is matched to what
// tactd sent, STOP opts them out of that channel for good, and any other
// reply holds automated messages about the matter back while a person
// talks with them. The shipped configuration, a virtual clock.
#include <utility>  // before Boost.Asio

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <catch2/catch.hpp>

#include "channels/mime.h"
#include "inbound/reply_desk.h"
#include "inbound/reply_forwarder.h"
#include "model/clock.h"
#include "net/http_client.h"
#include "net/smtp_client.h"
#include "pipeline/linked.h"
#include "pipeline/pipeline.h"
#include "rules/expression.h"
#include "scenario/reply_story.h"
#include "scenario/scenario.h"
#include "signing/signing.h"
#include "support/temp_dir.h"

using namespace tactd;
using namespace tactd::test;
using Catch::Contains;

namespace {

Timestamp at(const char* text) { return *parse_rfc3339(text); }

InboundMessage sms(const std::string& from, const std::string& text, const std::string& id = {}) {
  return InboundMessage{Channel::kSms, "json", id, from, "+3197010203040", std::nullopt, text, {}};
}

class Desk : public ReplyStory {
 public:
  std::optional<Notification> release(const OutboxEntry& entry, Outcome& outcome) {
    auto transaction = store->begin();
    auto out = pipeline->release(*transaction, entry, outcome);
    transaction->commit();
    return out;
  }

  std::vector<OutboxEntry> outbox_of(std::string_view rule) const {
    std::vector<OutboxEntry> out;
    for (auto& e : store->outbox())
      if (e.notification.rule == rule) out.push_back(e);
    return out;
  }

  // Anna's order A-1 cancelled: the apology by SMS, delivered.
  void anna_apology(bool delivered = true) {
    observe(kAnna, "2026-11-20T09:00:00+01:00");
    observe(order("A-1", "c-42", "2026-11-20T17:00:00+01:00", "placed"), "2026-11-20T17:00:00+01:00");
    const Outcome cancelled = observe(
        order("A-1", "c-42", "2026-11-20T17:30:00+01:00", "cancelled", {{"cancel_reason", "kitchen overloaded"}}),
        "2026-11-20T17:30:00+01:00");
    REQUIRE(cancelled.notifications.size() == 1);
    REQUIRE(cancelled.notifications[0].channel == Channel::kSms);
    if (delivered) store->mark_delivered(store->outbox().front().id, clock.now());
  }
};

}  // namespace

TEST_CASE("STOP by SMS opts Anna out of SMS at once, is confirmed once, and later messages go by email") {
  Desk d;
  d.anna_apology();
  const ReplyOutcome stop = d.receive(sms("+31 6 1234 5678", "STOP"), "2026-11-20T17:40:00+01:00");
  CHECK(stop.reply.id != 0);
  CHECK(stop.reply.stop);
  CHECK(stop.reply.customer == "c-42");
  CHECK(stop.reply.matched_by == "sender");
  CHECK(stop.reply.entity == EntityRef{EntityType::kOrder, "A-1"});
  CHECK(stop.opted_out);
  CHECK(stop.confirmation_queued);
  CHECK_FALSE(stop.pause);  // a STOP is not a conversation
  auto confirmations = d.outbox_of(kOptOutRule);
  REQUIRE(confirmations.size() == 1);
  CHECK(confirmations[0].notification.channel == Channel::kSms);
  CHECK(confirmations[0].notification.to == "+31 6 1234 5678");
  CHECK_THAT(confirmations[0].notification.body, Contains("afgemeld") && Contains("sms"));  // Anna reads Dutch
  // Released as it is: no rule, opt-out or pause applies to it.
  Outcome outcome;
  CHECK(d.release(confirmations[0], outcome));

  // A second STOP changes nothing and is not confirmed again.
  const ReplyOutcome again = d.receive(sms("+31612345678", "stop"), "2026-11-20T17:41:00+01:00");
  CHECK(again.reply.id != 0);
  CHECK_FALSE(again.opted_out);
  CHECK_FALSE(again.confirmation_queued);
  CHECK(d.outbox_of(kOptOutRule).size() == 1);

  // Her next cancelled order is told by email, which she did not stop.
  d.observe(order("A-2", "c-42", "2026-11-21T12:00:00+01:00", "placed"), "2026-11-21T12:00:00+01:00");
  const Outcome next =
      d.observe(order("A-2", "c-42", "2026-11-21T12:30:00+01:00", "cancelled"), "2026-11-21T12:30:00+01:00");
  REQUIRE(next.notifications.size() == 1);
  CHECK(next.notifications[0].channel == Channel::kEmail);
  CHECK(next.notifications[0].to == "anna@example.nl");
}

TEST_CASE("START takes Anna's STOP back: confirmed, SMS used again, and a later STOP is confirmed again") {
  Desk d;
  d.anna_apology();
  REQUIRE(d.receive(sms("+31612345678", "STOP"), "2026-11-20T17:40:00+01:00").opted_out);
  const ReplyOutcome start = d.receive(sms("+31 6 1234 5678", "Aanmelden"), "2026-11-21T09:00:00+01:00");
  CHECK(start.reply.id != 0);
  CHECK_FALSE(start.reply.stop);
  CHECK(start.reply.forwarded_at);  // acted on here: support need not hear of it
  CHECK(start.opted_in);
  CHECK(start.confirmation_queued);
  CHECK_FALSE(start.pause);
  CHECK_FALSE(d.store->opt_out("c-42", Channel::kSms, "31612345678"));
  const auto confirmations = d.outbox_of(kOptInRule);
  REQUIRE(confirmations.size() == 1);
  CHECK(confirmations[0].notification.to == "+31 6 1234 5678");
  CHECK_THAT(confirmations[0].notification.body, Contains("weer aangemeld") && Contains("STOP"));
  Outcome outcome;
  CHECK(d.release(confirmations[0], outcome));
  // The history keeps the opt-out, ended by her START.
  const auto history = d.store->customer_opt_outs("c-42");
  REQUIRE(history.size() == 1);
  CHECK(history[0].ended_at == at("2026-11-21T09:00:00+01:00"));
  CHECK(history[0].ended_by_reply == start.reply.id);

  // Her next cancelled order goes by SMS again, as she prefers.
  d.observe(order("A-2", "c-42", "2026-11-21T12:00:00+01:00", "placed"), "2026-11-21T12:00:00+01:00");
  const Outcome next =
      d.observe(order("A-2", "c-42", "2026-11-21T12:30:00+01:00", "cancelled"), "2026-11-21T12:30:00+01:00");
  REQUIRE(next.notifications.size() == 1);
  CHECK(next.notifications[0].channel == Channel::kSms);

  // START again changes nothing: an ordinary reply now, about her latest message.
  const ReplyOutcome twice = d.receive(sms("+31612345678", "START"), "2026-11-21T12:40:00+01:00");
  CHECK_FALSE(twice.opted_in);
  CHECK_FALSE(twice.confirmation_queued);
  CHECK_FALSE(twice.reply.forwarded_at);
  CHECK(d.outbox_of(kOptInRule).size() == 1);

  // And a STOP after it opts out again, confirmed again.
  const ReplyOutcome stop = d.receive(sms("+31612345678", "STOP"), "2026-11-22T10:00:00+01:00");
  CHECK(stop.opted_out);
  CHECK(stop.confirmation_queued);
  CHECK(d.outbox_of(kOptOutRule).size() == 2);
  CHECK(d.store->opt_out("c-42", Channel::kSms, ""));
}

TEST_CASE("STOP in Dutch and English opts out") {
  for (const char* word : {"STOP", "Stopp", "stoppen", "AFMELDEN", "uitschrijven", "Unsubscribe", "CANCEL", "quit"}) {
    INFO(word);
    Desk d;
    d.anna_apology();
    const ReplyOutcome out = d.receive(sms("+31612345678", word), "2026-11-20T17:40:00+01:00");
    CHECK(out.reply.stop);
    CHECK(out.opted_out);
    CHECK(d.store->opt_out("c-42", Channel::kSms, ""));
    CHECK_FALSE(d.store->opt_out("c-42", Channel::kEmail, ""));
  }
}

TEST_CASE("an opt-out is kept when the source observes the customer again without the flag") {
  Desk d;
  d.anna_apology();
  d.receive(sms("+31612345678", "STOP"), "2026-11-20T17:40:00+01:00");
  // The shop's customer record, again, with opt_out false and SMS preferred.
  nlohmann::json anna = anna_at("2026-11-21T08:00:00+01:00");
  anna["fields"]["opt_out"] = false;
  anna["fields"]["email"] = nullptr;  // SMS is all that could reach her
  d.observe(anna.dump(), "2026-11-21T08:00:00+01:00");
  d.observe(order("A-2", "c-42", "2026-11-21T12:00:00+01:00", "placed"), "2026-11-21T12:00:00+01:00");
  const Outcome next =
      d.observe(order("A-2", "c-42", "2026-11-21T12:30:00+01:00", "cancelled"), "2026-11-21T12:30:00+01:00");
  CHECK(next.notifications.empty());
  REQUIRE(next.held_back.size() == 1);
  CHECK(next.held_back[0].code == "opt_out");
  CHECK_THAT(next.held_back[0].reason, Contains("opted out of sms") && Contains("replied STOP"));
}

TEST_CASE("an SMS queued before a STOP is held back when it is due, with the reason") {
  Desk d;
  d.anna_apology(false);  // still in the outbox
  const OutboxEntry queued = d.store->outbox().front();
  d.receive(sms("+31612345678", "Afmelden"), "2026-11-20T17:31:00+01:00");
  Outcome outcome;
  CHECK_FALSE(d.release(queued, outcome));
  const auto entry = d.store->outbox_entry(queued.id);
  CHECK(entry->status == OutboxStatus::kOvertaken);
  CHECK_THAT(entry->last_error, Contains("opted out of sms (replied STOP at 2026-11-20T17:31:00+01:00)"));
}

TEST_CASE("a reply pauses automated messages about the matter for 48 hours, then they go out") {
  Desk d;
  d.observe(kAnna, "2026-11-20T09:00:00+01:00");
  d.observe(
      order("A-1", "c-42", "2026-11-20T10:00:00+01:00", "shipped", {{"promised_by", "2026-11-20T18:00:00+01:00"}}),
      "2026-11-20T10:00:00+01:00");
  const Outcome late =
      d.observe(obs("shipment", "S-1", "2026-11-20T11:00:00+01:00",
                    {{"order", "A-1"}, {"status", "in_transit"}, {"eta", "2026-11-20T19:30:00+01:00"}}),
                "2026-11-20T11:00:00+01:00");
  REQUIRE(late.notifications.size() == 1);  // the heads-up
  d.store->mark_delivered(d.store->outbox().back().id, d.clock.now());

  const ReplyOutcome reply = d.receive(sms("+31612345678", "Kan het ook morgen?"), "2026-11-20T11:30:00+01:00");
  CHECK_FALSE(reply.reply.stop);
  CHECK(reply.reply.entity == EntityRef{EntityType::kShipment, "S-1"});
  REQUIRE(reply.pause);
  const Timestamp until = at("2026-11-22T11:30:00+01:00");
  CHECK(reply.pause->until == until);
  CHECK_FALSE(reply.reply.forwarded_at);  // support is still to hear of it
  CHECK(d.store->unforwarded_replies(10).size() == 1);

  // Rules and templates see that she wrote.
  const Linked linked = link(*d.store->entity(EntityRef{EntityType::kOrder, "A-1"}), *d.store);
  Diagnostics errors;
  auto replied = Expression::parse("'replied' in shipment.received && 'replied' in customer.received", {}, errors);
  REQUIRE(replied);
  CHECK(replied->test(linked.scope));
  CHECK(linked.scope["shipment"]["replied_at"] == "2026-11-20T10:30:00Z");

  // The order arrives while she talks with us: the follow-up waits.
  const Outcome delivered =
      d.observe(order("A-1", "c-42", "2026-11-20T20:00:00+01:00", "delivered"), "2026-11-20T20:00:00+01:00");
  REQUIRE(delivered.notifications.size() == 1);
  CHECK(delivered.notifications[0].rule == "delivery-follow-up");
  CHECK(delivered.notifications[0].at == until);
  REQUIRE(delivered.deferred.size() == 1);
  CHECK(delivered.deferred[0].code == "paused");
  CHECK_THAT(delivered.deferred[0].reason, Contains("the customer replied") && Contains("a person is talking"));
  const auto entries = d.outbox_of("delivery-follow-up");
  REQUIRE(entries.size() == 1);
  CHECK(d.store->due_notifications(until - std::chrono::minutes{1}).empty());
  d.clock.advance_to(until);
  REQUIRE(d.store->due_notifications(until).size() == 1);
  Outcome outcome;
  CHECK(d.release(entries[0], outcome));
}

TEST_CASE("a message already queued when the customer writes waits until the pause ends, visibly") {
  Desk d;
  d.anna_apology(false);
  const OutboxEntry queued = d.store->outbox().front();
  const ReplyOutcome reply = d.receive(sms("+31612345678", "Wat is er gebeurd?"), "2026-11-20T17:31:00+01:00");
  REQUIRE(reply.pause);
  Outcome outcome;
  CHECK_FALSE(d.release(queued, outcome));
  REQUIRE(outcome.deferred.size() == 1);
  CHECK(outcome.deferred[0].code == "paused");
  const auto entry = d.store->outbox_entry(queued.id);
  CHECK(entry->status == OutboxStatus::kPending);
  CHECK(entry->next_attempt == reply.pause->until);
  const auto decisions = d.store->decisions(queued.id);
  CHECK(decisions.back().decision == "held back");
  CHECK_THAT(decisions.back().reason, Contains("paused") && Contains("the customer replied"));
}

TEST_CASE("an email reply is matched by the Message-ID tactd sent, whatever address it comes from") {
  Desk d;
  d.observe(kBen, "2026-11-20T09:00:00+01:00");
  d.observe(order("B-1", "c-7", "2026-11-20T12:00:00+01:00", "placed"), "2026-11-20T12:00:00+01:00");
  const Outcome cancelled =
      d.observe(order("B-1", "c-7", "2026-11-20T12:30:00+01:00", "cancelled"), "2026-11-20T12:30:00+01:00");
  REQUIRE(cancelled.notifications.size() == 1);
  REQUIRE(cancelled.notifications[0].channel == Channel::kEmail);
  d.store->mark_delivered(d.store->outbox().front().id, d.clock.now());
  const std::string id = message_id(cancelled.notifications[0].idempotency_key, "shop.example");
  InboundMessage email{Channel::kEmail,
                       "json",
                       "",
                       "Ben at work <b.carter@work.example>",
                       "shop@shop.example",
                       "Re: your order",
                       "Could you call me?\n\n> Sorry",
                       {"unrelated@elsewhere", id}};
  const ReplyOutcome reply = d.receive(email, "2026-11-20T13:00:00+01:00");
  CHECK(reply.reply.matched_by == "message-id");
  CHECK(reply.reply.customer == "c-7");
  CHECK(reply.reply.notification == cancelled.notifications[0].idempotency_key);
  CHECK(reply.pause);
  // Without the Message-ID, the sender's address finds the latest email to it.
  email.references.clear();
  email.from = "BEN@example.com";
  CHECK(d.receive(email, "2026-11-20T13:05:00+01:00").reply.matched_by == "sender");

  // The conversation support gets: what tactd sent, then what Ben wrote.
  const auto replies = d.store->replies("c-7");
  REQUIRE(replies.size() == 2);
  const auto lines =
      conversation(replies[0], d.store->notifications_since("c-7", d.clock.now() - std::chrono::days{90}), replies);
  REQUIRE(lines.size() == 2);
  CHECK_FALSE(lines[0].from_customer);
  CHECK(lines[1].text == replies[0].text);
  const std::string text = forward_text(replies[0], lines, "UTC");
  CHECK_THAT(text, Contains("Customer c-7") && Contains("Could you call me?") && Contains("order-cancelled, apology"));
}

TEST_CASE(
    "a reply nobody can match is recorded and waits for support, not lost, and a provider's repeat is kept once") {
  Desk d;
  d.anna_apology();
  const ReplyOutcome stranger = d.receive(sms("+4915112345678", "Wer ist da?", "sm-1"), "2026-11-20T18:00:00+01:00");
  CHECK(stranger.reply.id != 0);
  CHECK(stranger.reply.customer.empty());
  CHECK(stranger.reply.matched_by.empty());
  CHECK_FALSE(stranger.pause);
  REQUIRE(d.store->unforwarded_replies(10).size() == 1);
  CHECK(d.store->unforwarded_replies(10)[0].text == "Wer ist da?");
  CHECK(d.receive(sms("+4915112345678", "Wer ist da?", "sm-1"), "2026-11-20T18:00:05+01:00").reply.id == 0);
  CHECK(d.store->unforwarded_replies(10).size() == 1);
  // A STOP from an unknown number still stops that number.
  const ReplyOutcome stop = d.receive(sms("+4915112345678", "STOP"), "2026-11-20T18:01:00+01:00");
  CHECK(stop.opted_out);
  CHECK(d.store->opt_out("", Channel::kSms, "4915112345678"));
}

TEST_CASE(
    "a rule can ask 'replied' in order.received, a template can say the customer wrote, and the pause is "
    "[inbound] pause") {
  // A configuration of our own: a heads-up when the order ships, then on
  // delivery one thank-you for customers who wrote about the order and
  // another for those who did not.
  TempDir dir;
  dir.write("rules/orders.toml", R"toml([[rule]]
id       = "shipped"
kind     = "heads_up"
on       = "order.status -> shipped"
template = "shipped"
channels = ["sms"]

[[rule]]
id       = "thanks-after-talking"
kind     = "thank_you"
on       = "order.status -> delivered"
when     = "'replied' in order.received"
template = "thanks"
channels = ["sms"]

[[rule]]
id       = "thanks"
kind     = "thank_you"
on       = "order.status -> delivered"
when     = "!('replied' in order.received)"
template = "thanks"
channels = ["sms"]
)toml");
  dir.write("templates/en/shipped.sms.mustache", "Your order {{order.id}} is on its way. Questions? Just reply.");
  dir.write("templates/en/thanks.sms.mustache",
            "Your order {{order.id}} arrived.{{#order.replied_at}} Thank you for your message; we read "
            "it.{{/order.replied_at}} - {{merchant}}");
  const auto config = dir.write("tactd.toml",
                                "[tactd]\nrules = \"rules\"\ntemplates = \"templates\"\nmerchant = \"Bakkerij Bol\"\n"
                                "[locale]\ndefault = \"en\"\nsupported = [\"en\"]\ntime_zone = \"Europe/Amsterdam\"\n");
  InboundConfig inbound;
  inbound.pause = std::chrono::hours{2};  // [inbound] pause = "2h"
  ReplyStory d(config, inbound);
  d.observe(kAnna, "2026-11-20T09:00:00+01:00");
  d.observe(obs("customer", "c-7", "2026-11-20T09:00:00+01:00", {{"name", "Ben"}, {"phone", "+447700900123"}}),
            "2026-11-20T09:00:00+01:00");
  for (const char* id : {"A-1", "B-1"}) {
    const char* customer = id[0] == 'A' ? "c-42" : "c-7";
    d.observe(order(id, customer, "2026-11-20T10:00:00+01:00", "placed"), "2026-11-20T10:00:00+01:00");
    const Outcome shipped =
        d.observe(order(id, customer, "2026-11-20T11:00:00+01:00", "shipped"), "2026-11-20T11:00:00+01:00");
    REQUIRE(shipped.notifications.size() == 1);
  }
  // Anna writes about her order; Ben does not.
  const ReplyOutcome reply =
      d.receive(sms("+31612345678", "Kunnen jullie bij de buren afgeven?"), "2026-11-20T12:00:00+01:00");
  REQUIRE(reply.reply.entity == EntityRef{EntityType::kOrder, "A-1"});
  REQUIRE(reply.pause);
  CHECK(reply.pause->until == at("2026-11-20T14:00:00+01:00"));  // two hours, as configured

  const Outcome anna =
      d.observe(order("A-1", "c-42", "2026-11-20T13:00:00+01:00", "delivered"), "2026-11-20T13:00:00+01:00");
  REQUIRE(anna.notifications.size() == 1);
  CHECK(anna.notifications[0].rule == "thanks-after-talking");
  CHECK(
      anna.notifications[0].body ==
      "Your order A-1 arrived. Thank you for your message; we read it. - Trattoria Da Marco");  // the order's merchant
  CHECK(anna.notifications[0].at == reply.pause->until);  // held back while a person talks with her
  REQUIRE(anna.deferred.size() == 1);
  CHECK(anna.deferred[0].code == "paused");

  const Outcome ben =
      d.observe(order("B-1", "c-7", "2026-11-20T13:00:00+01:00", "delivered"), "2026-11-20T13:00:00+01:00");
  REQUIRE(ben.notifications.size() == 1);
  CHECK(ben.notifications[0].rule == "thanks");
  CHECK(ben.notifications[0].body == "Your order B-1 arrived. - Trattoria Da Marco");
  CHECK(ben.notifications[0].at == at("2026-11-20T13:00:00+01:00"));  // no pause: he did not write
}

TEST_CASE("a reply goes to support by email or by a signed webhook, with the conversation so far") {
  Desk d;
  d.anna_apology();
  const ReplyOutcome out = d.receive(sms("+31612345678", "Waar blijft mijn geld?"), "2026-11-20T17:40:00+01:00");
  REQUIRE(out.reply.id != 0);
  const auto replies = d.store->replies("c-42");
  REQUIRE(replies.size() == 1);
  const auto lines =
      conversation(replies[0], d.store->notifications_since("c-42", d.clock.now() - std::chrono::days{90}), replies);
  REQUIRE(lines.size() == 2);

  InboundConfig config;
  config.forward_email = "support@shop.example";
  const Notification email = forward_email(config, replies[0], lines);
  CHECK(email.channel == Channel::kEmail);
  CHECK(email.to == "support@shop.example");
  CHECK(email.subject == "Reply from customer c-42 about order/A-1");
  CHECK(email.idempotency_key == "tactd:reply-forward:" + std::to_string(out.reply.id));
  const std::string apology = d.store->outbox().front().notification.body;
  CHECK_THAT(email.body, Contains("Customer c-42 (+31612345678) replied by sms") &&
                             Contains("Waar blijft mijn geld?") && Contains("The conversation so far") &&
                             Contains(apology));
  CHECK(email.body.find(apology) < email.body.rfind("Waar blijft mijn geld?"));  // oldest first

  config.forward_email.clear();
  config.forward_webhook = "https://desk.example/hooks/tactd";
  const Timestamp now = d.clock.now();
  const ProviderRequest unsigned_post = forward_webhook_request(config, replies[0], lines, now);
  const auto header = [](const ProviderRequest& r, std::string_view name) -> std::optional<std::string> {
    for (const auto& [key, value] : r.http.headers)
      if (key == name) return value;
    return std::nullopt;
  };
  CHECK(unsigned_post.http.url == "https://desk.example/hooks/tactd");
  CHECK(header(unsigned_post, "Idempotency-Key") == "tactd-reply-" + std::to_string(out.reply.id));
  CHECK_FALSE(header(unsigned_post, "X-Tactd-Signature"));
  const auto body = nlohmann::json::parse(unsigned_post.http.body);
  CHECK(body["reply"]["text"] == "Waar blijft mijn geld?");
  REQUIRE(body["conversation"].size() == 2);
  CHECK(body["conversation"][0]["from"] == "tactd");
  CHECK(body["conversation"][0]["text"] == apology);
  CHECK(body["conversation"][1]["from"] == "customer");

  config.forward_secret = "desk-secret";
  const ProviderRequest signed_post = forward_webhook_request(config, replies[0], lines, now);
  const auto timestamp = header(signed_post, "X-Tactd-Timestamp");
  REQUIRE(timestamp);
  CHECK(*timestamp == std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count()));
  CHECK(header(signed_post, "X-Tactd-Signature") ==
        webhook_signature("desk-secret", *timestamp, signed_post.http.body));
  CHECK(signed_post.secrets == std::vector<std::string>{"desk-secret"});  // kept out of logs like the others
}

namespace {

// Support's mail server and desk as a test scripts them: each send takes the
// next answer (the last one stays), and its verdict comes back on the loop
// as a real client's does.
class ScriptedSmtp final : public SmtpClient {
 public:
  explicit ScriptedSmtp(boost::asio::io_context& io) : io_(io) {}
  void send(SmtpRequest request, std::function<void(SmtpResponse)> done) override {
    sent.push_back(std::move(request));
    const SmtpResponse answer = answers.size() > 1 ? take() : answers.front();
    boost::asio::post(io_, [done = std::move(done), answer] { done(answer); });
  }
  std::vector<SmtpResponse> answers{{250, ""}};
  std::vector<SmtpRequest> sent;

 private:
  SmtpResponse take() {
    SmtpResponse first = answers.front();
    answers.erase(answers.begin());
    return first;
  }
  boost::asio::io_context& io_;
};

class ScriptedHttp final : public HttpClient {
 public:
  explicit ScriptedHttp(boost::asio::io_context& io) : io_(io) {}
  void fetch(HttpClientRequest request, std::function<void(HttpClientResponse)> done) override {
    sent.push_back(std::move(request));
    boost::asio::post(io_, [done = std::move(done), answer = answer] { done(answer); });
  }
  HttpClientResponse answer{200, {}, "", ""};
  std::vector<HttpClientRequest> sent;

 private:
  boost::asio::io_context& io_;
};

// A forwarder of `d`'s replies with scripted clients; its refusals go to
// `told` and to an operators' digest of one minute.
struct Forwarding {
  explicit Forwarding(Desk& d)
      : smtp(io),
        http(io),
        digest(d.clock, std::chrono::minutes{1}),
        forwarder(io, *d.store, *d.store, *d.store, http, smtp, d.clock) {
    email.channel = Channel::kEmail;
    email.provider = "smtp";
    email.url = "smtp://127.0.0.1:2525";
    email.from = "Trattoria Da Marco <hallo@trattoria.example>";
    forwarder.on_refused([this](const ForwardRefusal& refusal) {
      told.push_back(refusal);
      digest.add(forward_refused_finding(refusal));
    });
  }
  // What a wake sets off, to its end (timers are not waited for).
  void wake() {
    forwarder.wake();
    io.restart();
    io.poll();
  }

  boost::asio::io_context io;
  ScriptedSmtp smtp;
  ScriptedHttp http;
  OperatorDigest digest;
  ChannelConfig email;
  std::vector<ForwardRefusal> told;
  ReplyForwarder forwarder;
};

}  // namespace

TEST_CASE(
    "a forward support's mail server refuses for good is told once, held at the longest wait, and goes at once after "
    "a reload that fixed the address") {
  Desk d;
  d.anna_apology();
  const ReplyOutcome out = d.receive(sms("+31612345678", "Waar blijft mijn geld?"), "2026-11-20T17:40:00+01:00");
  REQUIRE(out.reply.id != 0);
  Forwarding f(d);
  f.smtp.answers = {{550, "RCPT failed: 550 5.1.1 <suport@trattoria.example>: no such user"}};
  InboundConfig inbound;
  inbound.forward_email = "suport@trattoria.example";  // a typo
  f.forwarder.configure(inbound, &f.email);
  f.wake();
  REQUIRE(f.smtp.sent.size() == 1);
  REQUIRE(f.told.size() == 1);
  CHECK(f.told[0].reply_id == out.reply.id);
  CHECK(f.told[0].customer == "c-42");
  CHECK(f.told[0].target == "suport@trattoria.example");
  CHECK_THAT(f.told[0].reason, Contains("SMTP 550") && Contains("no such user"));
  CHECK(f.told[0].retry_at == d.clock.now() + ReplyForwarder::kRetryRefused);
  CHECK(d.store->unforwarded_replies(10).size() == 1);  // nothing lost
  REQUIRE(f.forwarder.refusals().size() == 1);

  // Another reply wakes the forwarder: the refused one waits its time, not the backoff's.
  d.clock.advance_to(d.clock.now() + std::chrono::minutes{1});
  f.wake();
  CHECK(f.smtp.sent.size() == 1);
  // An unrelated reload leaves it waiting.
  f.forwarder.configure(inbound, &f.email);
  f.wake();
  CHECK(f.smtp.sent.size() == 1);
  // After the longest wait it goes again, and is refused again: not told again.
  d.clock.advance_to(d.clock.now() + ReplyForwarder::kRetryRefused);
  f.wake();
  CHECK(f.smtp.sent.size() == 2);
  CHECK(f.told.size() == 1);
  // The operators' digest has it once.
  d.clock.advance_to(d.clock.now() + std::chrono::minutes{1});
  const auto digest = f.digest.take();
  REQUIRE(digest);
  REQUIRE(digest->findings.size() == 1);
  CHECK(digest->findings[0].kind == "forward_refused");
  CHECK_THAT(digest->text(), Contains("reply " + std::to_string(out.reply.id) +
                                      " from customer c-42 was refused by suport@trattoria.example: SMTP 550") &&
                                 Contains("refused a customer's reply for good"));

  // The operator fixes the address: it goes at once, without waiting.
  inbound.forward_email = "support@trattoria.example";
  f.smtp.answers = {{250, ""}};
  f.forwarder.configure(inbound, &f.email);
  f.wake();
  REQUIRE(f.smtp.sent.size() == 3);
  CHECK(f.smtp.sent[2].recipients == std::vector<std::string>{"support@trattoria.example"});
  CHECK(d.store->unforwarded_replies(10).empty());
  CHECK(f.forwarder.refusals().empty());
  // Anna wrote by SMS; her snapshot's email is where support's answer goes.
  CHECK_THAT(f.smtp.sent[2].message, Contains("\r\nReply-To: anna@example.nl\r\n"));
  CHECK(f.told.size() == 1);
}

TEST_CASE("only a refusal for good is told: timeouts, SMTP 4xx and HTTP 408, 429 and 5xx are retried as before") {
  struct Case {
    long smtp_code;  // the mail server's answer; 0 with the webhook's
    HttpClientResponse http;
    bool refused;
  };
  const std::vector<Case> cases{
      {550, {}, true},
      {554, {}, true},
      {451, {}, false},
      {421, {}, false},
      {-1, {}, false},  // no answer at all
      {0, {400, {}, "bad request", ""}, true},
      {0, {404, {}, "", ""}, true},
      {0, {408, {}, "", ""}, false},
      {0, {429, {}, "", ""}, false},
      {0, {503, {}, "", ""}, false},
      {0, {0, {}, "", "Timeout was reached"}, false},
  };
  for (const Case& c : cases) {
    Desk d;
    d.anna_apology();
    REQUIRE(d.receive(sms("+31612345678", "Hallo?"), "2026-11-20T17:40:00+01:00").reply.id != 0);
    Forwarding f(d);
    InboundConfig inbound;
    if (c.smtp_code != 0) {
      inbound.forward_email = "support@trattoria.example";
      f.smtp.answers = {{std::max(c.smtp_code, 0L), c.smtp_code < 0 ? "Timeout was reached" : "refused"}};
    } else {
      inbound.forward_webhook = "https://desk.example/hooks/tactd?token=secret-token";
      f.http.answer = c.http;
    }
    f.forwarder.configure(inbound, &f.email);
    f.wake();
    INFO("SMTP " << c.smtp_code << ", HTTP " << c.http.status);
    CHECK(f.smtp.sent.size() + f.http.sent.size() == 1);
    CHECK(f.told.size() == (c.refused ? 1U : 0U));
    CHECK(f.forwarder.refusals().size() == (c.refused ? 1U : 0U));
    CHECK(d.store->unforwarded_replies(10).size() == 1);
    // The webhook's query (a token, perhaps) is not shown.
    if (c.refused && c.smtp_code == 0) CHECK(f.told[0].target == "https://desk.example/hooks/tactd");
  }
}

TEST_CASE("a forward by email replies to the customer: the address they wrote from, else their snapshot's") {
  Desk d;
  d.anna_apology();
  const ReplyOutcome out = d.receive(sms("+31612345678", "Waar blijft mijn geld?"), "2026-11-20T17:40:00+01:00");
  const auto replies = d.store->replies("c-42");
  REQUIRE(replies.size() == 1);
  InboundConfig config;
  config.forward_email = "support@shop.example";
  CHECK_FALSE(forward_email(config, replies[0], {}).reply_to);  // an SMS, and no email known
  CHECK(forward_email(config, replies[0], {}, "anna@example.nl").reply_to == "anna@example.nl");
  CHECK_FALSE(forward_email(config, replies[0], {}, "anna@example.nl\r\nBcc: eve@example.com").reply_to);
  Reply by_email = replies[0];
  by_email.channel = Channel::kEmail;
  by_email.from = "Anna <anna.privat@example.nl>";
  CHECK(forward_email(config, by_email, {}, "anna@example.nl").reply_to == "Anna <anna.privat@example.nl>");
  CHECK(out.reply.id != 0);
}
