// The one clock interface (DESIGN.md invariant 3). `run` uses SystemClock;
// `simulate` and tests use VirtualClock, so time-dependent logic is tested
// without sleeping. Nothing below daemon/app calls system_clock::now().
#pragma once

#include "model/time.h"

namespace tactd {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Timestamp now() const = 0;
};

// Wall-clock time; only daemon/app creates one.
class SystemClock final : public Clock {
 public:
  Timestamp now() const override;
};

// A clock that moves only when told to. Never moves backwards.
class VirtualClock final : public Clock {
 public:
  explicit VirtualClock(Timestamp start) : now_(start) {}
  Timestamp now() const override { return now_; }
  // Moves to `t` if it is later than now; returns the time now.
  Timestamp advance_to(Timestamp t);

 private:
  Timestamp now_;
};

}  // namespace tactd
