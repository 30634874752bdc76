#include "pg/pg_zone.h"

#include "core/error.h"
#include "pg/boundary.h"

extern "C" {
#include "pgtime.h"
#include "utils/timestamp.h"
}

namespace cachekit::pg {

PgZone PgZone::named(const std::string &name) {
  // pg_tzset() caches zones for the backend's life: the pointer stays valid.
  pg_tz *tz = pg_call([&] { return pg_tzset(name.c_str()); });
  if (tz == nullptr)
    throw Error(sqlstate::kInvalidParameterValue, "time zone \"" + name + "\" not recognized", "",
                "See pg_timezone_names for the names the server knows.");
  return PgZone(tz, name);
}

CivilTime PgZone::to_local(int64_t utc_seconds) const {
  pg_time_t t = static_cast<pg_time_t>(utc_seconds);
  struct pg_tm *tm = pg_localtime(&t, tz_);
  if (tm == nullptr) throw Error(sqlstate::kNumericValueOutOfRange, "time out of range");
  return CivilTime{tm->tm_year + 1900, tm->tm_mon + 1, tm->tm_mday,
                   tm->tm_hour,        tm->tm_min,     tm->tm_sec};
}

int64_t PgZone::utc_offset_at(int64_t utc_seconds) const {
  pg_time_t t = static_cast<pg_time_t>(utc_seconds);
  struct pg_tm *tm = pg_localtime(&t, tz_);
  if (tm == nullptr) throw Error(sqlstate::kNumericValueOutOfRange, "time out of range");
  return tm->tm_gmtoff;
}

int64_t timestamptz_to_unix(TimestampTz t) {
  return (t / USECS_PER_SEC) +
         (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * static_cast<int64_t>(SECS_PER_DAY);
}

TimestampTz unix_to_timestamptz(int64_t seconds) {
  return (seconds -
          (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * static_cast<int64_t>(SECS_PER_DAY)) *
         USECS_PER_SEC;
}

}  // namespace cachekit::pg
