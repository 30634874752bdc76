// Time zones for cron schedules, from Postgres' own tz database (pg_tzset),
// so a schedule's zone means what the same name means in timestamptz
// arithmetic, and the server never touches the process's TZ.
#pragma once

#include <cstdint>
#include <string>

#include "core/cron.h"

extern "C" {
#include "postgres.h"
#include "datatype/timestamp.h"
}

struct pg_tz;

namespace cachekit::pg {

class PgZone : public cachekit::Zone {
 public:
  // Throws 22023 for a name Postgres does not know.
  static PgZone named(const std::string &name);
  const std::string &name() const { return name_; }
  CivilTime to_local(int64_t utc_seconds) const override;
  int64_t utc_offset_at(int64_t utc_seconds) const override;

 private:
  PgZone(pg_tz *tz, std::string name) : tz_(tz), name_(std::move(name)) {}
  pg_tz *tz_;
  std::string name_;
};

int64_t timestamptz_to_unix(TimestampTz t);
TimestampTz unix_to_timestamptz(int64_t seconds);

}  // namespace cachekit::pg
