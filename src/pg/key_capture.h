// Key capture: the triggers of key rules (cachekit.invalidate_key_on) turn
// the OLD and NEW values of changed rows into application keys in the
// transaction's change set (core/change_set.h).
#pragma once

#include <string>
#include <vector>

extern "C" {
#include "postgres.h"
}

namespace cachekit::pg {

// Registers the relcache callback that forgets parsed rules.
void install_key_capture_callbacks();

// The key pattern of every key rule on relid (TRUNCATE has no rows to read,
// so its rules delete by pattern). May throw.
std::vector<std::string> rule_patterns(Oid relid);

}  // namespace cachekit::pg
