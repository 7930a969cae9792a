// The pipeline and the reply desk of the shipped configuration (with an
// [inbound] table) over a temporary store, on a virtual clock: for the story
// tests of replies and of what the support desk sees of them.
#pragma once

#include <catch2/catch.hpp>

#include <filesystem>
#include <memory>
#include <string>

#include "config/config.h"
#include "inbound/reply_desk.h"
#include "model/clock.h"
#include "pipeline/pipeline.h"
#include "scenario/scenario.h"
#include "support/temp_dir.h"

namespace tactd::test {

class ReplyStory {
 public:
  // The shipped configuration, or the one of `config_file`, with `inbound`.
  explicit ReplyStory(const std::filesystem::path& config_file = source_dir() / "config/tactd.toml",
                      InboundConfig inbound = {})
      : clock(*parse_rfc3339("2026-11-20T09:00:00+01:00")) {
    Diagnostics errors;
    auto loaded = load_snapshot(config_file, errors);
    for (const auto& e : errors) UNSCOPED_INFO(e.str());
    REQUIRE(loaded);
    Config with_inbound = *loaded->config;
    with_inbound.inbound = std::move(inbound);
    config = std::make_shared<const Config>(std::move(with_inbound));
    loaded->config = config;
    snapshot = std::move(*loaded);
    pipeline = std::make_unique<Pipeline>(snapshot, *store, clock);
    desk = std::make_unique<ReplyDesk>(clock);
  }

  // Applies one observation (a JSON line) at `when`.
  Outcome observe(const std::string& line, const char* when) {
    clock.advance_to(*parse_rfc3339(when));
    std::string error;
    auto observation = parse_observation(line, error);
    REQUIRE(observation);
    return pipeline->apply(*observation);
  }

  // Receives a reply at `when`, as the daemon does (received()).
  ReplyOutcome receive(const InboundMessage& message, const char* when) {
    clock.advance_to(*parse_rfc3339(when));
    auto transaction = store->begin();
    ReplyOutcome out = desk->receive(*transaction, message, *config);
    transaction->commit();
    if (out.reply.id != 0) pipeline->changed_outside(out.reply.customer);
    return out;
  }

  VirtualClock clock;
  std::shared_ptr<const Config> config;
  Snapshot snapshot;
  StoryState store;
  std::unique_ptr<Pipeline> pipeline;
  std::unique_ptr<ReplyDesk> desk;
};

}  // namespace tactd::test
