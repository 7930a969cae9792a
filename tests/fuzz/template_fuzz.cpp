// Templates: the input is written as one template file, an email template
// when it starts with "Subject:", else an SMS one, and loaded with
// TemplateSet::load; a template that loads is rendered with the data of a
// realistic message, as the pipeline renders it. unguarded_names (which
// derives a rule's requirements from its templates) reads the input too.
#include <cstddef>
#include <cstdint>

#include "fuzz_support.h"
#include "render/render.h"

namespace {

const nlohmann::json& data() {
  static const nlohmann::json value = [] {
    tactd::MessageContext context;
    context.rule = "order-cancelled";
    context.entity = tactd::EntityRef{tactd::EntityType::kOrder, "A-1001"};
    context.entities = {{"order",
                         {{"id", "A-1001"},
                          {"status", "cancelled"},
                          {"total", 49.95},
                          {"currency", "EUR"},
                          {"promised_by", "2026-11-20T18:00:00Z"},
                          {"items", {"lamp", "chair"}}}},
                        {"customer", {{"id", "C-1"}, {"name", "Ana de Vries"}, {"locale", "nl"}}}};
    context.event = {{"field", "status"}, {"old", "placed"}, {"new", "cancelled"}};
    context.locale = "nl";
    context.time_zone = "Europe/Amsterdam";
    context.merchant = "Fietsenwinkel";
    return tactd::template_data(context);
  }();
  return value;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data_in, size_t size) {
  using namespace tactd;
  const std::string_view text = fuzz::text_of(data_in, size);
  for (const std::string& name : unguarded_names(text)) (void)entity_field_of(name);

  const bool email = text.starts_with("Subject:");
  const auto dir = fuzz::scratch() / "templates";
  std::filesystem::remove_all(dir);
  fuzz::write_file(dir / "nl" / (email ? "t.email.mustache" : "t.sms.mustache"), text);
  Diagnostics errors;
  auto set = TemplateSet::load(dir, errors);
  if (!set) return 0;
  const Channel channel = email ? Channel::kEmail : Channel::kSms;
  if (!set->has("nl", "t", channel)) return 0;
  std::string error;
  (void)set->render("nl", "t", channel, data(), error);
  return 0;
}
