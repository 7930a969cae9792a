#include "render/mustache_data.h"
#include "render/render.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <mutex>
#include <sstream>

#include <kainjow/mustache.hpp>

namespace tactd {
namespace {

namespace mustache = kainjow::mustache;

constexpr std::string_view kExtension = ".mustache";
constexpr std::string_view kSubjectPrefix = "Subject:";

// Plain text out: customer data is not HTML-escaped in plain-text bodies,
// so `{{x}}` and `{{{x}}}` are the same.
std::string no_escape(const std::string& s) { return s; }

// Where kainjow's "... at <offset>" points within `text`, as a line (0-based,
// relative to the text) and a column (1-based, in characters); nullopt when
// the message names no offset.
std::optional<std::pair<int, int>> locate(const std::string& message, const std::string& text) {
  const auto at = message.rfind(" at ");
  if (at == std::string::npos) return std::nullopt;
  size_t offset = 0;
  const char* first = message.data() + at + 4;
  const char* last = message.data() + message.size();
  auto [end, ec] = std::from_chars(first, last, offset);
  if (ec != std::errc{} || end != last) return std::nullopt;
  offset = std::min(offset, text.size());
  int line = 0;
  int column = 1;
  for (size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {  // not a UTF-8 continuation byte
      ++column;
    }
  }
  return std::pair{line, column};
}

// kainjow's message, said for an operator: what is wrong and what is right.
std::string explain(const std::string& message) {
  const auto quoted = [&] {
    const auto open = message.find('"');
    const auto close = message.rfind('"');
    return open < close && close != std::string::npos ? message.substr(open + 1, close - open - 1) : std::string();
  };
  if (message.rfind("Unclosed section", 0) == 0)
    return "the section {{#" + quoted() + "}} is never closed; end it with {{/" + quoted() + "}}";
  if (message.rfind("Unopened section", 0) == 0)
    return "{{/" + quoted() + "}} closes a section that was never opened with {{#" + quoted() + "}}";
  if (message.rfind("Unclosed tag", 0) == 0) return "a tag opened with {{ is never closed with }}";
  if (message.rfind("Invalid set delimiter", 0) == 0) return "invalid delimiter change; it looks like {{=<% %>=}}";
  return "template syntax: " + message;
}

bool blank(std::string_view line) { return line.find_first_not_of(" \t\r") == std::string_view::npos; }

// Drops trailing spaces, collapses runs of blank lines into one blank line,
// and trims blank lines at both ends.
std::string tidy_body(const std::string& body) {
  std::string out;
  bool pending_blank = false;
  std::istringstream lines(body);
  for (std::string line; std::getline(lines, line);) {
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    if (line.empty()) {
      pending_blank = !out.empty();
      continue;
    }
    if (!out.empty()) out += pending_blank ? "\n\n" : "\n";
    pending_blank = false;
    out += line;
  }
  return out;
}

// One line, single spaces.
std::string tidy_subject(const std::string& subject) {
  std::string out;
  std::istringstream words(subject);
  for (std::string word; words >> word;) out += (out.empty() ? "" : " ") + word;
  return out;
}

// Checks mustache syntax of `source`, which starts in the file at
// `first_line`:`first_column`; appends a diagnostic for `file` when broken.
bool valid(const std::string& source, const std::filesystem::path& file, int first_line, int first_column,
           Diagnostics& errors) {
  mustache::mustache tmpl{source};
  if (tmpl.is_valid()) return true;
  const auto place = locate(tmpl.error_message(), source);
  const int line = place ? first_line + place->first : first_line;
  const int column = !place ? 0 : place->first == 0 ? first_column - 1 + place->second : place->second;
  errors.push_back(Diagnostic{file.string(), line, column, explain(tmpl.error_message())});
  return false;
}

}  // namespace

mustache::data to_mustache(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::object: {
      mustache::data out{mustache::data::type::object};
      for (auto it = value.begin(); it != value.end(); ++it)
        if (!it.value().is_null() && it.value() != "") out.set(it.key(), to_mustache(it.value()));
      return out;
    }
    case nlohmann::json::value_t::array: {
      mustache::data out{mustache::data::type::list};
      for (const auto& element : value) out.push_back(to_mustache(element));
      return out;
    }
    case nlohmann::json::value_t::string:
      return mustache::data{value.get<std::string>()};
    case nlohmann::json::value_t::boolean:
      return mustache::data{value.get<bool>()};
    case nlohmann::json::value_t::null:
      return mustache::data{false};
    default:
      return mustache::data{value.dump()};
  }
}

// The parsed subject and body. kainjow's render() is not const (it records
// errors in the template), so renders of one template take turns; parsing
// each time instead cost a tenth of the pipeline's CPU.
struct TemplateSet::Compiled {
  std::mutex turn;
  mustache::mustache subject;
  mustache::mustache body;

  Compiled(const std::string& subject_source, const std::string& body_source)
      : subject(subject_source), body(body_source) {
    subject.set_custom_escape(no_escape);
    body.set_custom_escape(no_escape);
  }
};

std::shared_ptr<const TemplateSet> TemplateSet::load(const std::filesystem::path& dir, Diagnostics& errors) {
  auto set = std::make_shared<TemplateSet>();
  set->dir_ = dir;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    errors.push_back(Diagnostic{dir.string(), 0, 0, "the templates folder does not exist"});
    return set;
  }
  std::vector<std::filesystem::path> files;
  for (const auto& locale_dir : std::filesystem::directory_iterator(dir, ec)) {
    if (!locale_dir.is_directory()) {
      if (locale_dir.path().extension() == kExtension)
        errors.push_back(Diagnostic{
            locale_dir.path().string(), 0, 0,
            "a template belongs in a locale folder, like " + (dir / "en" / locale_dir.path().filename()).string()});
      continue;
    }
    for (const auto& entry : std::filesystem::directory_iterator(locale_dir.path(), ec))
      if (entry.is_regular_file() && entry.path().extension() == kExtension) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    const std::string locale = path.parent_path().filename().string();
    const std::string stem = path.stem().string();  // <name>.<channel>
    const auto dot = stem.rfind('.');
    if (dot == std::string::npos || dot == 0) {
      errors.push_back(
          Diagnostic{path.string(), 0, 0, "a template file is named <name>.<channel>.mustache, like x.email.mustache"});
      continue;
    }
    auto channel = parse_channel(stem.substr(dot + 1));
    if (!channel) {
      errors.push_back(Diagnostic{path.string(), 0, 0,
                                  "unknown channel '" + stem.substr(dot + 1) + "' in the file name (email or sms)"});
      continue;
    }
    std::ifstream in(path, std::ios::binary);
    std::stringstream buffer;
    buffer << in.rdbuf();
    if (!in) {
      errors.push_back(Diagnostic{path.string(), 0, 0, "cannot read the template"});
      continue;
    }
    Template t;
    t.path = path;
    std::string text = buffer.str();
    if (*channel == Channel::kEmail) {
      std::istringstream lines(text);
      std::string subject_line, blank_line;
      const bool has_subject = std::getline(lines, subject_line) && std::getline(lines, blank_line) &&
                               subject_line.rfind(kSubjectPrefix, 0) == 0 && blank(blank_line);
      if (!has_subject) {
        errors.push_back(Diagnostic{path.string(), 1, 1,
                                    "an email template starts with 'Subject: ...' and a blank line before the body"});
        continue;
      }
      t.subject = subject_line.substr(kSubjectPrefix.size());
      t.body = text.substr(std::min(text.size(), subject_line.size() + blank_line.size() + 2));
      t.body_line = 3;
      if (!valid(t.subject, path, 1, static_cast<int>(kSubjectPrefix.size()) + 1, errors)) continue;
    } else {
      t.body = text;
    }
    if (!valid(t.body, path, t.body_line, 1, errors)) continue;
    t.compiled = std::make_shared<Compiled>(t.subject, t.body);
    set->templates_.emplace(std::make_tuple(locale, stem.substr(0, dot), *channel), std::move(t));
  }
  return set;
}

bool TemplateSet::has(std::string_view locale, std::string_view name, Channel channel) const {
  return templates_.count(std::make_tuple(std::string(locale), std::string(name), channel)) > 0;
}

std::filesystem::path TemplateSet::path_of(std::string_view locale, std::string_view name, Channel channel) const {
  return dir_ / std::string(locale) / (std::string(name) + "." + std::string(to_string(channel)) + ".mustache");
}

std::optional<Rendered> TemplateSet::render(std::string_view locale, std::string_view name, Channel channel,
                                            const nlohmann::json& data, std::string& error) const {
  auto it = templates_.find(std::make_tuple(std::string(locale), std::string(name), channel));
  if (it == templates_.end()) {
    error = "no template " + path_of(locale, name, channel).string();
    return std::nullopt;
  }
  const Template& t = it->second;
  const mustache::data view = to_mustache(data);
  std::lock_guard turn(t.compiled->turn);
  auto run = [&](mustache::mustache& tmpl, const std::string& source) -> std::optional<std::string> {
    std::string out = tmpl.render(view);
    if (!tmpl.is_valid()) {
      error = t.path.string() + ": " + tmpl.error_message();
      tmpl = mustache::mustache{source};  // the error stays in it otherwise
      tmpl.set_custom_escape(no_escape);
      return std::nullopt;
    }
    return out;
  };
  Rendered rendered;
  auto body = run(t.compiled->body, t.body);
  if (!body) return std::nullopt;
  rendered.body = tidy_body(*body);
  if (channel == Channel::kEmail) {
    auto subject = run(t.compiled->subject, t.subject);
    if (!subject) return std::nullopt;
    rendered.subject = tidy_subject(*subject);
  }
  return rendered;
}

std::set<std::string> unguarded_names(std::string_view source) {
  const auto trim = [](std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
  };
  std::set<std::string> names;
  std::string open = "{{";
  std::string close = "}}";
  int depth = 0;  // sections open around the current position
  const auto show = [&](std::string_view name) {
    if (depth == 0 && !name.empty() && name != ".") names.emplace(name);
  };
  for (size_t at = source.find(open); at != std::string_view::npos; at = source.find(open, at)) {
    size_t start = at + open.size();
    const bool triple = open == "{{" && source.substr(start, 1) == "{";
    const std::string closing = triple ? "}}}" : close;
    if (triple) ++start;
    const size_t end = source.find(closing, start);
    if (end == std::string_view::npos) break;  // load() reports it
    const std::string_view tag = trim(source.substr(start, end - start));
    at = end + closing.size();
    if (tag.empty()) continue;
    if (triple) {
      show(tag);
      continue;
    }
    switch (tag.front()) {
      case '!':  // a comment
      case '>':  // a partial
        break;
      case '=':  // new delimiters: "=<% %>="
        if (tag.size() > 2 && tag.back() == '=') {
          const std::string_view pair = trim(tag.substr(1, tag.size() - 2));
          const size_t space = pair.find_first_of(" \t");
          if (space != std::string_view::npos) {
            open = std::string(pair.substr(0, space));
            close = std::string(trim(pair.substr(space)));
          }
        }
        break;
      case '#':
      case '^':
        ++depth;
        break;
      case '/':
        depth = std::max(0, depth - 1);
        break;
      case '&':
        show(trim(tag.substr(1)));
        break;
      default:
        show(tag);
    }
  }
  return names;
}

std::string entity_field_of(std::string_view name) {
  const size_t dot = name.find('.');
  if (dot == std::string_view::npos || !parse_entity_type(name.substr(0, dot))) return "";
  const std::string_view type = name.substr(0, dot);
  std::string_view rest = name.substr(dot + 1);
  if (rest.starts_with("raw.")) rest.remove_prefix(4);
  const std::string_view field = rest.substr(0, rest.find('.'));
  if (field.empty() || field == "id" || field == "sent" || field == "received" || field == "replied_at" ||
      field == "raw")
    return "";  // always there, derived (pipeline/linked.cpp)
  if (type == "customer" && field == "first_name") return "customer.name";
  return std::string(type) + "." + std::string(field);
}

}  // namespace tactd
