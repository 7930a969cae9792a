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
}

TEST_CASE("dates and times are formatted in the customer's zone and language") {
  const Timestamp t = at("2026-11-20T17:00:00Z");
  CHECK(format_date_time(t, "Europe/Amsterdam", "nl") == "vrijdag 20 november 2026, 18:00");
  CHECK(format_date_time(t, "Europe/Amsterdam", "en") == "Friday 20 November 2026, 18:00");
  CHECK(format_date_time(t, "America/New_York", "en") == "Friday 20 November 2026, 12:00");
  CHECK(format_date_time(at("2026-07-01T22:30:00Z"), "Europe/Amsterdam", "nl") == "donderdag 2 juli 2026, 00:30");
  CHECK(format_date(t, "", "nl") == "20 november 2026");
  CHECK(format_time(t, "Asia/Kolkata") == "22:30");
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
  CHECK(data["event"]["new"] == "cancelled");
  CHECK(data["history"]["first"] == true);
  CHECK(data["history"]["count"] == 0);
  CHECK_FALSE(data["history"].contains("last"));
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
  CHECK(data["history"]["list"].size() == 2);
}

TEST_CASE("an email template renders its subject and body; an SMS template its body") {
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

TEST_CASE("broken template files are reported with file and line and left out") {
  TempDir dir;
  const auto no_channel = dir.write("en/thanks.mustache", "x");
  const auto fax = dir.write("en/thanks.fax.mustache", "x");
  const auto no_subject = dir.write("en/thanks.email.mustache", "Dear you,\n\nthanks");
  const auto unclosed = dir.write("en/sorry.sms.mustache", "Sorry\nabout {{#order}}this");
  const auto bad_subject = dir.write("nl/sorry.email.mustache", "Subject: {{#x}}\n\nbody");
  dir.write("nl/fine.sms.mustache", "fine");
  Diagnostics errors;
  auto set = load(dir, errors);
  REQUIRE(errors.size() == 5);
  std::string all;
  for (const auto& e : errors) all += e.str() + "\n";
  CHECK_THAT(all, Catch::Contains(no_channel.string() +
                                  ": a template file is named <name>.<channel>.mustache, like x.email.mustache"));
  CHECK_THAT(all, Catch::Contains(fax.string() + ": unknown channel 'fax' in the file name (email or sms)"));
  CHECK_THAT(all,
             Catch::Contains(no_subject.string() +
                             ":1:1: an email template starts with 'Subject: ...' and a blank line before the body"));
  CHECK_THAT(all, Catch::Contains(unclosed.string() + ":2:7: template syntax: Unclosed section \"order\" at 12"));
  CHECK_THAT(all, Catch::Contains(bad_subject.string() + ":1:2: template syntax: Unclosed section \"x\""));
  CHECK(set->has("nl", "fine", Channel::kSms));
  CHECK_FALSE(set->has("en", "sorry", Channel::kSms));
}

TEST_CASE("the shipped templates load without problems") {
  Diagnostics errors;
  auto set = TemplateSet::load(test::source_dir() / "templates", errors);
  for (const auto& e : errors) FAIL_CHECK(e.str());
  for (const char* locale : {"en", "nl"})
    for (const char* name : {"order_cancelled", "first_order_thanks", "delivery_problem"})
      for (Channel channel : {Channel::kEmail, Channel::kSms}) CHECK(set->has(locale, name, channel));
}
