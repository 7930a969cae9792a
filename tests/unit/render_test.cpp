#include "render/render.h"

#include <catch2/catch.hpp>

#include "render/locale.h"
#include "support/temp_dir.h"

using namespace tactd;
using tactd::test::TempDir;

namespace {

Timestamp at(const char* text) { return *parse_rfc3339(text); }

MessageContext context(const char* locale) {
  MessageContext c;
  c.rule = "order-cancelled";
  c.kind = Kind::kApology;
  c.entity = EntityRef{EntityType::kOrder, "A-1"};
  c.entities = {{"customer", {{"name", "Anna de Vries"}, {"situations", {"payment_difficulty"}}, {"vip", true}}},
                {"order",
                 {{"id", "A-1"},
                  {"total", 1234.5},
                  {"currency", "EUR"},
                  {"items", 3},
                  {"promised_by", "2026-11-20T17:00:00Z"},
                  {"due_date", "2026-12-01"},
                  {"note", "Tom & Jerry's <café>"}}}};
  c.event = {{"field", "status"}, {"old", "placed"}, {"new", "cancelled"}};
  c.locale = locale;
  c.time_zone = "Europe/Amsterdam";
  c.merchant = "Trattoria";
  return c;
}

std::shared_ptr<const TemplateSet> load(const TempDir& dir, Diagnostics& errors) {
  return TemplateSet::load(dir.path(), errors);
}

}  // namespace

TEST_CASE("money is formatted in the customer's locale") {
  CHECK(format_money(31.4, "EUR", "nl") == "€ 31,40");
  CHECK(format_money(31.4, "EUR", "en") == "€31.40");
  CHECK(format_money(1234.5, "EUR", "nl") == "€ 1.234,50");
  CHECK(format_money(1234567.891, "EUR", "en") == "€1,234,567.89");
  CHECK(format_money(-5, "EUR", "en") == "-€5.00");
  CHECK(format_money(-5, "EUR", "nl") == "€ -5,00");
  CHECK(format_money(12, "USD", "en-US") == "$12.00");
  CHECK(format_money(12, "GBP", "en_GB") == "£12.00");
  CHECK(format_money(12, "CHF", "en") == "CHF 12.00");
  CHECK(format_money(12, "CHF", "nl-NL") == "CHF 12,00");
  CHECK(format_money(0.005, "EUR", "fr") == "€0.01");
  CHECK(format_money(-1234.5, "USD", "en") == "-$1,234.50");
  CHECK(format_money(-0.001, "EUR", "en") == "€0.00");  // no minus on a rounded zero
  CHECK(format_money(999999.999, "GBP", "nl") == "£ 1.000.000,00");
  CHECK(format_money(7.5, "sek", "en") == "SEK 7.50");
}

TEST_CASE("dates and times are formatted in the customer's zone and language") {
  const Timestamp t = at("2026-11-20T17:00:00Z");
  CHECK(format_date_time(t, "Europe/Amsterdam", "nl") == "vrijdag 20 november 2026, 18:00");
  CHECK(format_date_time(t, "Europe/Amsterdam", "en") == "Friday 20 November 2026, 18:00");
  CHECK(format_date_time(t, "America/New_York", "en") == "Friday 20 November 2026, 12:00");
  CHECK(format_date_time(at("2026-07-01T22:30:00Z"), "Europe/Amsterdam", "nl") == "donderdag 2 juli 2026, 00:30");
  CHECK(format_date(t, "", "nl") == "20 november 2026");
  CHECK(format_time(t, "Asia/Kolkata") == "22:30");
  CHECK(format_date_time(t, "Nowhere/Special", "en") == "Friday 20 November 2026, 17:00");  // unknown zone: UTC
}

TEST_CASE("a locale with a region formats as its language, and an unknown one as English") {
  const Timestamp t = at("2026-11-20T17:00:00Z");
  CHECK(format_date_time(t, "Europe/Amsterdam", "nl-NL") == "vrijdag 20 november 2026, 18:00");
  CHECK(format_date_time(t, "Europe/Amsterdam", "nl_BE") == "vrijdag 20 november 2026, 18:00");
  CHECK(format_date_time(t, "Europe/London", "en_GB") == "Friday 20 November 2026, 17:00");
  CHECK(format_date(t, "Europe/Amsterdam", "de") == "20 November 2026");
  CHECK(format_money(31.4, "EUR", "nld") == "€31.40");  // not Dutch: "nl" is the whole language part
}

TEST_CASE("daylight saving time moves the local hour in each zone") {
  // Europe switches on 29 March 2026 at 01:00 UTC, the US on 8 March at 07:00 UTC.
  CHECK(format_time(at("2026-03-29T00:30:00Z"), "Europe/Amsterdam") == "01:30");
  CHECK(format_time(at("2026-03-29T01:30:00Z"), "Europe/Amsterdam") == "03:30");
  CHECK(format_time(at("2026-03-08T06:30:00Z"), "America/New_York") == "01:30");
  CHECK(format_time(at("2026-03-08T07:30:00Z"), "America/New_York") == "03:30");
  CHECK(format_date_time(at("2026-07-03T16:00:00Z"), "America/New_York", "en") == "Friday 3 July 2026, 12:00");
  CHECK(format_date_time(at("2026-10-25T00:30:00Z"), "Europe/Amsterdam", "nl") == "zondag 25 oktober 2026, 02:30");
  CHECK(format_date_time(at("2026-10-25T01:30:00Z"), "Europe/Amsterdam", "nl") == "zondag 25 oktober 2026, 02:30");
}

TEST_CASE("template data shows fields ready for display and keeps the raw values") {
  const nlohmann::json data = template_data(context("nl"));
  CHECK(data["order"]["total"] == "€ 1.234,50");
  CHECK(data["order"]["raw"]["total"] == 1234.5);
  CHECK(data["order"]["items"] == "3");
  CHECK(data["order"]["promised_by"] == "vrijdag 20 november 2026, 18:00");
  CHECK(data["order"]["due_date"] == "1 december 2026");
  CHECK(data["customer"]["first_name"] == "Anna");
  CHECK(data["customer"]["situations"] == nlohmann::json{"payment_difficulty"});
  CHECK(data["customer"]["vip"] == true);
  CHECK(data["merchant"] == "Trattoria");
  CHECK(data["kind"] == "apology");
  CHECK(data["entity"]["id"] == "A-1");
  CHECK(data["entity"]["type"] == "order");
  CHECK(data["rule"] == "order-cancelled");
  CHECK(data["locale"] == "nl");
  CHECK(data["event"] == nlohmann::json{{"field", "status"}, {"old", "placed"}, {"new", "cancelled"}});
  CHECK(data["history"]["first"] == true);
  CHECK(data["history"]["any"] == false);
  CHECK(data["history"]["count"] == 0);
  CHECK(data["history"]["list"] == nlohmann::json::array());
  CHECK_FALSE(data["history"].contains("last"));
}

TEST_CASE("each entity is shown in its own currency, in the customer's zone, with its id") {
  MessageContext c = context("en");
  c.kind = Kind::kExplanation;
  c.entity = EntityRef{EntityType::kShipment, "S-7"};
  c.time_zone = "America/New_York";
  c.entities["order"]["currency"] = "USD";
  c.entities["order"]["refund_amount"] = "23.5";  // money given as text
  c.entities["order"]["weight"] = 2.25;
  c.entities["order"]["lines"] = {{{"sku", "x"}, {"price", 3}}};
  c.entities["shipment"] = {{"status", "exception"}, {"eta", "2026-07-03T16:00:00Z"}, {"carrier", "UPS"}};
  c.entities["subscription"] = {{"price", 20}, {"next_price", 35}, {"currency", "GBP"}};
  c.event = {{"field", "eta"}, {"old", nullptr}, {"new", "2026-07-03T16:00:00Z"}};
  const nlohmann::json data = template_data(c);
  CHECK(data["order"]["total"] == "$1,234.50");
  CHECK(data["order"]["refund_amount"] == "$23.50");
  CHECK(data["order"]["weight"] == "2.25");
  CHECK(data["order"]["lines"][0]["sku"] == "x");
  CHECK(data["order"]["promised_by"] == "Friday 20 November 2026, 12:00");
  CHECK(data["shipment"]["eta"] == "Friday 3 July 2026, 12:00");
  CHECK(data["shipment"]["id"] == "S-7");  // from the context when the fields carry none
  CHECK(data["shipment"]["raw"]["eta"] == "2026-07-03T16:00:00Z");
  CHECK(data["subscription"]["next_price"] == "£35.00");
  CHECK_FALSE(data["customer"].contains("id"));
  CHECK(data["event"]["field"] == "eta");
  CHECK(data["event"]["old"].is_null());
  CHECK(data["event"]["new"] == "Friday 3 July 2026, 12:00");
  CHECK(data["kind"] == "explanation");
}

TEST_CASE("a money event is shown in the entity's currency and locale") {
  MessageContext c = context("nl");
  c.event = {{"field", "total"}, {"old", 10}, {"new", 12.5}};
  const nlohmann::json data = template_data(c);
  CHECK(data["event"]["old"] == "€ 10,00");
  CHECK(data["event"]["new"] == "€ 12,50");
}

TEST_CASE("template data without a trigger event has no event") {
  MessageContext c = context("en");
  c.event = nullptr;
  CHECK_FALSE(template_data(c).contains("event"));
}

TEST_CASE("template data remembers earlier contact") {
  MessageContext c = context("en");
  c.history = {Contact{"c-1", at("2026-11-18T09:00:00Z"), Kind::kThankYou, "thanks", c.entity, Channel::kEmail, "k1"},
               Contact{"c-1", at("2026-11-19T09:00:00Z"), Kind::kExplanation, "late", c.entity, Channel::kSms, "k2"}};
  const nlohmann::json data = template_data(c);
  CHECK(data["history"]["count"] == 2);
  CHECK(data["history"]["any"] == true);
  CHECK(data["history"]["first"] == false);
  CHECK(data["history"]["last"]["kind"] == "explanation");
  CHECK(data["history"]["last"]["at"] == "Thursday 19 November 2026, 10:00");
  CHECK(data["history"]["last"]["rule"] == "late");
  CHECK(data["history"]["list"].size() == 2);
  CHECK(data["history"]["list"][0] == nlohmann::json{{"kind", "thank_you"},
                                                     {"at", "Wednesday 18 November 2026, 10:00"},
                                                     {"rule", "thanks"},
                                                     {"channel", "email"}});
}

TEST_CASE("an email template renders its subject and body, an SMS template its body") {
  TempDir dir;
  dir.write(
      "nl/order_cancelled.email.mustache",
      "Subject:  Sorry,   {{customer.first_name}}:\tbestelling {{order.id}}  \n\nBeste {{customer.first_name}},\n\n"
      "{{#order.missing}}nooit{{/order.missing}}\n\n\n\nTotaal {{order.total}}.   \n{{merchant}}\n\n");
  dir.write("nl/order_cancelled.sms.mustache",
            "{{order.note}} {{#customer.situations}}[{{.}}]{{/customer.situations}}");
  Diagnostics errors;
  auto set = load(dir, errors);
  REQUIRE(errors.empty());
  std::string error;
  auto email = set->render("nl", "order_cancelled", Channel::kEmail, template_data(context("nl")), error);
  INFO(error);
  REQUIRE(email);
  CHECK(email->subject == "Sorry, Anna: bestelling A-1");
  CHECK(email->body == "Beste Anna,\n\nTotaal € 1.234,50.\nTrattoria");
  auto sms = set->render("nl", "order_cancelled", Channel::kSms, template_data(context("nl")), error);
  REQUIRE(sms);
  CHECK_FALSE(sms->subject);
  CHECK(sms->body == "Tom & Jerry's <café> [payment_difficulty]");  // plain text: nothing HTML-escaped
}

TEST_CASE("a missing template names the file it would be") {
  TempDir dir;
  Diagnostics errors;
  auto set = load(dir, errors);
  std::string error;
  CHECK_FALSE(set->render("en", "nope", Channel::kSms, nlohmann::json::object(), error));
  CHECK(error == "no template " + (dir.path() / "en/nope.sms.mustache").string());
  CHECK_FALSE(set->has("en", "nope", Channel::kSms));
}

TEST_CASE("broken template files are reported with file, line and column and left out") {
  TempDir dir;
  const auto no_channel = dir.write("en/thanks.mustache", "x");
  const auto fax = dir.write("en/thanks.fax.mustache", "x");
  const auto no_subject = dir.write("en/thanks.email.mustache", "Dear you,\n\nthanks");
  const auto no_blank = dir.write("en/late.email.mustache", "Subject: Late\nDear you,");
  const auto unclosed = dir.write("en/sorry.sms.mustache", "Sorry\nabout {{#order}}this");
  const auto unopened = dir.write("en/gone.sms.mustache", "Café {{/order}}");
  const auto open_tag = dir.write("en/oops.email.mustache", "Subject: Hi\n\nDear\n  {{customer.name");
  const auto bad_subject = dir.write("nl/sorry.email.mustache", "Subject: {{#x}}\n\nbody");
  const auto loose = dir.write("stray.sms.mustache", "x");
  dir.write("nl/fine.sms.mustache", "fine");
  dir.write("nl/README.txt", "not a template");
  Diagnostics errors;
  auto set = load(dir, errors);
  std::string all;
  for (const auto& e : errors) all += e.str() + "\n";
  INFO(all);
  CHECK(errors.size() == 9);
  CHECK_THAT(all, Catch::Contains(no_channel.string() +
                                  ": a template file is named <name>.<channel>.mustache, like x.email.mustache"));
  CHECK_THAT(all, Catch::Contains(fax.string() + ": unknown channel 'fax' in the file name (email or sms)"));
  const std::string no_subject_message =
      ":1:1: an email template starts with 'Subject: ...' and a blank line before the body";
  CHECK_THAT(all, Catch::Contains(no_subject.string() + no_subject_message));
  CHECK_THAT(all, Catch::Contains(no_blank.string() + no_subject_message));
  CHECK_THAT(
      all, Catch::Contains(unclosed.string() + ":2:7: the section {{#order}} is never closed; end it with {{/order}}"));
  CHECK_THAT(all, Catch::Contains(unopened.string() +
                                  ":1:6: {{/order}} closes a section that was never opened with {{#order}}"));
  CHECK_THAT(all, Catch::Contains(open_tag.string() + ":4:3: a tag opened with {{ is never closed with }}"));
  CHECK_THAT(all, Catch::Contains(bad_subject.string() + ":1:10: the section {{#x}} is never closed"));
  CHECK_THAT(all, Catch::Contains(loose.string() + ": a template belongs in a locale folder"));
  CHECK(set->has("nl", "fine", Channel::kSms));
  CHECK_FALSE(set->has("en", "sorry", Channel::kSms));
  CHECK_FALSE(set->has("en", "thanks", Channel::kEmail));
}

TEST_CASE("a folder without templates is reported") {
  TempDir dir;
  Diagnostics errors;
  auto set = TemplateSet::load(dir.path() / "missing", errors);
  REQUIRE(errors.size() == 1);
  CHECK_THAT(errors[0].str(), Catch::Contains("the templates folder does not exist"));
  CHECK_FALSE(set->has("en", "x", Channel::kSms));
}

TEST_CASE("customer data is never HTML-escaped, with two or three braces") {
  TempDir dir;
  dir.write("en/note.email.mustache", "Subject: {{order.note}}\n\n{{order.note}} / {{{order.note}}} / {{&order.note}}");
  Diagnostics errors;
  auto set = load(dir, errors);
  REQUIRE(errors.empty());
  std::string error;
  auto email = set->render("en", "note", Channel::kEmail, template_data(context("en")), error);
  REQUIRE(email);
  CHECK(email->subject == "Tom & Jerry's <café>");
  CHECK(email->body == "Tom & Jerry's <café> / Tom & Jerry's <café> / Tom & Jerry's <café>");
}

TEST_CASE("a missing or empty field skips its section and shows its inverted section") {
  TempDir dir;
  dir.write("en/why.sms.mustache",
            "Cancelled.{{#order.cancel_reason}} Why: {{order.cancel_reason}}.{{/order.cancel_reason}}"
            "{{^order.cancel_reason}} No reason given.{{/order.cancel_reason}}{{#history.last}} Last: "
            "{{history.last.kind}}.{{/history.last}} {{#customer.vip}}VIP{{/customer.vip}}");
  Diagnostics errors;
  auto set = load(dir, errors);
  REQUIRE(errors.empty());
  std::string error;
  MessageContext c = context("en");
  auto rendered = [&] { return set->render("en", "why", Channel::kSms, template_data(c), error)->body; };
  CHECK(rendered() == "Cancelled. No reason given. VIP");
  c.entities["order"]["cancel_reason"] = "";
  CHECK(rendered() == "Cancelled. No reason given. VIP");
  c.entities["order"]["cancel_reason"] = nullptr;
  CHECK(rendered() == "Cancelled. No reason given. VIP");
  c.entities["order"]["cancel_reason"] = "kitchen overloaded";
  c.entities["customer"]["vip"] = false;
  c.history = {Contact{"c-1", at("2026-11-18T09:00:00Z"), Kind::kThankYou, "thanks", c.entity, Channel::kEmail, "k"}};
  CHECK(rendered() == "Cancelled. Why: kitchen overloaded. Last: thank_you.");
}

namespace {

// Story data as the pipeline hands it over: ids in the fields.
MessageContext story(const char* locale, Kind kind, EntityType type) {
  MessageContext c;
  c.kind = kind;
  c.locale = locale;
  c.time_zone = "Europe/Amsterdam";
  c.merchant = "Trattoria Da Marco";
  c.entities["customer"] = {{"id", "c-anna"}, {"name", "Anna de Vries"}, {"locale", locale}};
  c.entities["order"] = {{"id", "A-1001"},
                         {"customer", "c-anna"},
                         {"status", "cancelled"},
                         {"total", 31.4},
                         {"currency", "EUR"},
                         {"merchant", "Trattoria Da Marco"},
                         {"cancel_reason", "our kitchen is overloaded tonight"}};
  c.entity = EntityRef{type, type == EntityType::kShipment ? "S-77" : "A-1001"};
  if (type == EntityType::kShipment)
    c.entities["shipment"] = {{"id", "S-77"},
                              {"order", "A-1001"},
                              {"status", "delivery_failed"},
                              {"carrier", "PostNL"},
                              {"tracking", "3SABCD1234567"},
                              {"exception_reason", "the van could not reach the address because of road works"}};
  return c;
}

Rendered render_shipped(const char* locale, const char* name, Channel channel, MessageContext c) {
  Diagnostics errors;
  auto set = TemplateSet::load(test::source_dir() / "templates", errors);
  std::string error;
  c.locale = locale;
  auto rendered = set->render(locale, name, channel, template_data(c), error);
  INFO(error);
  REQUIRE(rendered);
  return *rendered;
}

}  // namespace

TEST_CASE("the shipped templates load without problems") {
  Diagnostics errors;
  auto set = TemplateSet::load(test::source_dir() / "templates", errors);
  for (const auto& e : errors) FAIL_CHECK(e.str());
  for (const char* locale : {"en", "nl"})
    for (const char* name : {"order_cancelled", "first_order_thanks", "delivery_problem"})
      for (Channel channel : {Channel::kEmail, Channel::kSms}) CHECK(set->has(locale, name, channel));
}

TEST_CASE("the shipped cancellation apology says what happened, why, and what happens to the money") {
  MessageContext c = story("nl", Kind::kApology, EntityType::kOrder);
  const Rendered sms = render_shipped("nl", "order_cancelled", Channel::kSms, c);
  CHECK_THAT(sms.body, Catch::StartsWith("Hoi Anna, het spijt ons"));
  CHECK_THAT(sms.body, Catch::Contains("A-1001") && Catch::Contains("our kitchen is overloaded tonight") &&
                           Catch::Contains("€ 31,40") && Catch::EndsWith("Trattoria Da Marco"));
  for (const char* locale : {"en", "nl"})
    CHECK(render_shipped(locale, "order_cancelled", Channel::kSms, c).body.size() < 300);
  const Rendered email = render_shipped("en", "order_cancelled", Channel::kEmail, c);
  CHECK(email.subject == "We're sorry: your order A-1001 has been cancelled");
  CHECK_THAT(email.body, Catch::StartsWith("Dear Anna,") && Catch::Contains("What happened: our kitchen is") &&
                             Catch::Contains("the full amount of €31.40 is refunded") &&
                             Catch::EndsWith("Trattoria Da Marco"));
  CHECK(email.body.find("\n\n\n") == std::string::npos);

  c.entities["order"].erase("cancel_reason");
  c.entities["customer"].erase("name");
  for (const char* locale : {"en", "nl"}) {
    const Rendered without = render_shipped(locale, "order_cancelled", Channel::kEmail, c);
    CHECK_THAT(without.body, !Catch::Contains("What happened") && !Catch::Contains("Wat er gebeurde"));
    CHECK_THAT(without.body, Catch::StartsWith(locale == std::string("en") ? "Hello," : "Hallo,"));
    CHECK(without.body.find("\n\n\n") == std::string::npos);
    const Rendered short_one = render_shipped(locale, "order_cancelled", Channel::kSms, c);
    CHECK_THAT(short_one.body, Catch::StartsWith("We're sorry") || Catch::StartsWith("Het spijt ons"));
  }
}

TEST_CASE("the shipped first-order thank-you sells nothing") {
  const MessageContext c = story("en", Kind::kThankYou, EntityType::kOrder);
  for (const char* locale : {"en", "nl"})
    for (Channel channel : {Channel::kEmail, Channel::kSms}) {
      const Rendered r = render_shipped(locale, "first_order_thanks", channel, c);
      std::string text = r.subject.value_or("") + "\n" + r.body;
      for (char& ch : text) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      INFO(text);
      CHECK((text.find("thank you") != std::string::npos || text.find("dank je wel") != std::string::npos));
      for (const char* pushy : {"discount", "korting", "code", "%", "order again", "opnieuw bestellen", "€"})
        CHECK(text.find(pushy) == std::string::npos);
      if (channel == Channel::kSms) CHECK(r.body.size() < 300);
    }
}

TEST_CASE("the shipped delivery explanation names the carrier, the reason and the next step") {
  const MessageContext c = story("en", Kind::kExplanation, EntityType::kShipment);
  const Rendered email = render_shipped("en", "delivery_problem", Channel::kEmail, c);
  CHECK(email.subject == "Your parcel for order A-1001 could not be delivered yet");
  CHECK_THAT(email.body, Catch::Contains("PostNL could not deliver") && Catch::Contains("road works") &&
                             Catch::Contains("3SABCD1234567") && Catch::Contains("tries again"));
  const Rendered sms = render_shipped("nl", "delivery_problem", Channel::kSms, c);
  CHECK_THAT(sms.body, Catch::Contains("PostNL kon je pakket voor bestelling A-1001 niet bezorgen") &&
                           Catch::Contains("Volgen: 3SABCD1234567"));
  for (const char* locale : {"en", "nl"})
    CHECK(render_shipped(locale, "delivery_problem", Channel::kSms, c).body.size() < 300);
  MessageContext bare = c;
  bare.entities["shipment"] = {{"id", "S-77"}, {"status", "exception"}};
  const Rendered plain = render_shipped("nl", "delivery_problem", Channel::kSms, bare);
  CHECK_THAT(plain.body,
             Catch::Contains("de bezorger kon je pakket") && !Catch::Contains("Reden") && !Catch::Contains("Volgen"));
}

TEST_CASE("the names a template shows outside every section are found, whatever its delimiters") {
  CHECK(unguarded_names("Dear {{ customer.first_name }}, {{#order.cancel_reason}}{{order.cancel_reason}}"
                        "{{/order.cancel_reason}} {{^shipment.eta}}{{shipment.carrier}}{{/shipment.eta}} "
                        "{{{order.total}}} {{&order.note}} {{! a comment }} {{> footer}} {{.}} {{merchant}}") ==
        std::set<std::string>{"customer.first_name", "merchant", "order.note", "order.total"});
  CHECK(unguarded_names("{{#a}}{{#b}}{{x}}{{/b}}{{y}}{{/a}}{{z}}") == std::set<std::string>{"z"});
  CHECK(unguarded_names("{{=<% %>=}}<%order.id%> {{not.a.tag}} <%#x%><%y%><%/x%><%={{ }}=%>{{order.total}}") ==
        std::set<std::string>{"order.id", "order.total"});
  CHECK(unguarded_names("{{order.id}} {{unclosed").size() == 1);

  CHECK(entity_field_of("subscription.price") == "subscription.price");
  CHECK(entity_field_of("subscription.raw.price") == "subscription.price");
  CHECK(entity_field_of("customer.first_name") == "customer.name");
  CHECK(entity_field_of("order.items.0") == "order.items");
  for (const char* none : {"order.id", "order.sent", "order.raw", "merchant", "history.last.at", "event.new", "order"})
    CHECK(entity_field_of(none).empty());
}

TEST_CASE("the shipped broken-promise apology offers the voucher its action answered, and none without one") {
  MessageContext c = story("en", Kind::kApology, EntityType::kOrder);
  c.entities["order"]["status"] = "shipped";
  c.entities["order"]["promised_by"] = "2026-11-20T11:00:00Z";
  const Rendered without = render_shipped("en", "delivery_late_apology", Channel::kEmail, c);
  CHECK_THAT(without.body, !Catch::Contains("voucher"));
  CHECK_THAT(without.body, Catch::Contains("arrange it.\n\nWith our apologies,"));
  c.action = {{"code", "SORRY-5"}, {"amount", "€5"}};
  const Rendered with = render_shipped("en", "delivery_late_apology", Channel::kEmail, c);
  CHECK_THAT(with.body, Catch::Contains("arrange it.\n\nTo make up for the wait, here is a voucher worth €5: SORRY-5. "
                                        "It is yours, whatever you decide.\n\nWith our apologies,"));
  CHECK_THAT(render_shipped("en", "delivery_late_apology", Channel::kSms, c).body,
             Catch::Contains("To make up for it: voucher SORRY-5 (€5)."));
  CHECK_THAT(render_shipped("nl", "delivery_late_apology", Channel::kSms, c).body,
             Catch::Contains("Als goedmaker: tegoedbon SORRY-5 (€5)."));
  CHECK_THAT(render_shipped("nl", "delivery_late_apology", Channel::kEmail, c).body,
             Catch::Contains("krijg je een tegoedbon van €5: SORRY-5. Die is van jou"));
  c.action = nlohmann::json::object();  // an empty answer shows no voucher either
  CHECK_THAT(render_shipped("en", "delivery_late_apology", Channel::kSms, c).body, !Catch::Contains("voucher"));
}
