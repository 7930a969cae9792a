#include "inbound/reply_desk.h"

#include "rules/policy.h"

namespace tactd {
namespace {

constexpr int kMaxPauseDepth = 3;  // shipment -> order, with room to spare

}  // namespace

std::string ReplyDesk::confirmation(Channel channel, const std::string& locale, const std::string& merchant) {
  const bool sms = channel == Channel::kSms;
  if (locale == "nl")
    return std::string("U bent afgemeld: u krijgt van ons geen berichten meer per ") + (sms ? "sms" : "e-mail") +
           ". Dank dat u het liet weten. - " + merchant;
  return std::string("You are unsubscribed: we will send you no more messages by ") + (sms ? "SMS" : "email") +
         ". Thank you for letting us know. - " + merchant;
}

ReplyOutcome ReplyDesk::receive(const InboundMessage& message, const Config& config) {
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
  reply.stop = is_stop(written_part(message.text, message.channel));

  // The notification it answers.
  std::optional<Notification> answered;
  for (const std::string& id : message.references) {
    if (answered) break;
    if ((answered = store_.notification_by_message_ref(id.substr(0, id.find('@'))))) reply.matched_by = "message-id";
  }
  const std::string address = address_key(message.channel, message.from);
  if (!answered && !address.empty())
    if ((answered = store_.latest_notification_to(message.channel, address))) reply.matched_by = "sender";
  if (answered) {
    reply.customer = answered->customer;
    reply.notification = answered->idempotency_key;
    reply.entity = answered->entity;
  }
  // A STOP is acted on here and needs no person.
  if (reply.stop) reply.forwarded_at = now;
  reply.id = store_.add_reply(reply);
  if (reply.id == 0) return out;  // sent again by the provider: done the first time

  const std::optional<InboundConfig>& inbound = config.inbound;
  if (reply.stop) {
    out.opted_out = store_.add_opt_out(OptOut{reply.customer, message.channel, address, now, reply.id});
    if (out.opted_out) {
      std::string locale = config.default_locale;
      std::string zone = config.default_time_zone;
      if (!reply.customer.empty())
        if (auto customer = store_.entity(EntityRef{EntityType::kCustomer, reply.customer})) {
          if (std::string l = text_field(customer->fields, "locale"); !l.empty()) locale = l.substr(0, 2);
          zone = customer_time_zone(customer->fields, config);
        }
      Notification n;
      n.idempotency_key = std::string(kOptOutRule) + ":" + std::string(to_string(message.channel)) + ":" +
                          (reply.customer.empty() ? address : "customer/" + reply.customer);
      n.at = now;
      n.rule = std::string(kOptOutRule);
      n.kind = Kind::kExplanation;
      n.customer = reply.customer;
      n.entity = EntityRef{EntityType::kCustomer, reply.customer.empty() ? address : reply.customer};
      n.channel = message.channel;
      n.to = message.from;
      if (message.channel == Channel::kEmail) n.subject = locale == "nl" ? "U bent afgemeld" : "You are unsubscribed";
      n.body = confirmation(message.channel, locale, config.merchant);
      n.locale = locale;
      n.time_zone = zone;
      out.confirmation_queued = store_.enqueue(n, "confirms the opt-out of reply " + std::to_string(reply.id));
    }
    return out;
  }
  if (reply.entity && inbound && inbound->pause > Duration::zero()) {
    const Pause pause{now + inbound->pause, "the customer replied at " + format_rfc3339(now) + " (reply " +
                                                std::to_string(reply.id) + "): a person is talking with them now"};
    // The entity and what it belongs to (the order of a shipment), not the
    // customer: other matters go on.
    std::optional<EntityRef> ref = reply.entity;
    for (int depth = 0; ref && ref->type != EntityType::kCustomer && depth < kMaxPauseDepth; ++depth) {
      store_.pause(*ref, pause.until, pause.reason);
      const auto entity = store_.entity(*ref);
      ref = entity ? entity->parent() : std::nullopt;
    }
    out.pause = pause;
  }
  return out;
}

}  // namespace tactd
