// Purge paths in the form every provider receives them, and the split of
// queued purges into batches that fit a provider's limits.
//
// The dispatch task gathers the items of every queued request for one
// provider, plans, stores each planned batch (committed before it is sent)
// and keeps the rest queued for its next round.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "core/cdn_provider.h"

namespace cachekit::cdn {

inline constexpr std::size_t kMaxPathBytes = 4096;

// A purge path as stored and sent: starts with '/', has no control
// character or white space, has every byte outside RFC 3986's unreserved,
// sub-delims, ':', '@', '/' and '?' percent-encoded (upper-case hex), keeps
// a '%' that starts an escape ("%2F" stays, a lone '%' becomes "%25"), is at
// most kMaxPathBytes long once encoded, and has '*' only as its last byte
// (a prefix purge: "/img/*"). A literal asterisk is written %2A.
// Existing escapes are kept as written, not re-cased: caches key on the URL
// as the client sent it. Throws cachekit::Error 22023 naming the problem.
std::string normalize_path(const std::string &path);

// Whether a (normalized) path is a prefix purge.
inline bool is_wildcard(const std::string &path) { return !path.empty() && path.back() == '*'; }

struct Plan {
  // Each at most max_items_per_batch items, in the order the items came.
  std::vector<std::vector<std::string>> batches;
  // Beyond the in-progress budgets now: plan them again once in-progress
  // purges have completed.
  std::vector<std::string> left;
  // (item, wildcard): items not sent because a wildcard in `batches` purges
  // them too; the item's request is done when that wildcard's batch is.
  std::vector<std::pair<std::string, std::string>> covered;
  // Items the provider cannot take at all: wildcards for a provider without
  // supports_wildcards, every tag for one without supports_tags. The caller
  // fails their requests (sending them would fail the whole batch).
  std::vector<std::string> rejected;
};

// Plans the items of every queued request for one provider. `kind` is
// kPaths (normalized paths) or kTags; kAll plans one empty batch when the
// provider supports_all, else nothing.
//
// - Exact duplicates are sent once (the first occurrence's position).
// - Paths: a wildcard is counted against max_in_progress_wildcards, any other
//   path against max_in_progress_paths (CloudFront counts the two
//   separately); in_progress_* are what the provider already has in flight,
//   0 limits mean no limit. Items beyond a budget go to `left`.
// - Paths, only when the provider supports_wildcards: a path or wildcard
//   starting with the prefix of a wildcard that is planned ("/img/a.png" and
//   "/img/x/*" under "/img/*") is `covered`, not sent. An item whose covering
//   wildcard is left for later is planned on its own (it is purged now and
//   again by the wildcard later: purges are idempotent).
// - Tags are only deduplicated and split; budgets do not apply.
// Every distinct item ends up in exactly one of batches, left, covered and
// rejected.
Plan plan_batches(std::vector<std::string> items, const Limits &limits,
                  std::size_t in_progress_paths, std::size_t in_progress_wildcards,
                  PurgeKind kind = PurgeKind::kPaths);

}  // namespace cachekit::cdn
