// The intake adapter: what sources commit goes through the pipeline, one
// batch in one transaction with the source's cursor (DESIGN.md invariant 2).
#pragma once

#include <functional>

#include "pipeline/pipeline.h"
#include "sources/source.h"

namespace tactd {

class PipelineIntake final : public Intake {
 public:
  // Told of each committed batch and what it led to (for logs and metrics).
  using OutcomeSink = std::function<void(std::span<const Observation>, const Outcome&)>;
  // Told of each batch that could not be committed (a full disk, a
  // read-only state file, a lock held too long), with the store's error.
  using FailureSink = std::function<void(const std::string& error)>;

  // `pipeline` and `cursors` must outlive the intake. Call on the loop.
  // `partial` is the source's default for observations that do not say
  // whether they are partial (Observation::partial).
  PipelineIntake(Pipeline& pipeline, const CursorStore& cursors, bool partial, OutcomeSink on_outcome,
                 FailureSink on_failure = {})
      : pipeline_(pipeline),
        cursors_(cursors),
        partial_(partial),
        on_outcome_(std::move(on_outcome)),
        on_failure_(std::move(on_failure)) {}

  // A StoreError becomes `false` with its message: the source keeps its
  // input and tries again later.
  bool commit(std::span<const Observation> observations, const SourceCursor* cursor, std::string& error) override;
  std::optional<std::string> cursor(const std::string& source) override { return cursors_.cursor(source); }
  FiberScheduler* fibers() const override { return pipeline_.fibers(); }

 private:
  Pipeline& pipeline_;
  const CursorStore& cursors_;
  bool partial_;
  OutcomeSink on_outcome_;
  FailureSink on_failure_;
};

}  // namespace tactd
