#include <algorithm>
#include <ostream>
#include <sstream>

#include "app/commands.h"
#include "app/observation_file.h"
#include "channels/delivery.h"
#include "pipeline/pipeline.h"
#include "render/tone.h"

namespace tactd {
namespace {

// The entity type a rule speaks about.
EntityType subject_of(const Rule& rule) { return rule.trigger ? rule.trigger->entity : rule.deadline->entity; }

void print(const Rendered& rendered, Channel channel, std::ostream& out) {
  if (rendered.subject) out << "Subject: " << *rendered.subject << "\n\n";
  out << rendered.body << "\n";
  if (channel == Channel::kSms) {
    const SmsLength length = sms_length(rendered.body);
    out << "(" << length.characters << " characters, " << length.segments
        << (length.segments == 1 ? " segment, " : " segments, ") << (length.unicode ? "UCS-2" : "GSM-7") << ")\n";
  }
}

// Where the message would go: the customer's address in the data, or an
// example one.
std::string recipient(const MessageContext& context, Channel channel) {
  const char* field = channel == Channel::kEmail ? "email" : "phone";
  const nlohmann::json& customer = context.entities.contains("customer") ? context.entities["customer"] : nullptr;
  if (customer.is_object() && customer.contains(field) && customer[field].is_string())
    return customer[field].get<std::string>();
  return channel == Channel::kEmail ? "customer@example.com" : "+31612345678";
}

// The request the configured channel would send for `rendered`, secrets masked.
bool print_request(const Config& config, const Rule& rule, const MessageContext& context, Channel channel,
                   const Rendered& rendered, std::ostream& out, std::ostream& err) {
  auto found = std::find_if(config.channels.begin(), config.channels.end(),
                            [channel](const ChannelConfig& c) { return c.channel == channel; });
  if (found == config.channels.end()) {
    out << "(no [[channel]] for " << to_string(channel) << ": nothing would be sent yet)\n";
    return true;
  }
  Notification n;
  n.idempotency_key = rule.id + "/" + context.entity.str() + "/preview";
  n.at = SystemClock().now();
  n.rule = rule.id;
  n.kind = rule.kind;
  n.entity = context.entity;
  n.channel = channel;
  n.to = recipient(context, channel);
  n.subject = rendered.subject;
  n.body = rendered.body;
  n.locale = context.locale;
  n.time_zone = context.time_zone;
  std::string error;
  if (auto request = describe_request(*found, n, n.at, error)) {
    out << "-- request (" << found->provider << ")\n" << *request << "\n";
    return true;
  }
  err << rule.id << ", " << context.locale << ", " << to_string(channel) << ": " << error << "\n";
  return false;
}

}  // namespace

int preview(const PreviewOptions& options, std::ostream& out, std::ostream& err) {
  Diagnostics errors;
  auto snapshot = load_snapshot(options.config, errors);
  for (const auto& e : errors) err << e.str() << "\n";
  if (!snapshot) return kExitUnusable;
  const Rule* rule = snapshot->rules->find(options.rule);
  if (!rule) {
    err << "tactd: no rule '" << options.rule << "' in " << snapshot->config->rules_dir.string() << "\n";
    return kExitUnusable;
  }

  // The data: the last entity of the rule's type in the observations, or
  // the built-in example.
  std::optional<MessageContext> context;
  std::string about = "the built-in example data";
  int rejected = 0;
  if (options.observations) {
    ObservationFile input;
    if (!input.open(*options.observations, err)) return kExitUnusable;
    auto store = Store::open_temporary();
    VirtualClock clock{Timestamp{}};
    Pipeline pipeline(*snapshot, *store, clock);
    std::vector<EntityRef> seen;  // entities of the rule's type, most recently observed last
    while (auto observation = input.next(err)) {
      clock.advance_to(observation->observed_at);
      (void)pipeline.apply(*observation);  // state only: nothing is sent or printed
      if (observation->ref.type != subject_of(*rule)) continue;
      std::erase(seen, observation->ref);
      seen.push_back(observation->ref);
    }
    rejected = input.rejected();
    std::optional<EntityRef> subject;
    for (auto it = seen.rbegin(); it != seen.rend() && !subject; ++it)
      if ((context = pipeline.preview_context(*rule, *it))) subject = *it;
    if (!subject) {
      err << input.source() << ": no " << to_string(subject_of(*rule)) << " for which rule '" << rule->id
          << "' would fire\n";
      return kExitRejected;
    }
    about = subject->str() + " from " + input.source();
  }

  bool failed = false;
  const auto examples = render_examples(*snapshot, *rule, [&](const std::string& locale) {
    if (!options.observations) return tone_example(rule->kind, locale, rule->id);
    MessageContext observed = *context;
    observed.locale = locale;
    return observed;
  });
  for (const auto& example : examples) {
    out << "== " << rule->id << ": " << example.locale << ", " << to_string(example.channel) << " ("
        << example.path.string() << ", " << about << ")\n";
    if (example.rendered) {
      print(*example.rendered, example.channel, out);
      if (options.request) {
        MessageContext request_context =
            options.observations ? *context : tone_example(rule->kind, example.locale, rule->id);
        request_context.locale = example.locale;
        if (!print_request(*snapshot->config, *rule, request_context, example.channel, *example.rendered, out, err))
          failed = true;
      }
    } else {
      err << example.error << "\n";
      failed = true;
    }
    out << "\n";
  }
  return failed || rejected > 0 ? kExitRejected : kExitOk;
}

}  // namespace tactd
