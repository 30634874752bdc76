#include "pg/kv_keys.h"

#include "core/keys.h"
#include "pg/boundary.h"
#include "pg/guc.h"

extern "C" {
#include "commands/dbcommands.h"
#include "miscadmin.h"
}

namespace cachekit::pg {

namespace {

// A connected database cannot be renamed (ALTER DATABASE ... RENAME refuses
// while anyone uses it), so its name is read once per backend.
const std::string &database_name() {
  static std::string name;
  if (name.empty()) {
    const char *n = pg_call([] { return get_database_name(MyDatabaseId); });
    if (n == nullptr)
      throw Error(sqlstate::kObjectNotInPrerequisiteState, "current database has no name");
    name = n;
  }
  return name;
}

std::string_view current_namespace() {
  if (settings.kv_namespace != nullptr && settings.kv_namespace[0] != '\0')
    return settings.kv_namespace;
  return database_name();
}

}  // namespace

std::string kv_key(std::string_view key) {
  validate_key(key);
  return namespaced_key(settings.key_prefix, keyspace::kKeyValue, current_namespace(), key);
}

std::string session_key(std::string_view sid) {
  validate_key(sid, "session id");
  return namespaced_key(settings.key_prefix, keyspace::kSession, current_namespace(), sid);
}

std::string kv_prefix_pattern(std::string_view key_prefix) {
  std::string ns_and_prefix = encode_namespace(current_namespace());
  ns_and_prefix.push_back(':');
  ns_and_prefix.append(key_prefix);
  return prefix_pattern(settings.key_prefix, keyspace::kKeyValue, ns_and_prefix);
}

}  // namespace cachekit::pg
