#include "model/clock.h"

namespace tactd {

Timestamp SystemClock::now() const { return std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now()); }

Timestamp VirtualClock::advance_to(Timestamp t) {
  if (t > now_) now_ = t;
  return now_;
}

}  // namespace tactd
