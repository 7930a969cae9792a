#include "inbound/reply_desk.h"

#include "rules/policy.h"

namespace tactd {
namespace {

constexpr int kMaxPauseDepth = 3;  // shipment -> order, with room to spare

}  // namespace

std::string ReplyDesk::confirmation(Channel channel, const std::string& locale, const std::string& merchant,
                                    bool opted_in) {
  const bool sms = channel == Channel::kSms;
  if (opted_in && locale == "nl")
    return std::string("U bent weer aangemeld: u krijgt onze berichten weer per ") + (sms ? "sms" : "e-mail") +
           ". Antwoord STOP om af te melden. - " + merchant;
  if (opted_in)
    return std::string("You are subscribed again: we will send you our messages by ") + (sms ? "SMS" : "email") +
           " again. Reply STOP to unsubscribe. - " + merchant;
  if (locale == "nl")
    return std::string("U bent afgemeld: u krijgt van ons geen berichten meer per ") + (sms ? "sms" : "e-mail") +
           ". Dank dat u het liet weten. - " + merchant;
  return std::string("You are unsubscribed: we will send you no more messages by ") + (sms ? "SMS" : "email") +
         ". Thank you for letting us know. - " + merchant;
}

ReplyOutcome ReplyDesk::receive(Store::Transaction& transaction, const InboundMessage& message, const Config& config) {
  const Timestamp now = clock_.now();
  ReplyOutcome out;
  Reply& reply = out.reply;
  reply.at = now;
  reply.channel = message.channel;
  reply.provider = message.provider;
  reply.provider_id = message.provider_id;
  reply.from = message.from;
  reply.to = message.to;
  reply.subject = message.subject;
  reply.text = message.text;
  const std::string written = written_part(message.text, message.channel);
  reply.stop = is_stop(written);

  // The notification it answers.
  std::optional<Notification> answered;
  for (const std::string& id : message.references) {
    if (answered) break;
    if ((answered = transaction.notification_by_message_ref(id.substr(0, id.find('@')))))
      reply.matched_by = "message-id";
  }
  const std::string address = address_key(message.channel, message.from);
  if (!answered && !address.empty())
    if ((answered = transaction.latest_notification_to(message.channel, address))) reply.matched_by = "sender";
  if (answered) {
    reply.customer = answered->customer;
    reply.notification = answered->idempotency_key;
    reply.entity = answered->entity;
  }
  // A START from someone who opted out of the channel; from anyone else it
  // is a reply like any other.
  const bool start = !reply.stop && is_start(written) && transaction.opt_out(reply.customer, message.channel, address);
  // A STOP or START is acted on here and needs no person.
  if (reply.stop || start) reply.forwarded_at = now;
  reply.id = transaction.add_reply(reply);
  if (reply.id == 0) return out;  // sent again by the provider: done the first time

  const std::optional<InboundConfig>& inbound = config.inbound;
  if (reply.stop) {
    out.opted_out = transaction.add_opt_out(OptOut{reply.customer, message.channel, address, now, reply.id});
    if (out.opted_out) out.confirmation_queued = confirm(transaction, reply, address, false, config);
    return out;
  }
  if (start) {
    out.opted_in = transaction.end_opt_out(reply.customer, message.channel, address, now, reply.id);
    if (out.opted_in) out.confirmation_queued = confirm(transaction, reply, address, true, config);
    return out;
  }
  if (reply.entity && inbound && inbound->pause > Duration::zero()) {
    const Pause pause{now + inbound->pause, "the customer replied at " + format_rfc3339(now) + " (reply " +
                                                std::to_string(reply.id) + "): a person is talking with them now"};
    // The entity and what it belongs to (the order of a shipment), not the
    // customer: other matters go on.
    std::optional<EntityRef> ref = reply.entity;
    for (int depth = 0; ref && ref->type != EntityType::kCustomer && depth < kMaxPauseDepth; ++depth) {
      transaction.pause(*ref, pause.until, pause.reason);
      const auto entity = transaction.entity(*ref);
      ref = entity ? entity->parent() : std::nullopt;
    }
    out.pause = pause;
  }
  return out;
}

bool ReplyDesk::confirm(Store::Transaction& transaction, const Reply& reply, const std::string& address, bool opted_in,
                        const Config& config) {
  std::string locale = config.default_locale;
  std::string zone = config.default_time_zone;
  if (!reply.customer.empty())
    if (auto customer = transaction.entity(EntityRef{EntityType::kCustomer, reply.customer})) {
      if (std::string l = text_field(customer->fields, "locale"); !l.empty()) locale = l.substr(0, 2);
      zone = customer_time_zone(customer->fields, config);
    }
  const std::string_view rule = opted_in ? kOptInRule : kOptOutRule;
  Notification n;
  // One per STOP or START that changed something: a customer may stop,
  // start and stop again, and each is confirmed.
  n.idempotency_key = std::string(rule) + ":" + std::string(to_string(reply.channel)) + ":" +
                      (reply.customer.empty() ? address : "customer/" + reply.customer) + ":reply/" +
                      std::to_string(reply.id);
  n.at = clock_.now();
  n.rule = std::string(rule);
  n.kind = Kind::kExplanation;
  n.customer = reply.customer;
  n.entity = EntityRef{EntityType::kCustomer, reply.customer.empty() ? address : reply.customer};
  n.channel = reply.channel;
  n.to = reply.from;
  if (reply.channel == Channel::kEmail)
    n.subject = opted_in ? (locale == "nl" ? "U bent weer aangemeld" : "You are subscribed again")
                         : (locale == "nl" ? "U bent afgemeld" : "You are unsubscribed");
  n.body = confirmation(reply.channel, locale, config.merchant, opted_in);
  n.locale = locale;
  n.time_zone = zone;
  return transaction.enqueue(n, std::string("confirms the ") + (opted_in ? "end of the opt-out" : "opt-out") +
                                    " of reply " + std::to_string(reply.id));
}

}  // namespace tactd
