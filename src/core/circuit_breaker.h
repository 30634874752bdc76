// Circuit breaker for one Redis connection of one backend.
//
// While Redis is down every cache call must cost microseconds, not a connect
// timeout. After a failure the breaker opens; calls are refused without
// touching the network until retry_interval_ms has passed, then exactly one
// call is let through (half-open). Its success closes the breaker; its failure
// re-opens it for another interval.
//
// The breaker also remembers whether the current outage has been reported, so
// that callers can emit one WARNING per outage instead of one per call.
// Time is passed in by the caller (milliseconds on a monotonic clock) so the
// state machine is testable without sleeping.
#pragma once

#include <cstdint>

namespace cachekit {

class CircuitBreaker {
 public:
  enum class State { kClosed, kOpen, kHalfOpen };

  explicit CircuitBreaker(int64_t retry_interval_ms = 1000)
      : retry_interval_ms_(retry_interval_ms) {}

  // Takes effect at once: an open breaker re-computes when it lets the next
  // call through from the time of the last failure.
  void set_retry_interval(int64_t ms);
  int64_t retry_interval() const { return retry_interval_ms_; }

  // May a call go to the network now? Moves kOpen to kHalfOpen once the
  // interval has passed.
  bool allow(int64_t now_ms);
  void record_success();
  void record_failure(int64_t now_ms);
  // Forgets the current outage (closed, no failures, warning re-armed), e.g.
  // when the endpoint changed. outages() is kept.
  void reset();

  State state() const { return state_; }
  static const char *state_name(State s);
  uint64_t consecutive_failures() const { return consecutive_failures_; }
  uint64_t outages() const { return outages_; }
  int64_t open_until_ms() const { return open_until_ms_; }

  // True the first time it is asked during an outage (since the last success).
  bool take_outage_warning();

 private:
  int64_t retry_interval_ms_;
  State state_ = State::kClosed;
  int64_t open_until_ms_ = 0;
  int64_t last_failure_ms_ = 0;
  uint64_t consecutive_failures_ = 0;
  uint64_t outages_ = 0;  // closed -> open transitions
  bool outage_warned_ = false;
};

}  // namespace cachekit
