// Errors raised by the pure C++ core.
//
// The core never includes Postgres headers, so an error carries its SQLSTATE as
// the five characters Postgres documents; the glue turns them into an errcode
// with MAKE_SQLSTATE. Messages follow Postgres style (lower case, no period)
// and never contain secrets such as a Redis password.
#pragma once

#include <stdexcept>
#include <string>

namespace cachekit {

namespace sqlstate {
inline constexpr const char kNullValueNotAllowed[] = "22004";
inline constexpr const char kInvalidParameterValue[] = "22023";
inline constexpr const char kInvalidTextRepresentation[] = "22P02";
inline constexpr const char kCharacterNotInRepertoire[] = "22021";
inline constexpr const char kProgramLimitExceeded[] = "54000";
inline constexpr const char kConnectionFailure[] = "08006";
inline constexpr const char kUnableToConnect[] = "08001";
inline constexpr const char kWrongObjectType[] = "42809";
inline constexpr const char kDatatypeMismatch[] = "42804";
inline constexpr const char kOutOfMemory[] = "53200";
inline constexpr const char kSystemError[] = "58000";
inline constexpr const char kFeatureNotSupported[] = "0A000";
inline constexpr const char kObjectNotInPrerequisiteState[] = "55000";
inline constexpr const char kNumericValueOutOfRange[] = "22003";
inline constexpr const char kInternalError[] = "XX000";
inline constexpr const char kConfigFileError[] = "F0000";
inline constexpr const char kInsufficientPrivilege[] = "42501";
inline constexpr const char kUndefinedTable[] = "42P01";
inline constexpr const char kQueryCanceled[] = "57014";
}  // namespace sqlstate

class Error : public std::runtime_error {
 public:
  Error(const char *sqlstate, const std::string &message, std::string detail = {},
        std::string hint = {})
      : std::runtime_error(message), detail_(std::move(detail)), hint_(std::move(hint)) {
    for (int i = 0; i < 5; ++i) sqlstate_[i] = sqlstate[i];
    sqlstate_[5] = '\0';
  }

  const char *sqlstate() const noexcept { return sqlstate_; }
  const std::string &detail() const noexcept { return detail_; }
  const std::string &hint() const noexcept { return hint_; }

 private:
  char sqlstate_[6];
  std::string detail_;
  std::string hint_;
};

}  // namespace cachekit
