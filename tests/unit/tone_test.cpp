#include "render/tone.h"

#include <algorithm>

#include <toml++/toml.h>
#include <catch2/catch.hpp>

#include "support/temp_dir.h"

using namespace tactd;
using tactd::test::TempDir;

namespace {

constexpr const char* kTone = R"(
[sms]
max_segments = 2

[[kinds.apology.require]]
what = "the cause"
any_of = ["order.cancel_reason", "shipment.exception_reason"]
text_any_of = { en = ["what happened"], nl = ["wat er gebeurde"] }

[[kinds.apology.require]]
what = "a next step"
text_any_of.en = ["reply", "what you can do"]
text_any_of.nl = ["antwoord", "beantwoord"]

[kinds.price_change_reason]
require = [
  { what = "the old price", any_of = ["subscription.price"] },
  { what = "the new price", any_of = ["subscription.next_price"] },
  { what = "the effective date", any_of = ["subscription.price_effective"] },
  { what = "the reason", any_of = ["subscription.price_reason"] },
]

[kinds.heads_up]
require = [ { what = "the new expected time", any_of = ["shipment.eta"] } ]

[kinds.thank_you]
forbid = { en = ["discount", "% off", "order again"], nl = ["korting", "bestel opnieuw"] }

[never]
en = ["your fault", "dear customer"]
nl = ["jouw schuld", "geachte klant"]
)";

struct Checked {
  Diagnostics load_errors;
  Diagnostics findings;

  bool any(std::string_view text) const {
    return std::any_of(findings.begin(), findings.end(),
                       [&](const Diagnostic& d) { return d.str().find(text) != std::string::npos; });
  }
};

// Writes `templates` (path under templates/ -> text) and checks them with
// `tone` for one rule of `kind` using template `name` on `channels`.
Checked check(const std::vector<std::pair<std::string, std::string>>& templates, Kind kind, const std::string& name,
              std::vector<Channel> channels, const char* tone = kTone) {
  TempDir dir;
  for (const auto& [path, text] : templates) dir.write("templates/" + path, text);
  const auto tone_file = dir.write("tone.toml", tone);
  Checked out;
  auto set = TemplateSet::load(dir.path() / "templates", out.load_errors);
  auto rules = load_tone_rules(tone_file, out.load_errors);
  for (const auto& e : out.load_errors) UNSCOPED_INFO(e.str());
  REQUIRE(out.load_errors.empty());
  REQUIRE(rules);
  out.findings = check_tone(*rules, *set, {"en", "nl"}, {ToneUse{"r-1", kind, name, std::move(channels)}});
  return out;
}

// The errors of loading `tone` as a tone file.
Diagnostics load_errors(const char* tone) {
  TempDir dir;
  Diagnostics errors;
  auto rules = load_tone_rules(dir.write("tone.toml", tone), errors);
  CHECK_FALSE(rules);
  return errors;
}

bool mentions(const Diagnostics& errors, std::string_view text) {
  return std::any_of(errors.begin(), errors.end(),
                     [&](const Diagnostic& d) { return d.str().find(text) != std::string::npos; });
}

}  // namespace

// ------------------------------------------------------------------ SMS length

TEST_CASE("GSM-7 messages fit 160 characters in one segment and 153 per part") {
  CHECK(sms_length("").segments == 0);
  auto one = sms_length(std::string(160, 'a'));
  CHECK(one.characters == 160);
  CHECK(one.segments == 1);
  CHECK_FALSE(one.unicode);
  CHECK(sms_length(std::string(161, 'a')).segments == 2);
  CHECK(sms_length(std::string(306, 'a')).segments == 2);
  CHECK(sms_length(std::string(307, 'a')).segments == 3);
  CHECK(sms_length("Café à Zürich, @ 5 $ £ ¥ §").unicode == false);
}

TEST_CASE("the euro sign and the other extension characters count two") {
  auto euro = sms_length("€");
  CHECK(euro.characters == 2);
  CHECK_FALSE(euro.unicode);
  CHECK(sms_length("^{}\\[~]|").characters == 16);
  std::string eighty_euros;
  for (int i = 0; i < 80; ++i) eighty_euros += "€";
  CHECK(sms_length(eighty_euros).segments == 1);
  CHECK(sms_length(eighty_euros + "a").segments == 2);
  // An escaped character is never split over two parts.
  auto split = sms_length(std::string(152, 'a') + "€" + std::string(152, 'a'));
  CHECK(split.characters == 306);
  CHECK(split.segments == 3);
}

TEST_CASE("a character outside GSM-7 makes the message UCS-2: 70 in one segment, 67 per part") {
  std::string seventy;
  for (int i = 0; i < 70; ++i) seventy += "ó";
  auto one = sms_length(seventy);
  CHECK(one.unicode);
  CHECK(one.characters == 70);
  CHECK(one.segments == 1);
  CHECK(sms_length(seventy + "a").segments == 2);
  CHECK(sms_length(std::string(133, 'a') + "ó").segments == 2);
  CHECK(sms_length(std::string(134, 'a') + "ó").segments == 3);
  CHECK(sms_length("`").unicode);
  auto emoji = sms_length("🙂");
  CHECK(emoji.unicode);
  CHECK(emoji.characters == 2);
  CHECK(sms_length("€ó").characters == 2);  // in UCS-2 the euro sign is one unit
}

// --------------------------------------------------------------- requirements

TEST_CASE("an apology without the cause is reported with the variables and phrases that would fix it") {
  auto checked =
      check({{"en/sorry.sms.mustache", "We are sorry, order {{order.id}} is cancelled. Just reply."},
             {"nl/sorry.sms.mustache", "Het spijt ons. Wat er gebeurde: {{order.cancel_reason}}. Antwoord gerust."}},
            Kind::kApology, "sorry", {Channel::kSms});
  REQUIRE(checked.findings.size() == 1);
  const std::string text = checked.findings[0].str();
  CHECK(text.find("templates/en/sorry.sms.mustache:1: tone: an apology must name the cause (rule 'r-1', kind "
                  "apology): use {{order.cancel_reason}} or {{shipment.exception_reason}}, or say 'what happened'") !=
        std::string::npos);
}

TEST_CASE("an apology names its cause with a section, a triple tag or a phrase") {
  for (const char* body :
       {"{{#order.cancel_reason}}Reason given.{{/order.cancel_reason}} Reply.",
        "{{{shipment.exception_reason}}} Reply.", "{{^order.cancel_reason}}x{{/order.cancel_reason}} Reply.",
        "{{#order}}{{cancel_reason}}{{/order}} Reply.", "WHAT HAPPENED: late. Reply."}) {
    auto checked = check({{"en/sorry.sms.mustache", body}}, Kind::kApology, "sorry", {Channel::kSms});
    CHECK(checked.findings.empty());
  }
}

TEST_CASE("an apology without a next step is reported") {
  auto checked = check({{"en/sorry.email.mustache", "Subject: Sorry\n\nWhat happened: {{order.cancel_reason}}.\n"},
                        {"nl/sorry.email.mustache",
                         "Subject: Sorry\n\nWat er gebeurde: {{order.cancel_reason}}.\nBeantwoord deze e-mail.\n"}},
                       Kind::kApology, "sorry", {Channel::kEmail});
  REQUIRE(checked.findings.size() == 1);
  CHECK(
      checked.any("templates/en/sorry.email.mustache:1: tone: an apology must name a next step (rule 'r-1', kind "
                  "apology): say 'reply' or 'what you can do'"));
}

TEST_CASE("a phrase inside a tag or inside a longer word does not count") {
  auto checked = check({{"en/sorry.sms.mustache", "{{order.cancel_reason}} {{replyto}} Replying soon."}},
                       Kind::kApology, "sorry", {Channel::kSms});
  CHECK(checked.any("must name a next step"));
}

TEST_CASE("a price change missing each element is reported once per element") {
  const std::string full =
      "From {{subscription.price_effective}} {{subscription.plan}} costs {{subscription.next_price}} instead of "
      "{{subscription.price}}, because {{subscription.price_reason}}.";
  auto ok = check({{"en/price.sms.mustache", full}}, Kind::kPriceChangeReason, "price", {Channel::kSms});
  CHECK(ok.findings.empty());
  for (const auto& [variable, what] :
       std::vector<std::pair<std::string, std::string>>{{"{{subscription.price}}", "the old price"},
                                                        {"{{subscription.next_price}}", "the new price"},
                                                        {"{{subscription.price_effective}}", "the effective date"},
                                                        {"{{subscription.price_reason}}", "the reason"}}) {
    std::string body = full;
    body.replace(body.find(variable), variable.size(), "something");
    auto checked = check({{"en/price.sms.mustache", body}}, Kind::kPriceChangeReason, "price", {Channel::kSms});
    REQUIRE(checked.findings.size() == 1);
    CHECK(checked.any("tone: a price-change-reason message must name " + what +
                      " (rule 'r-1', kind price_change_reason)"));
  }
}

TEST_CASE("a heads-up without the new expected time is reported") {
  auto checked = check({{"en/late.sms.mustache", "Your order {{order.id}} is running late. Sorry!"},
                        {"nl/late.sms.mustache", "Je bestelling komt later: {{shipment.eta}}."}},
                       Kind::kHeadsUp, "late", {Channel::kSms});
  REQUIRE(checked.findings.size() == 1);
  CHECK(
      checked.any("templates/en/late.sms.mustache:1: tone: a heads-up must name the new expected time (rule 'r-1', "
                  "kind heads_up): use {{shipment.eta}}"));
}

// ------------------------------------------------------------ forbidden text

TEST_CASE("a sales phrase in a thank-you is reported at its line and column") {
  auto checked = check({{"en/thanks.email.mustache",
                         "Subject: Thank you\n\nThank you for your order.\nHere is 10% OFF: use DISCOUNT THANKS10.\n"},
                        {"nl/thanks.email.mustache", "Subject: Bedankt, {{korting}}\n\nDank je wel!\n"}},
                       Kind::kThankYou, "thanks", {Channel::kEmail});
  REQUIRE(checked.findings.size() == 2);
  CHECK(
      checked.any("templates/en/thanks.email.mustache:4:11: tone: a thank-you must not say '% off' (rule 'r-1', kind "
                  "thank_you)"));
  CHECK(checked.any("templates/en/thanks.email.mustache:4:22: tone: a thank-you must not say 'discount'"));
}

TEST_CASE("a sales phrase is allowed in other kinds") {
  auto checked = check({{"en/sorry.sms.mustache", "What happened: late. Here is a discount. Reply if you like."}},
                       Kind::kApology, "sorry", {Channel::kSms});
  CHECK(checked.findings.empty());
}

TEST_CASE("a never-phrase is reported only in its own locale") {
  auto checked = check({{"en/thanks.sms.mustache", "Dear customer, thank you. Jouw schuld is nothing."},
                        {"nl/thanks.sms.mustache", "Hoi, het was jouw schuld. Dear customer."}},
                       Kind::kFollowUp, "thanks", {Channel::kSms});
  REQUIRE(checked.findings.size() == 2);
  CHECK(
      checked.any("templates/en/thanks.sms.mustache:1:1: tone: 'dear customer' must never appear in a message (rule "
                  "'r-1', kind follow_up)"));
  CHECK(checked.any("templates/nl/thanks.sms.mustache:1:14: tone: 'jouw schuld' must never appear"));
}

TEST_CASE("a never-phrase in an email subject points into the subject line") {
  auto checked = check({{"en/x.email.mustache", "Subject: Your fault, sorry\n\nHello.\n"}}, Kind::kCheckIn, "x",
                       {Channel::kEmail});
  REQUIRE(checked.findings.size() == 1);
  CHECK(checked.any("templates/en/x.email.mustache:1:10: tone: 'your fault' must never appear"));
}

// ---------------------------------------------------------------- SMS length

TEST_CASE("an SMS that renders longer than the maximum is reported with its length and encoding") {
  // 2 segments allowed: 306 GSM-7 characters fit, 307 do not.
  auto fits = check({{"en/long.sms.mustache", std::string(306, 'a')}}, Kind::kCheckIn, "long", {Channel::kSms});
  CHECK(fits.findings.empty());
  auto gsm = check({{"en/long.sms.mustache", std::string(307, 'a')}}, Kind::kCheckIn, "long", {Channel::kSms});
  REQUIRE(gsm.findings.size() == 1);
  CHECK(
      gsm.any("templates/en/long.sms.mustache:1: tone: rendered with the example data this SMS is 307 characters in "
              "3 segments (GSM-7); the maximum is 2 (rule 'r-1', kind check_in)"));

  auto ucs_fits =
      check({{"en/long.sms.mustache", std::string(133, 'a') + "ó"}}, Kind::kCheckIn, "long", {Channel::kSms});
  CHECK(ucs_fits.findings.empty());
  auto ucs = check({{"en/long.sms.mustache", std::string(134, 'a') + "ó"}}, Kind::kCheckIn, "long", {Channel::kSms});
  REQUIRE(ucs.findings.size() == 1);
  CHECK(ucs.any("this SMS is 135 characters in 3 segments (UCS-2); the maximum is 2"));
}

TEST_CASE("the SMS length is measured with the example data filled in") {
  // The example merchant is "Trattoria Da Marco" (18 characters).
  auto checked =
      check({{"en/sig.sms.mustache", std::string(288, 'a') + "{{merchant}}"}}, Kind::kCheckIn, "sig", {Channel::kSms});
  CHECK(checked.findings.empty());
  auto longer =
      check({{"en/sig.sms.mustache", std::string(289, 'a') + "{{merchant}}"}}, Kind::kCheckIn, "sig", {Channel::kSms});
  CHECK(longer.any("this SMS is 307 characters in 3 segments (GSM-7)"));
  auto euro = check({{"en/sig.sms.mustache", std::string(250, 'a') + "{{order.total}}"}}, Kind::kCheckIn, "sig",
                    {Channel::kSms});
  CHECK(euro.findings.empty());  // "€47.50": 7 septets, 257 in all
}

TEST_CASE("email templates are not measured as SMS") {
  auto checked = check({{"en/long.email.mustache", "Subject: Hello\n\n" + std::string(2000, 'a') + "\n"}},
                       Kind::kCheckIn, "long", {Channel::kEmail});
  CHECK(checked.findings.empty());
}

// ---------------------------------------------------------------- tone.toml

TEST_CASE("a malformed tone file is reported with file, line and column") {
  auto syntax = load_errors("[sms]\nmax_segments = \n");
  REQUIRE(syntax.size() == 1);
  CHECK(syntax[0].str().find("tone.toml:2:") != std::string::npos);

  auto kind = load_errors("[kinds.apologie]\nforbid = { en = [\"x\"] }\n");
  CHECK(mentions(kind, "tone.toml:1:"));
  CHECK(mentions(kind, "unknown message kind 'apologie' in [kinds] (known kinds: apology,"));

  auto segments = load_errors("[sms]\nmax_segments = 0\n");
  CHECK(mentions(segments, "tone.toml:2:16: 'max_segments' must be between 1 and 20"));

  auto empty = load_errors("[kinds.heads_up]\nrequire = [\n  { what = \"the time\" },\n]\n");
  CHECK(mentions(empty, "tone.toml:3:3: a requirement of [kinds.heads_up] needs 'any_of'"));

  auto no_what = load_errors("[kinds.heads_up]\nrequire = [ { any_of = [\"shipment.eta\"] } ]\n");
  CHECK(mentions(no_what, "needs 'what' (a string)"));

  auto not_list = load_errors("[never]\nen = \"your fault\"\n");
  CHECK(mentions(not_list, "tone.toml:2:6: 'en' must be a list of strings"));

  auto typo = load_errors("[kinds.thank_you]\nforbidden = { en = [\"x\"] }\n");
  CHECK(mentions(typo, "tone.toml:2:"));
  CHECK(mentions(typo, "unknown key 'forbidden' in [kinds.thank_you]"));

  auto blank = load_errors("[never]\nen = [\"\"]\n");
  CHECK(mentions(blank, "would match nothing"));
}

TEST_CASE("the shipped templates pass the shipped tone rules") {
  const auto root = test::source_dir();
  Diagnostics errors;
  auto rules = load_tone_rules(root / "config/tone.toml", errors);
  auto set = TemplateSet::load(root / "templates", errors);
  for (const auto& e : errors) UNSCOPED_INFO(e.str());
  REQUIRE(errors.empty());
  REQUIRE(rules);
  CHECK(rules->kinds.count(Kind::kApology) == 1);
  CHECK(rules->kinds.count(Kind::kPriceChangeReason) == 1);
  CHECK(rules->kinds.count(Kind::kHeadsUp) == 1);
  CHECK(rules->kinds.count(Kind::kThankYou) == 1);

  // The shipped rules' kinds, templates and channels, read straight from the TOML.
  std::vector<ToneUse> uses;
  for (const auto& entry : std::filesystem::directory_iterator(root / "config/rules")) {
    if (entry.path().extension() != ".toml") continue;
    const toml::table file = toml::parse_file(entry.path().string());
    const toml::array* list = file["rule"].as_array();
    REQUIRE(list);
    for (const auto& node : *list) {
      const toml::table& rule = *node.as_table();
      ToneUse use;
      use.rule = rule["id"].value_or(std::string());
      use.kind = *parse_kind(rule["kind"].value_or(std::string()));
      use.template_name = rule["template"].value_or(std::string());
      for (const auto& channel : *rule["channels"].as_array())
        use.channels.push_back(*parse_channel(channel.value_or(std::string())));
      uses.push_back(use);
    }
  }
  REQUIRE(uses.size() >= 5);
  const auto findings = check_tone(*rules, *set, {"en", "nl"}, uses);
  for (const auto& f : findings) UNSCOPED_INFO(f.str());
  CHECK(findings.empty());
}
