// The console's pages: mustache templates embedded in the binary (like the
// built-in example data of render/tone.cpp), the style sheet, and the chart.
//
// Every value is rendered with {{double braces}}, which HTML-escape (& < > "
// '). The one triple brace, {{{content}}} in the layout, takes the page that
// was itself rendered from escaped values. No page has inline script or
// style: the Content-Security-Policy forbids both.
#include <kainjow/mustache.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <stdexcept>

#include "console/console.h"
#include "render/mustache_data.h"

namespace tactd {
namespace {

namespace mustache = kainjow::mustache;

constexpr std::string_view kLayout = R"html(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}} · tactd console</title>
<link rel="stylesheet" href="/console/console.css">
</head>
<body>
<a class="skip" href="#main">Skip to the content</a>
<header class="top">
<p class="brand">tactd console</p>
{{#signed_in}}
<nav aria-label="Console pages">
<ul>
{{#nav}}<li><a href="{{href}}"{{#current}} aria-current="page"{{/current}}>{{label}}</a></li>
{{/nav}}
</ul>
</nav>
<form method="post" action="/console/logout" class="logout">
<input type="hidden" name="csrf" value="{{csrf}}">
<button type="submit">Log out</button>
</form>
{{/signed_in}}
</header>
<main id="main" tabindex="-1">
{{{content}}}
</main>
</body>
</html>
)html";

constexpr std::string_view kLogin = R"html(<h1>Log in</h1>
{{#problem}}<p class="problem" role="alert">{{problem}}</p>{{/problem}}
<p>The console takes the admin token of this tactd ([admin] token_file).</p>
<form method="post" action="/console/login" class="login">
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Log in</button>
</form>
)html";

constexpr std::string_view kOutbox = R"html(<h1>Outbox</h1>
{{#notice}}<p class="notice" role="status">{{notice}}</p>{{/notice}}
{{#problem}}<p class="problem" role="alert">{{problem}}</p>{{/problem}}
<h2>Entries by status</h2>
<table class="counts">
<caption>How many outbox entries have each status; choose one to list its newest entries.</caption>
<thead><tr><th scope="col">Status</th><th scope="col">Entries</th></tr></thead>
<tbody>
{{#statuses}}<tr><th scope="row"><a href="/console/outbox?status={{name}}"{{#current}} aria-current="true"{{/current}}>{{name}}</a></th><td class="num">{{count}}</td></tr>
{{/statuses}}
</tbody>
</table>
<h2>The newest {{status}} entries</h2>
{{#has_rows}}
<table class="rows" id="entries">
<caption>Up to {{limit}} {{status}} entries, newest first; times in {{zone}}.</caption>
<thead><tr><th scope="col">Id</th><th scope="col">Kind</th><th scope="col">Rule</th><th scope="col">Customer</th><th scope="col">Channel</th><th scope="col">Due</th><th scope="col">Attempts</th><th scope="col">Last error</th><th scope="col">Actions</th></tr></thead>
<tbody>
{{#rows}}<tr id="entry-{{id}}" data-id="{{id}}">
<th scope="row">{{id}}</th><td>{{kind}}</td><td>{{rule}}</td><td>{{#customer}}<a href="/console/customer?q={{customer_query}}">{{customer}}</a>{{/customer}}</td><td>{{channel}}</td><td>{{due}}</td><td class="num">{{attempts}}</td><td class="error">{{last_error}}</td>
<td class="actions">{{#can_act}}<form method="post" action="/console/outbox/retry"><input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="id" value="{{id}}"><input type="hidden" name="status" value="{{status}}"><button type="submit" class="retry" aria-label="Retry entry {{id}}">Retry</button></form>
<form method="post" action="/console/outbox/drop"><input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="id" value="{{id}}"><input type="hidden" name="status" value="{{status}}"><button type="submit" class="drop" aria-label="Drop entry {{id}}">Drop</button></form>{{/can_act}}</td>
</tr>
{{/rows}}
</tbody>
</table>
{{/has_rows}}
{{^has_rows}}<p>No {{status}} entries.</p>{{/has_rows}}
)html";

constexpr std::string_view kCustomer = R"html(<h1>Customer timeline</h1>
<form method="get" action="/console/customer" role="search" class="search">
<label for="q">Customer id, email address or phone number</label>
<input id="q" name="q" type="search" value="{{q}}" required>
<button type="submit">Find</button>
</form>
{{#problem}}<p class="problem" role="alert">{{problem}}</p>{{/problem}}
{{#has_choices}}<h2>Customers with this contact detail</h2>
<ul>{{#choices}}<li><a href="/console/customer?q={{query}}">{{id}}</a></li>{{/choices}}</ul>{{/has_choices}}
{{#timeline}}
<h2 id="customer">{{customer}}{{#name}} ({{name}}){{/name}}</h2>
{{#truncated}}<p>Only the newest {{limit}} events are shown.</p>{{/truncated}}
{{#has_paused}}<p>Automated messages held back now:</p>
<ul>{{#paused}}<li>{{entity}} until {{until}}: {{reason}}</li>{{/paused}}</ul>{{/has_paused}}
<table class="rows" id="events">
<caption>What happened to {{customer}} and what they were told, oldest first; times in {{zone}}.</caption>
<thead><tr><th scope="col">Time</th><th scope="col">Event</th><th scope="col">About</th><th scope="col">What</th></tr></thead>
<tbody>
{{#events}}<tr class="event-{{type}}"><td><time datetime="{{at_utc}}">{{at}}</time></td><td>{{type}}</td><td>{{entity}}</td><td>{{summary}}{{#subject}}<p class="subject">Subject: {{subject}}</p>{{/subject}}{{#text}}<pre>{{text}}</pre>{{/text}}</td></tr>
{{/events}}
</tbody>
</table>
{{/timeline}}
)html";

constexpr std::string_view kRules = R"html(<h1>Rules: the last 24 hours</h1>
<p>From {{since}} to {{until}} ({{zone}}), read from the outbox and its decisions.{{#held_note}} {{held_note}}{{/held_note}}</p>
<h2>What each rule did</h2>
<table class="rows" id="rules">
<caption>Per rule: messages decided (fired), sent, held back by reason, overtaken and dead.</caption>
<thead><tr><th scope="col">Rule</th><th scope="col">Kind</th><th scope="col">Fired</th><th scope="col">Sent</th><th scope="col">Held back</th><th scope="col">Overtaken</th><th scope="col">Dead</th></tr></thead>
<tbody>
{{#rules}}<tr id="rule-{{id}}"><th scope="row">{{id}}</th><td>{{kind}}</td><td class="num">{{fired}}</td><td class="num">{{sent}}</td><td class="num">{{held}}{{#has_reasons}}<ul class="reasons">{{#reasons}}<li>{{reason}}: {{count}}</li>{{/reasons}}</ul>{{/has_reasons}}</td><td class="num">{{overtaken}}</td><td class="num">{{dead}}</td></tr>
{{/rules}}
</tbody>
</table>
<h2 id="chart-title">Messages per hour by kind</h2>
{{#chart}}
<figure class="chart">
<svg id="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {{width}} {{height}}" width="{{width}}" height="{{height}}" role="img" aria-labelledby="chart-title chart-desc">
<desc id="chart-desc">{{total}} messages decided in the last 24 hours, stacked by kind per hour; the table below gives the same figures.</desc>
<line class="axis" x1="{{left}}" y1="{{base}}" x2="{{right}}" y2="{{base}}"></line>
<line class="axis" x1="{{left}}" y1="{{top}}" x2="{{left}}" y2="{{base}}"></line>
{{#ticks}}<text class="tick" x="{{x}}" y="{{y}}" text-anchor="{{anchor}}">{{text}}</text>
{{/ticks}}
{{#bars}}<rect class="bar k-{{kind}}" x="{{x}}" y="{{y}}" width="{{w}}" height="{{h}}"><title>{{label}}</title></rect>
{{/bars}}
</svg>
<figcaption>
<ul class="legend">{{#kinds}}<li><span class="swatch k-{{.}}"></span>{{.}}</li>{{/kinds}}</ul>
</figcaption>
</figure>
<table class="rows" id="chart-table">
<caption>Messages per hour by kind (the chart's figures); hours in {{zone}}.</caption>
<thead><tr><th scope="col">Hour</th>{{#kinds}}<th scope="col">{{.}}</th>{{/kinds}}<th scope="col">All</th></tr></thead>
<tbody>
{{#rows}}<tr><th scope="row">{{hour}}</th>{{#counts}}<td class="num">{{.}}</td>{{/counts}}<td class="num">{{total}}</td></tr>
{{/rows}}
</tbody>
</table>
{{/chart}}
)html";

constexpr std::string_view kReloads = R"html(<h1>Reloads</h1>
<p>The last {{max}} reloads since this tactd started, newest first; times in {{zone}}.</p>
{{#has_reloads}}
<table class="rows" id="reloads">
<caption>Each reload (SIGHUP, systemctl reload tactd): whether it took effect and its problems.</caption>
<thead><tr><th scope="col">Time</th><th scope="col">Outcome</th><th scope="col">Problems</th></tr></thead>
<tbody>
{{#reloads}}<tr class="{{outcome_class}}"><td>{{at}}</td><td>{{outcome}}</td><td>{{#has_problems}}<ul class="problems">{{#problems}}<li><code>{{.}}</code></li>{{/problems}}</ul>{{/has_problems}}{{^has_problems}}none{{/has_problems}}</td></tr>
{{/reloads}}
</tbody>
</table>
{{/has_reloads}}
{{^has_reloads}}<p>No reload since tactd started.</p>{{/has_reloads}}
)html";

constexpr std::string_view kTemplates = R"html(<h1>Templates</h1>
<p>Every rule's message in each locale and channel, rendered with the built-in example data of its kind (what <code>tactd preview RULE</code> shows).</p>
{{#rules}}
<section class="rule" id="template-{{id}}">
<h2>{{id}}</h2>
<p>{{kind}}, template {{template}}</p>
{{#examples}}
<article class="example">
<h3>{{id}}: {{locale}}, {{channel}}</h3>
<p class="path"><code>{{path}}</code></p>
{{#error}}<p class="problem">{{error}}</p>{{/error}}
{{#subject}}<p class="subject">Subject: {{subject}}</p>{{/subject}}
{{#body}}<pre>{{body}}</pre>{{/body}}
{{#sms}}<p class="sms">{{sms}}</p>{{/sms}}
</article>
{{/examples}}
</section>
{{/rules}}
)html";

constexpr std::string_view kProblem = R"html(<h1>{{heading}}</h1>
<p class="problem" role="alert">{{message}}</p>
{{#back}}<p><a href="{{back}}">Back</a></p>{{/back}}
)html";

struct Page {
  std::string_view name;
  std::string_view source;
};
constexpr std::array kPages{Page{"login", kLogin},    Page{"outbox", kOutbox},   Page{"customer", kCustomer},
                            Page{"rules", kRules},    Page{"reloads", kReloads}, Page{"templates", kTemplates},
                            Page{"problem", kProblem}};

std::string render(std::string_view source, const nlohmann::json& data) {
  mustache::mustache tmpl{std::string(source)};
  if (!tmpl.is_valid()) throw std::logic_error("console template: " + tmpl.error_message());
  std::string out = tmpl.render(to_mustache(data));
  if (!tmpl.is_valid()) throw std::logic_error("console template: " + tmpl.error_message());
  return out;
}

}  // namespace

std::string render_console_page(std::string_view page, const nlohmann::json& data) {
  const auto found = std::find_if(kPages.begin(), kPages.end(), [&](const Page& p) { return p.name == page; });
  if (found == kPages.end()) throw std::invalid_argument("no console page '" + std::string(page) + "'");
  nlohmann::json layout = data;
  layout["content"] = render(found->source, data);
  return render(kLayout, layout);
}

nlohmann::json hourly_chart(const std::vector<Timestamp>& hours,
                            const std::map<std::string, std::vector<std::size_t>>& counts, std::string_view zone) {
  constexpr int kWidth = 760, kHeight = 240, kLeft = 44, kRight = 12, kTop = 12, kBottom = 28;
  const int base = kHeight - kBottom;
  const double slot = hours.empty() ? 0 : static_cast<double>(kWidth - kLeft - kRight) / hours.size();
  std::size_t highest = 0, total = 0;
  std::vector<std::size_t> totals(hours.size(), 0);
  for (const auto& [kind, per_hour] : counts)
    for (std::size_t i = 0; i < hours.size() && i < per_hour.size(); ++i) totals[i] += per_hour[i];
  for (std::size_t t : totals) {
    highest = std::max(highest, t);
    total += t;
  }
  const double scale = highest == 0 ? 0 : static_cast<double>(base - kTop) / highest;
  auto label_of = [&](Timestamp hour) {
    const std::string text = format_rfc3339(hour, zone);  // 2026-11-20T17:00:00+01:00
    return text.size() >= 16 ? text.substr(11, 5) : text;
  };
  auto fixed = [](double v) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.1f", v);
    return std::string(buffer);
  };

  nlohmann::json bars = nlohmann::json::array(), ticks = nlohmann::json::array(), rows = nlohmann::json::array();
  nlohmann::json kinds = nlohmann::json::array();
  for (const auto& [kind, per_hour] : counts) kinds.push_back(kind);
  for (std::size_t i = 0; i < hours.size(); ++i) {
    double y = base;
    nlohmann::json row_counts = nlohmann::json::array();
    for (const auto& [kind, per_hour] : counts) {
      const std::size_t n = i < per_hour.size() ? per_hour[i] : 0;
      row_counts.push_back(std::to_string(n));
      if (n == 0) continue;
      const double h = n * scale;
      y -= h;
      bars.push_back({{"kind", kind},
                      {"x", fixed(kLeft + i * slot + 1)},
                      {"y", fixed(y)},
                      {"w", fixed(std::max(1.0, slot - 2))},
                      {"h", fixed(h)},
                      {"label", label_of(hours[i]) + ": " + std::to_string(n) + " " + kind}});
    }
    rows.push_back({{"hour", label_of(hours[i])}, {"counts", row_counts}, {"total", std::to_string(totals[i])}});
    if (i % 3 == 0)
      ticks.push_back({{"x", fixed(kLeft + i * slot)},
                       {"y", std::to_string(kHeight - 8)},
                       {"anchor", "start"},
                       {"text", label_of(hours[i])}});
  }
  ticks.push_back({{"x", std::to_string(kLeft - 6)}, {"y", std::to_string(base)}, {"anchor", "end"}, {"text", "0"}});
  ticks.push_back({{"x", std::to_string(kLeft - 6)},
                   {"y", std::to_string(kTop + 8)},
                   {"anchor", "end"},
                   {"text", std::to_string(highest)}});
  return {{"width", std::to_string(kWidth)},
          {"height", std::to_string(kHeight)},
          {"left", std::to_string(kLeft)},
          {"right", std::to_string(kWidth - kRight)},
          {"top", std::to_string(kTop)},
          {"base", std::to_string(base)},
          {"total", std::to_string(total)},
          {"bars", bars},
          {"ticks", ticks},
          {"kinds", kinds},
          {"rows", rows}};
}

// The style sheet: served as /console/console.css, so that the pages need no
// inline style.
extern const std::string_view kConsoleCss;
const std::string_view kConsoleCss =
    R"css(:root { color-scheme: light; --ink: #1d1d1f; --muted: #5a5a60; --line: #c9c9cf; --accent: #1a5fb4; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, sans-serif; color: var(--ink); background: #fafafa; }
.skip { position: absolute; left: -9999px; top: 0; background: #fff; padding: .5em 1em; }
.skip:focus { left: 1em; top: 1em; z-index: 10; }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
header.top { display: flex; flex-wrap: wrap; align-items: center; gap: 1em; padding: .5em 1.5em; background: #fff; border-bottom: 1px solid var(--line); }
.brand { font-weight: 700; margin: 0; }
nav ul { display: flex; flex-wrap: wrap; gap: 1em; list-style: none; margin: 0; padding: 0; }
nav a[aria-current="page"] { font-weight: 700; text-decoration: none; border-bottom: 3px solid var(--accent); }
.logout { margin-left: auto; }
main { padding: 1em 1.5em 3em; max-width: 90em; }
main:focus { outline: none; }
a { color: var(--accent); }
table { border-collapse: collapse; margin: .5em 0 1.5em; background: #fff; }
caption { text-align: left; color: var(--muted); padding: .3em 0; }
th, td { border: 1px solid var(--line); padding: .3em .6em; text-align: left; vertical-align: top; }
thead th { background: #eef0f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.error { max-width: 24em; overflow-wrap: anywhere; }
td.actions form { display: inline; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f3f3f6; padding: .5em; margin: .3em 0; max-width: 60em; }
button { font: inherit; padding: .3em .9em; border: 1px solid var(--accent); border-radius: 4px; background: #fff; color: var(--accent); cursor: pointer; }
button:hover { background: #e8f0fb; }
button.drop { border-color: #a51d2d; color: #a51d2d; }
input { font: inherit; padding: .3em .5em; border: 1px solid var(--muted); border-radius: 4px; }
label { display: block; font-weight: 600; margin: .5em 0 .2em; }
.search label, .login label { display: block; }
.notice { background: #e6f4ea; border-left: 4px solid #2e7d32; padding: .5em 1em; }
.problem { background: #fdecea; border-left: 4px solid #a51d2d; padding: .5em 1em; }
.reasons, .problems { margin: .2em 0 0; padding-left: 1.2em; font-size: .9em; }
tr.refused td { background: #fff4f4; }
.chart svg { background: #fff; border: 1px solid var(--line); max-width: 100%; height: auto; }
.axis { stroke: var(--muted); stroke-width: 1; }
.tick { font-size: 11px; fill: var(--muted); }
.legend { display: flex; flex-wrap: wrap; gap: 1em; list-style: none; padding: 0; }
.swatch { display: inline-block; width: .9em; height: .9em; margin-right: .3em; vertical-align: middle; background: #888; }
.k-apology { fill: #c64600; background: #c64600; }
.k-explanation { fill: #1a5fb4; background: #1a5fb4; }
.k-price_change_reason { fill: #613583; background: #613583; }
.k-thank_you { fill: #26a269; background: #26a269; }
.k-heads_up { fill: #e5a50a; background: #e5a50a; }
.k-follow_up { fill: #0e7c86; background: #0e7c86; }
.k-check_in { fill: #865e3c; background: #865e3c; }
.example { border-top: 1px solid var(--line); padding-top: .5em; }
.path { color: var(--muted); margin: 0; }
)css";

}  // namespace tactd
