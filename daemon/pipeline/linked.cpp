#include "pipeline/linked.h"

namespace tactd {
namespace {

constexpr int kMaxLinkDepth = 4;  // shipment -> order -> customer, with room to spare

// An entity's fields as rules and templates see them: with its `id`,
// `sent`, the kinds of message already sent about it, and `received` and
// `replied_at`, what the customer sent back about it.
nlohmann::json scope_fields(const Entity& entity, const StoreRoles& store) {
  nlohmann::json fields = entity.fields;
  if (!fields.contains("id")) fields["id"] = entity.ref.id;
  nlohmann::json sent = nlohmann::json::array();
  for (Kind kind : store.kinds_about(entity.ref)) sent.push_back(std::string(to_string(kind)));
  fields["sent"] = std::move(sent);
  // What came back: "replied" for any reply about it (for a customer, any
  // of theirs), "stop" for a STOP; and when the last one came.
  nlohmann::json received = nlohmann::json::array();
  fields["replied_at"] = nullptr;
  if (const RepliesAbout replies = store.replies_about(entity.ref); replies.count > 0) {
    received.push_back("replied");
    if (replies.stop) received.push_back("stop");
    if (replies.last) fields["replied_at"] = format_rfc3339(*replies.last);
  }
  fields["received"] = std::move(received);
  return fields;
}

// The last contact with a customer: the later of the source's
// `last_contact_at` and the newest notification tactd made for them that
// reached them or is on its way. A customer nobody has contacted is silent
// since they became a customer (the source's `customer_since`) or, when the
// source does not say, since tactd first saw them.
std::optional<Timestamp> last_contact(const Entity& customer, const StoreRoles& store) {
  const auto reported = [&](const char* field) -> std::optional<Timestamp> {
    const auto value = customer.fields.find(field);
    if (value == customer.fields.end() || !value->is_string()) return std::nullopt;
    return parse_rfc3339(value->get<std::string>());
  };
  std::optional<Timestamp> last = reported("last_contact_at");
  const auto sent = store.latest_notification_at(customer.ref.id);
  if (sent && (!last || *sent > *last)) last = sent;
  if (!last) last = reported("customer_since");
  if (!last) last = customer.first_seen;
  return last;
}

}  // namespace

Fields timed_fields(const Entity& entity, const StoreRoles& store) {
  Fields fields = entity.fields;
  if (entity.ref.type == EntityType::kCustomer)
    if (auto last = last_contact(entity, store)) fields["last_contact_at"] = format_rfc3339(*last);
  return fields;
}

std::optional<EntityRef> missing_link(const Entity& entity, const StoreRoles& store) {
  auto parent = entity.parent();
  for (int depth = 0; parent && depth < kMaxLinkDepth; ++depth) {
    auto linked = store.entity(*parent);
    if (!linked) return parent;
    parent = linked->parent();
  }
  return std::nullopt;
}

Linked link(const Entity& entity, const StoreRoles& store) {
  Linked out;
  out.scope[std::string(to_string(entity.ref.type))] = scope_fields(entity, store);
  out.customer = entity.customer_id().value_or("");
  // The customer's snapshot, read once: it may be met on the way up.
  std::optional<Entity> customer;
  auto parent = entity.parent();
  for (int depth = 0; parent && depth < kMaxLinkDepth; ++depth) {
    const std::string type(to_string(parent->type));
    if (out.scope.contains(type)) break;
    if (parent->type == EntityType::kCustomer && out.customer.empty()) out.customer = parent->id;
    auto linked = store.entity(*parent);
    if (!linked) break;
    out.scope[type] = scope_fields(*linked, store);
    if (out.customer.empty()) out.customer = linked->customer_id().value_or("");
    parent = linked->parent();
    if (linked->ref.type == EntityType::kCustomer) customer = std::move(linked);
  }
  // An order sees its most recently observed shipment.
  if (entity.ref.type == EntityType::kOrder && !out.scope.contains("shipment"))
    if (const auto shipment = store.latest_child(entity.ref, EntityType::kShipment))
      out.scope["shipment"] = scope_fields(*shipment, store);
  if (out.customer.empty()) return out;
  const EntityRef customer_ref{EntityType::kCustomer, out.customer};
  if (entity.ref == customer_ref)
    customer = entity;
  else if (!customer || customer->ref != customer_ref)
    customer = store.entity(customer_ref);
  if (!customer) return out;
  nlohmann::json& fields = out.scope["customer"];
  if (fields.is_null()) fields = scope_fields(*customer, store);
  // Derived facts about the customer that rules and templates may use.
  fields["last_contact_at"] = nullptr;
  if (auto last = last_contact(*customer, store)) fields["last_contact_at"] = format_rfc3339(*last);
  fields["delivered_orders"] = store.count_children(customer_ref, EntityType::kOrder, "delivered");
  return out;
}

}  // namespace tactd
