#include "render/tone.h"

#include <algorithm>
#include <array>
#include <set>

#include "config/toml_reader.h"

namespace tactd {
namespace {

constexpr int kGsmSingle = 160;  // septets in one GSM-7 message
constexpr int kGsmPart = 153;    // septets per part of a multipart message
constexpr int kUcsSingle = 70;   // UTF-16 units in one UCS-2 message
constexpr int kUcsPart = 67;     // UTF-16 units per part
constexpr int kMaxSegmentsLimit = 20;

// ---------------------------------------------------------------- SMS length

// Decodes the next UTF-8 code point at `i`, advancing it; an invalid byte
// reads as U+FFFD.
char32_t next_code_point(std::string_view s, size_t& i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char lead = byte(i);
  int extra = 0;
  char32_t cp = lead;
  if (lead < 0x80) {
    ++i;
    return cp;
  } else if ((lead & 0xE0) == 0xC0) {
    extra = 1;
    cp = lead & 0x1F;
  } else if ((lead & 0xF0) == 0xE0) {
    extra = 2;
    cp = lead & 0x0F;
  } else if ((lead & 0xF8) == 0xF0) {
    extra = 3;
    cp = lead & 0x07;
  } else {
    ++i;
    return 0xFFFD;
  }
  if (i + extra >= s.size()) {
    ++i;
    return 0xFFFD;
  }
  for (int k = 1; k <= extra; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) {
      ++i;
      return 0xFFFD;
    }
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  i += extra + 1;
  return cp;
}

// Septets a character takes in GSM-7: 1 (basic set), 2 (extension table),
// or 0 when it is not in GSM 03.38 at all.
int gsm_septets(char32_t c) {
  static constexpr std::u32string_view kBasic =
      U"@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
      U"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  static constexpr std::u32string_view kExtension = U"\f^{}\\[~]|€";
  // ASCII, nearly every character of a message, from a table made once.
  static const std::array<unsigned char, 128> kAscii = [] {
    std::array<unsigned char, 128> table{};
    for (char32_t a = 0; a < 128; ++a)
      table[a] = kBasic.find(a) != std::u32string_view::npos       ? 1
                 : kExtension.find(a) != std::u32string_view::npos ? 2
                                                                   : 0;
    return table;
  }();
  if (c < 128) return kAscii[c];
  if (kBasic.find(c) != std::u32string_view::npos) return 1;
  if (kExtension.find(c) != std::u32string_view::npos) return 2;
  return 0;
}

// Segments needed for units of the given widths: one message when they fit
// in `single`, else parts of `part` that never split a unit.
int segments_for(const std::vector<int>& widths, int total, int single, int part) {
  if (total == 0) return 0;
  if (total <= single) return 1;
  int segments = 1;
  int used = 0;
  for (int width : widths) {
    if (used + width > part) {
      ++segments;
      used = 0;
    }
    used += width;
  }
  return segments;
}

// ------------------------------------------------------------ template text

// ASCII and Latin-1 upper case to lower case, byte for byte (UTF-8 length
// is kept, so offsets stay valid).
std::string lower(std::string_view s) {
  std::string out(s);
  for (size_t i = 0; i < out.size(); ++i) {
    auto c = static_cast<unsigned char>(out[i]);
    if (c >= 'A' && c <= 'Z') {
      out[i] = static_cast<char>(c + 32);
    } else if (c == 0xC3 && i + 1 < out.size()) {
      auto d = static_cast<unsigned char>(out[i + 1]);
      if (d >= 0x80 && d <= 0x9E && d != 0x97) out[i + 1] = static_cast<char>(d + 0x20);
      ++i;
    }
  }
  return out;
}

bool word_byte(char c) {
  auto u = static_cast<unsigned char>(c);
  return u >= 0x80 || (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || u == '_';
}

// One mustache source (a subject or a body) prepared for checking.
struct Source {
  std::string_view text;   // as written
  std::string searchable;  // lower case, every tag blanked out
  int first_line = 1;      // where `text` starts in the file
  int first_column = 1;
};

constexpr char kBlank = '\x1f';  // stands in for tag bytes; never in a phrase

// Finds the tags of `source`, adds the variables they use to `used` (a name
// inside a section also counts as <section>.<name>), and blanks them out.
Source prepare(std::string_view text, int first_line, int first_column, std::set<std::string, std::less<>>& used) {
  Source source{text, lower(text), first_line, first_column};
  std::vector<std::string> sections;
  size_t i = 0;
  while ((i = text.find("{{", i)) != std::string_view::npos) {
    const bool triple = text.substr(i, 3) == "{{{";
    const size_t open = i + (triple ? 3 : 2);
    size_t close = text.find(triple ? "}}}" : "}}", open);
    const size_t end = close == std::string_view::npos ? text.size() : close + (triple ? 3 : 2);
    if (close == std::string_view::npos) close = text.size();
    std::string_view content = text.substr(open, close - open);
    char sigil = triple ? '{' : 0;
    if (!triple && !content.empty() && std::string_view("#^/&!>=").find(content.front()) != std::string_view::npos) {
      sigil = content.front();
      content.remove_prefix(1);
    }
    while (!content.empty() && content.front() == ' ') content.remove_prefix(1);
    while (!content.empty() && content.back() == ' ') content.remove_suffix(1);
    const std::string name(content);
    if (sigil == 0 || sigil == '{' || sigil == '&' || sigil == '#' || sigil == '^') {
      if (!name.empty() && name != ".") {
        used.insert(name);
        for (const auto& section : sections) used.insert(section + "." + name);
      }
      if (sigil == '#' || sigil == '^') sections.push_back(name);
    } else if (sigil == '/' && !sections.empty() && sections.back() == name) {
      sections.pop_back();
    }
    std::fill(source.searchable.begin() + static_cast<std::ptrdiff_t>(i),
              source.searchable.begin() + static_cast<std::ptrdiff_t>(end), kBlank);
    i = end;
  }
  return source;
}

// The offset of `phrase` in `source` as a whole word at its edges, or npos.
size_t find_phrase(const Source& source, std::string_view phrase_lower) {
  const std::string& text = source.searchable;
  if (phrase_lower.empty()) return std::string::npos;
  for (size_t at = text.find(phrase_lower); at != std::string::npos; at = text.find(phrase_lower, at + 1)) {
    const size_t after = at + phrase_lower.size();
    if (word_byte(phrase_lower.front()) && at > 0 && word_byte(text[at - 1])) continue;
    if (word_byte(phrase_lower.back()) && after < text.size() && word_byte(text[after])) continue;
    return at;
  }
  return std::string::npos;
}

// Line and column (in characters) of `offset` within `source`, in the file.
std::pair<int, int> place(const Source& source, size_t offset) {
  int line = source.first_line;
  int column = source.first_column;
  for (size_t k = 0; k < offset && k < source.text.size(); ++k) {
    if (source.text[k] == '\n') {
      ++line;
      column = 1;
    } else if ((static_cast<unsigned char>(source.text[k]) & 0xC0) != 0x80) {
      ++column;
    }
  }
  return {line, column};
}

// A loaded template ready for checking: its subject and body, and every
// variable either one uses.
struct Prepared {
  std::vector<Source> sources;
  std::set<std::string, std::less<>> used;
};

Prepared prepare(const TemplateSet::Template& t) {
  Prepared out;
  if (!t.subject.empty()) out.sources.push_back(prepare(t.subject, 1, 9, out.used));  // after "Subject:"
  out.sources.push_back(prepare(t.body, t.body_line, 1, out.used));
  return out;
}

struct Hit {
  int line = 0;
  int column = 0;
};

std::optional<Hit> find_in(const Prepared& prepared, std::string_view phrase) {
  const std::string needle = lower(phrase);
  for (const auto& source : prepared.sources) {
    const size_t at = find_phrase(source, needle);
    if (at == std::string::npos) continue;
    auto [line, column] = place(source, at);
    return Hit{line, column};
  }
  return std::nullopt;
}

const std::vector<std::string>* phrases_for(const PhrasesByLocale& phrases, std::string_view locale) {
  auto it = phrases.find(locale);
  return it == phrases.end() ? nullptr : &it->second;
}

// "an apology", "a heads-up", ... for messages.
std::string kind_noun(Kind kind) {
  switch (kind) {
    case Kind::kApology:
      return "an apology";
    case Kind::kExplanation:
      return "an explanation";
    case Kind::kPriceChangeReason:
      return "a price-change-reason message";
    case Kind::kThankYou:
      return "a thank-you";
    case Kind::kHeadsUp:
      return "a heads-up";
    case Kind::kFollowUp:
      return "a follow-up";
    case Kind::kCheckIn:
      return "a check-in";
  }
  return "a message";
}

// "'a', 'b' or 'c'" / "{{a}} or {{b}}".
std::string either(const std::vector<std::string>& items, std::string_view before, std::string_view after) {
  std::string out;
  for (size_t k = 0; k < items.size(); ++k) {
    if (k > 0) out += k + 1 == items.size() ? " or " : ", ";
    out += std::string(before) + items[k] + std::string(after);
  }
  return out;
}

std::string blame(const ToneUse& use) {
  return "(rule '" + use.rule + "', kind " + std::string(to_string(use.kind)) + ")";
}

void check_template(const ToneRules& rules, const TemplateSet::Template& t, const std::string& locale,
                    const ToneUse& use, Diagnostics& findings) {
  const Prepared prepared = prepare(t);
  const std::string file = t.path.string();
  if (auto kind = rules.kinds.find(use.kind); kind != rules.kinds.end()) {
    for (const auto& requirement : kind->second.require) {
      const bool by_variable = std::any_of(requirement.any_of.begin(), requirement.any_of.end(),
                                           [&](const std::string& v) { return prepared.used.count(v) > 0; });
      const auto* phrases = phrases_for(requirement.text_any_of, locale);
      const bool by_text = phrases && std::any_of(phrases->begin(), phrases->end(), [&](const std::string& p) {
                             return find_in(prepared, p).has_value();
                           });
      if (by_variable || by_text) continue;
      std::string fix;
      if (!requirement.any_of.empty()) fix = "use " + either(requirement.any_of, "{{", "}}");
      if (phrases && !phrases->empty()) fix += (fix.empty() ? "say " : ", or say ") + either(*phrases, "'", "'");
      if (fix.empty()) fix = "nothing in tone.toml says how for locale " + locale;
      findings.push_back(Diagnostic{
          file, 1, 0,
          "tone: " + kind_noun(use.kind) + " must name " + requirement.what + " " + blame(use) + ": " + fix});
    }
    if (const auto* forbidden = phrases_for(kind->second.forbid, locale)) {
      for (const auto& phrase : *forbidden) {
        if (auto hit = find_in(prepared, phrase))
          findings.push_back(Diagnostic{file, hit->line, hit->column,
                                        "tone: " + kind_noun(use.kind) + " must not say '" + phrase + "' " +
                                            blame(use) + ": take it out; [kinds." + std::string(to_string(use.kind)) +
                                            "] forbid lists it"});
      }
    }
  }
  if (const auto* never = phrases_for(rules.never, locale)) {
    for (const auto& phrase : *never) {
      if (auto hit = find_in(prepared, phrase))
        findings.push_back(Diagnostic{file, hit->line, hit->column,
                                      "tone: '" + phrase + "' must never appear in a message " + blame(use) +
                                          ": it blames the customer or sounds cold ([never] " + locale +
                                          "); say it as a caring person would"});
    }
  }
}

void check_sms_length(const ToneRules& rules, const TemplateSet& templates, const TemplateSet::Template& t,
                      const std::string& locale, const ToneUse& use, Diagnostics& findings) {
  std::string error;
  auto rendered = templates.render(locale, use.template_name, Channel::kSms,
                                   template_data(tone_example(use.kind, locale, use.rule)), error);
  if (!rendered) {
    findings.push_back(
        Diagnostic{t.path.string(), 1, 0, "tone: cannot render with the example data " + blame(use) + ": " + error});
    return;
  }
  const SmsLength length = sms_length(rendered->body);
  if (length.segments <= rules.max_segments) return;
  findings.push_back(Diagnostic{
      t.path.string(), 1, 0,
      "tone: rendered with the example data this SMS is " + std::to_string(length.characters) + " characters in " +
          std::to_string(length.segments) + " segments (" + (length.unicode ? "UCS-2" : "GSM-7") +
          "); the maximum is " + std::to_string(rules.max_segments) + " " + blame(use) + ": shorten it" +
          (length.unicode ? ", or avoid characters outside GSM-7 (they make every part shorter)" : "")});
}

// ------------------------------------------------------------------ loading

std::optional<PhrasesByLocale> read_phrases(const toml::table& table, const std::string& file, const std::string& where,
                                            Diagnostics& errors) {
  TableReader reader(table, file, where, errors);
  PhrasesByLocale out;
  const size_t before = errors.size();
  for (const auto& [key, node] : table) {
    auto phrases = reader.strings(key.str(), true);
    if (!phrases) continue;
    for (const auto& phrase : *phrases)
      if (phrase.find_first_not_of(' ') == std::string::npos)
        reader.error(key.str(), "an empty phrase in " + where + " " + std::string(key.str()) + " would match nothing");
    out[std::string(key.str())] = std::move(*phrases);
  }
  if (errors.size() != before) return std::nullopt;
  return out;
}

void read_kind(const toml::table& table, const std::string& file, const std::string& where, ToneKindRules& kind,
               Diagnostics& errors) {
  TableReader reader(table, file, where, errors);
  if (const toml::array* requirements = reader.tables("require")) {
    for (const auto& node : *requirements) {
      const toml::table& entry = *node.as_table();
      const std::string entry_where = "a requirement of " + where;
      TableReader r(entry, file, entry_where, errors);
      ToneRequirement requirement;
      requirement.what = r.string("what", true).value_or("");
      requirement.any_of = r.strings("any_of").value_or(std::vector<std::string>{});
      if (const toml::table* text = r.table("text_any_of")) {
        if (auto phrases = read_phrases(*text, file, entry_where + " text_any_of", errors))
          requirement.text_any_of = std::move(*phrases);
      }
      if (requirement.any_of.empty() && requirement.text_any_of.empty()) {
        const auto& begin = entry.source().begin;
        errors.push_back(Diagnostic{file, static_cast<int>(begin.line), static_cast<int>(begin.column),
                                    entry_where + " needs 'any_of' (template variables) or 'text_any_of' "
                                                  "(phrases per locale), or both"});
      }
      r.finish();
      kind.require.push_back(std::move(requirement));
    }
  }
  if (const toml::table* forbid = reader.table("forbid")) {
    if (auto phrases = read_phrases(*forbid, file, where + " forbid", errors)) kind.forbid = std::move(*phrases);
  }
  reader.finish();
}

}  // namespace

SmsLength sms_length(std::string_view utf8) {
  std::vector<int> gsm;
  std::vector<int> ucs;
  gsm.reserve(utf8.size());
  ucs.reserve(utf8.size());
  int gsm_total = 0;
  int ucs_total = 0;
  bool unicode = false;
  for (size_t i = 0; i < utf8.size();) {
    const char32_t c = next_code_point(utf8, i);
    const int septets = gsm_septets(c);
    if (septets == 0) unicode = true;
    gsm.push_back(septets);
    gsm_total += septets;
    const int units = c > 0xFFFF ? 2 : 1;
    ucs.push_back(units);
    ucs_total += units;
  }
  if (unicode) return SmsLength{ucs_total, segments_for(ucs, ucs_total, kUcsSingle, kUcsPart), true};
  return SmsLength{gsm_total, segments_for(gsm, gsm_total, kGsmSingle, kGsmPart), false};
}

std::optional<ToneRules> load_tone_rules(const std::filesystem::path& file, Diagnostics& errors) {
  const std::string name = file.string();
  auto root = parse_toml_file(name, errors);
  if (!root) return std::nullopt;
  const size_t before = errors.size();
  ToneRules rules;
  rules.file = file;
  TableReader reader(*root, name, "the tone file", errors);
  if (const toml::table* sms = reader.table("sms")) {
    TableReader r(*sms, name, "[sms]", errors);
    if (auto max = r.integer("max_segments")) {
      if (*max < 1 || *max > kMaxSegmentsLimit)
        r.error("max_segments",
                "'max_segments' must be between 1 and " + std::to_string(kMaxSegmentsLimit) + " (SMS parts)");
      else
        rules.max_segments = static_cast<int>(*max);
    }
    r.finish();
  }
  if (const toml::table* kinds = reader.table("kinds")) {
    TableReader r(*kinds, name, "[kinds]", errors);
    for (const auto& [key, node] : *kinds) {
      const std::string where = "[kinds." + std::string(key.str()) + "]";
      auto kind = parse_kind(key.str());
      const toml::table* table = r.table(key.str());
      if (!kind) {
        r.error(key.str(), "unknown message kind '" + std::string(key.str()) +
                               "' in [kinds] (known kinds: " + std::string(kind_list()) + ")");
        continue;
      }
      if (table) read_kind(*table, name, where, rules.kinds[*kind], errors);
    }
  }
  if (const toml::table* never = reader.table("never")) {
    if (auto phrases = read_phrases(*never, name, "[never]", errors)) rules.never = std::move(*phrases);
  }
  reader.finish();
  if (errors.size() != before) return std::nullopt;
  return rules;
}

Diagnostics check_tone(const ToneRules& rules, const TemplateSet& templates, const std::vector<std::string>& locales,
                       const std::vector<ToneUse>& uses) {
  Diagnostics findings;
  for (const auto& use : uses) {
    for (const auto& locale : locales) {
      for (Channel channel : use.channels) {
        const TemplateSet::Template* t = templates.find(locale, use.template_name, channel);
        if (!t) continue;
        check_template(rules, *t, locale, use, findings);
        if (channel == Channel::kSms) check_sms_length(rules, templates, *t, locale, use, findings);
      }
    }
  }
  return findings;
}

MessageContext tone_example(Kind kind, std::string_view locale, std::string_view rule) {
  const bool nl = locale == "nl";
  MessageContext c;
  c.rule = std::string(rule);
  c.kind = kind;
  c.locale = std::string(locale);
  c.time_zone = "Europe/Amsterdam";
  c.merchant = "Trattoria Da Marco";
  c.entities = {{"customer",
                 {{"id", "c-42"},
                  {"name", "Annemarie van den Bergh"},
                  {"email", "annemarie.vandenbergh@example.com"},
                  {"phone", "+31612345678"},
                  {"locale", locale},
                  {"timezone", "Europe/Amsterdam"},
                  {"prefers", "sms"},
                  {"delivered_orders", 1}}},
                {"order",
                 {{"id", "A-2026-104857"},
                  {"customer", "c-42"},
                  {"status", "cancelled"},
                  {"cancel_reason", nl ? "de keuken is vanavond overvol en kan geen bestellingen meer aan"
                                       : "the kitchen is overloaded tonight and cannot take more orders"},
                  {"total", 47.5},
                  {"currency", "EUR"},
                  {"merchant", "Trattoria Da Marco"},
                  {"promised_by", "2026-11-20T18:00:00+01:00"}}},
                {"shipment",
                 {{"id", "S-3SDEVC1234567"},
                  {"order", "A-2026-104857"},
                  {"status", "exception"},
                  {"carrier", "PostNL"},
                  {"tracking", "3SDEVC1234567"},
                  {"eta", "2026-11-21T14:30:00+01:00"},
                  {"exception_reason", nl ? "het adres was niet bereikbaar" : "the address could not be reached"}}},
                {"subscription",
                 {{"id", "SUB-88121"},
                  {"customer", "c-42"},
                  {"plan", nl ? "Pasta-abonnement Familie" : "Family pasta subscription"},
                  {"price", 39.95},
                  {"next_price", 44.95},
                  {"price_effective", "2027-01-01"},
                  {"price_reason", nl ? "onze leveranciers van meel en tomaten zijn flink duurder geworden"
                                      : "our suppliers of flour and tomatoes have raised their prices sharply"},
                  {"currency", "EUR"}}},
                {"payment",
                 {{"id", "P-55120"},
                  {"customer", "c-42"},
                  {"status", "overdue"},
                  {"amount", 89.95},
                  {"currency", "EUR"},
                  {"due_date", "2026-12-01"}}}};
  switch (kind) {
    case Kind::kApology:
    case Kind::kThankYou:
    case Kind::kFollowUp:
      c.entity = EntityRef{EntityType::kOrder, "A-2026-104857"};
      break;
    case Kind::kExplanation:
    case Kind::kHeadsUp:
      c.entity = EntityRef{EntityType::kShipment, "S-3SDEVC1234567"};
      break;
    case Kind::kPriceChangeReason:
      c.entity = EntityRef{EntityType::kSubscription, "SUB-88121"};
      break;
    case Kind::kCheckIn:
      c.entity = EntityRef{EntityType::kCustomer, "c-42"};
      break;
  }
  Contact earlier;
  earlier.customer = "c-42";
  earlier.at = *parse_rfc3339("2026-11-02T19:15:00+01:00");
  earlier.kind = Kind::kThankYou;
  earlier.rule = "first-order-thanks";
  earlier.entity = EntityRef{EntityType::kOrder, "A-2026-100311"};
  earlier.channel = Channel::kEmail;
  c.history.push_back(earlier);
  return c;
}

}  // namespace tactd
