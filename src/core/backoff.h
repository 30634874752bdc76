// Retry timing for failed tasks and rate-limited HTTP calls.
//
// The delay curve is River's: base * attempt^4 seconds, capped, with jitter so that tasks
// that failed together do not retry together. Randomness comes from the caller (a number
// u in [0, 1)) so that the curve is testable and the caller picks the generator.
#pragma once

#include <cstdint>
#include <string>

namespace cachekit {

struct BackoffPolicy {
  double base_seconds = 1.0;
  double max_seconds = 3600;  // cachekit.task_max_backoff
  double jitter = 0.1;        // fraction of the delay, 0-1
};

// Seconds to wait before attempt `attempt` + 1, after `attempt` failures (attempt < 1 is
// treated as 1). The central value c = min(max_seconds, base_seconds * attempt^4) is
// non-decreasing in attempt. The delay is drawn uniformly, by u, from
// [c * (1 - jitter), min(c * (1 + jitter), max_seconds)]: jitter never takes a delay above
// the cap (a task capped at one hour waits at most one hour), and capped retries are still
// spread over [max * (1 - jitter), max] instead of piling up on the cap. Never negative
// or infinite: NaN inputs count as 0, u is clamped to [0, 1), jitter to [0, 1], a negative
// base or cap to 0, and an infinite cap means no cap.
double retry_delay_seconds(const BackoffPolicy &p, int attempt, double u);

// A Retry-After header value (RFC 9110 section 10.2.3) as seconds from now_utc (epoch
// seconds): delta-seconds ("120") or an HTTP-date in any of the three formats recipients
// must accept (IMF-fixdate "Wed, 21 Oct 2015 07:28:00 GMT", RFC 850
// "Wednesday, 21-Oct-15 07:28:00 GMT", asctime "Wed Oct 21 07:28:00 2015"). A date in the
// past, or a negative delta ("-5", which no server should send), gives 0: retry now.
// Anything else, including an empty value, gives -1, meaning "no usable hint; use the
// backoff policy".
double parse_retry_after(const std::string &value, int64_t now_utc);

}  // namespace cachekit
