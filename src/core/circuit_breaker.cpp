#include "core/circuit_breaker.h"

namespace cachekit {

bool CircuitBreaker::allow(int64_t now_ms) {
  switch (state_) {
    case State::kClosed:
      return true;
    case State::kOpen:
      if (now_ms < open_until_ms_) return false;
      // The interval has passed: let exactly one call through.
      state_ = State::kHalfOpen;
      return true;
    case State::kHalfOpen:
      // The trial call is still in flight; everybody else waits for its outcome.
      return false;
  }
  return false;
}

void CircuitBreaker::record_success() {
  state_ = State::kClosed;
  open_until_ms_ = 0;
  consecutive_failures_ = 0;
  outage_warned_ = false;
}

void CircuitBreaker::record_failure(int64_t now_ms) {
  ++consecutive_failures_;
  if (state_ == State::kClosed) ++outages_;
  state_ = State::kOpen;
  last_failure_ms_ = now_ms;
  open_until_ms_ = now_ms + (retry_interval_ms_ > 0 ? retry_interval_ms_ : 0);
}

void CircuitBreaker::set_retry_interval(int64_t ms) {
  retry_interval_ms_ = ms;
  if (state_ == State::kOpen) open_until_ms_ = last_failure_ms_ + (ms > 0 ? ms : 0);
}

void CircuitBreaker::reset() {
  state_ = State::kClosed;
  open_until_ms_ = 0;
  consecutive_failures_ = 0;
  outage_warned_ = false;
}

const char *CircuitBreaker::state_name(State s) {
  switch (s) {
    case State::kClosed:
      return "closed";
    case State::kOpen:
      return "open";
    case State::kHalfOpen:
      return "half-open";
  }
  return "unknown";
}

bool CircuitBreaker::take_outage_warning() {
  // Not in an outage: nothing to warn about.
  if (state_ == State::kClosed && consecutive_failures_ == 0) return false;
  if (outage_warned_) return false;
  outage_warned_ = true;
  return true;
}

}  // namespace cachekit
