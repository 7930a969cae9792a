// The tone check of `tactd check`: what each message kind must say, what no
// message may say, and how long an SMS may get (docs/tone.md).
//
// The rules come from a TOML file (`tone = "tone.toml"` in tactd.toml):
//
//   [sms]
//   max_segments = 3                  # with the example data; default 3
//
//   [kinds.apology]                   # one table per message kind
//   require = [                       # met by ANY listed variable or phrase
//     { what = "the cause", any_of = ["order.cancel_reason"],
//       text_any_of = { en = ["what happened"], nl = ["wat er gebeurde"] } },
//   ]
//   forbid = { en = ["discount"], nl = ["korting"] }   # per locale
//
//   [never]                           # every kind, per locale
//   en = ["your fault", "dear customer"]
//
// Checking needs no rule set: the caller says which template is used with
// which kind and channels (one ToneUse per rule). All values are immutable
// once loaded; check_tone is a pure function.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/diagnostic.h"
#include "model/notification.h"
#include "render/render.h"

namespace tactd {

// The length of an SMS body as a phone network counts it. GSM 03.38 basic
// characters count 1, its extension table (^ { } \ [ ~ ] | € and form feed)
// 2; any other character switches the whole message to UCS-2, counted in
// UTF-16 code units. One message holds 160 GSM-7 / 70 UCS-2 units; longer
// messages are split in parts of 153 / 67 units, never splitting an escaped
// character or a surrogate pair. An empty body is 0 segments.
struct SmsLength {
  int characters = 0;  // GSM-7 septets or UTF-16 code units
  int segments = 0;
  bool unicode = false;  // UCS-2
};
SmsLength sms_length(std::string_view utf8);

// Locale ("en", "nl") -> phrases. Phrases match case-insensitively and as
// whole words at their edges ("discount" does not match "discounts").
using PhrasesByLocale = std::map<std::string, std::vector<std::string>, std::less<>>;

struct ToneRequirement {
  std::string what;                 // "the cause", for messages
  std::vector<std::string> any_of;  // template variables ("order.cancel_reason")
  PhrasesByLocale text_any_of;      // or any of these phrases in the text
};

struct ToneKindRules {
  std::vector<ToneRequirement> require;  // each must be met
  PhrasesByLocale forbid;                // none may appear
};

struct ToneRules {
  std::filesystem::path file;  // where they were read from
  int max_segments = 3;        // per SMS, with the example data
  std::map<Kind, ToneKindRules> kinds;
  PhrasesByLocale never;  // every kind
};

// Reads and validates a tone file. Returns nullopt when anything is wrong,
// with every problem appended to `errors` as "file:line:column: what".
std::optional<ToneRules> load_tone_rules(const std::filesystem::path& file, Diagnostics& errors);

// One use of a template: a rule's kind, template and channels.
struct ToneUse {
  std::string rule;  // rule id, named in every finding
  Kind kind = Kind::kApology;
  std::string template_name;
  std::vector<Channel> channels;
};

// Checks every template of `uses` in every locale of `locales` (templates
// that do not exist are skipped: load_snapshot reports those). Findings are
// "file:line[:column]: tone: what is wrong (rule 'id', kind k): how to fix".
Diagnostics check_tone(const ToneRules& rules, const TemplateSet& templates, const std::vector<std::string>& locales,
                       const std::vector<ToneUse>& uses);

// The example data SMS lengths are measured with: realistic, long-ish values
// for every entity type, signed by "Trattoria Da Marco".
MessageContext tone_example(Kind kind, std::string_view locale, std::string_view rule);

}  // namespace tactd
