#include "core/cdn_batch.h"

#include <algorithm>
#include <limits>
#include <unordered_set>

#include "core/error.h"

namespace cachekit::cdn {

namespace {

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// RFC 3986 pchar plus '/' and '?' (a query is part of what a cache keys on).
bool is_safe(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '-':
    case '.':
    case '_':
    case '~':
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '*':
    case '+':
    case ',':
    case ';':
    case '=':
    case ':':
    case '@':
    case '/':
    case '?':
      return true;
    default:
      return false;
  }
}

// The start of a path for an error's detail, with control bytes shown as \xNN.
std::string preview(const std::string &path) {
  static const char hex[] = "0123456789ABCDEF";
  std::string out;
  for (std::size_t i = 0; i < path.size() && out.size() < 80; ++i) {
    const auto c = static_cast<unsigned char>(path[i]);
    if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  if (out.size() >= 80) out += "...";
  return out;
}

[[noreturn]] void invalid(const std::string &message, const std::string &detail,
                          const std::string &hint = {}) {
  throw Error(sqlstate::kInvalidParameterValue, message, detail, hint);
}

std::size_t remaining(std::size_t limit, std::size_t in_progress) {
  if (limit == 0) return std::numeric_limits<std::size_t>::max();
  return limit > in_progress ? limit - in_progress : 0;
}

// The wildcard among `sorted` (prefixes, none a prefix of another) whose
// prefix starts `path`, or nullptr. With no prefix relations inside the set,
// only the greatest element not above `path` can be a prefix of it.
const std::string *covering(const std::vector<std::string> &sorted, const std::string &path) {
  auto it = std::upper_bound(sorted.begin(), sorted.end(), path);
  if (it == sorted.begin()) return nullptr;
  --it;
  return path.compare(0, it->size(), *it) == 0 ? &*it : nullptr;
}

}  // namespace

std::string normalize_path(const std::string &path) {
  if (path.empty() || path[0] != '/')
    invalid("cdn path must start with \"/\"",
            "The path \"" + preview(path) + "\" does not start with a slash.",
            "Give the path below the site's base URL, such as /img/logo.png.");
  static const char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(path.size());
  for (std::size_t i = 0; i < path.size(); ++i) {
    const auto c = static_cast<unsigned char>(path[i]);
    if (c <= 0x20 || c == 0x7f)
      invalid("cdn path contains a control character or white space",
              "The path \"" + preview(path) + "\" has byte 0x" + std::string(1, hex[c >> 4]) +
                  std::string(1, hex[c & 15]) + " at offset " + std::to_string(i) + ".",
              "Percent-encode it, such as %20 for a space.");
    if (c == '*' && i + 1 != path.size())
      invalid("cdn path has \"*\" before its end",
              "The path \"" + preview(path) + "\" has \"*\" at offset " + std::to_string(i) + ".",
              "A \"*\" is allowed only as the last character, for a prefix purge; write a "
              "literal asterisk as %2A.");
    if (c == '%' && i + 2 < path.size() && is_hex(path[i + 1]) && is_hex(path[i + 2])) {
      out.push_back('%');
    } else if (is_safe(c)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  if (out.size() > kMaxPathBytes)
    invalid("cdn path is too long", "The path is " + std::to_string(out.size()) +
                                        " bytes once percent-encoded; at most " +
                                        std::to_string(kMaxPathBytes) + " are allowed.");
  return out;
}

Plan plan_batches(std::vector<std::string> items, const Limits &limits,
                  std::size_t in_progress_paths, std::size_t in_progress_wildcards,
                  PurgeKind kind) {
  Plan plan;
  const std::size_t per_batch = std::max<std::size_t>(limits.max_items_per_batch, 1);

  if (kind == PurgeKind::kAll) {
    if (limits.supports_all) plan.batches.emplace_back();
    return plan;
  }

  std::vector<std::string> unique;
  unique.reserve(items.size());
  {
    std::unordered_set<std::string> seen;
    seen.reserve(items.size());
    for (std::string &item : items)
      if (seen.insert(item).second) unique.push_back(std::move(item));
  }

  auto emit = [&](const std::vector<std::string> &accepted) {
    for (std::size_t i = 0; i < accepted.size(); i += per_batch)
      plan.batches.emplace_back(
          accepted.begin() + static_cast<std::ptrdiff_t>(i),
          accepted.begin() + static_cast<std::ptrdiff_t>(std::min(accepted.size(), i + per_batch)));
  };

  if (kind == PurgeKind::kTags) {
    if (limits.supports_tags)
      emit(unique);
    else
      plan.rejected = std::move(unique);
    return plan;
  }

  enum State : char { kPending, kAccepted, kLeft, kCovered, kRejected };
  std::vector<State> state(unique.size(), kPending);
  std::vector<const std::string *> cover(unique.size(), nullptr);
  std::size_t wildcard_budget = remaining(limits.max_in_progress_wildcards, in_progress_wildcards);
  std::size_t path_budget = remaining(limits.max_in_progress_paths, in_progress_paths);

  // Wildcards first, so that what they cover is known before paths spend
  // their budget.
  std::vector<std::string> accepted_prefixes;
  if (limits.supports_wildcards) {
    std::vector<std::string> prefixes;
    for (const std::string &item : unique)
      if (is_wildcard(item)) prefixes.push_back(item.substr(0, item.size() - 1));
    std::sort(prefixes.begin(), prefixes.end());
    std::vector<std::string> minimal;  // no element is a prefix of another
    for (std::string &p : prefixes)
      if (minimal.empty() || p.compare(0, minimal.back().size(), minimal.back()) != 0)
        minimal.push_back(std::move(p));

    for (std::size_t i = 0; i < unique.size(); ++i) {
      if (!is_wildcard(unique[i])) continue;
      const std::string prefix = unique[i].substr(0, unique[i].size() - 1);
      if (!std::binary_search(minimal.begin(), minimal.end(), prefix)) continue;
      if (wildcard_budget > 0) {
        --wildcard_budget;
        state[i] = kAccepted;
        accepted_prefixes.push_back(prefix);
      } else {
        state[i] = kLeft;
      }
    }
    std::sort(accepted_prefixes.begin(), accepted_prefixes.end());
    // A wildcard under another one: covered when that one is sent, else left
    // (the budget ran out before its coverer, so it would not fit either).
    for (std::size_t i = 0; i < unique.size(); ++i) {
      if (!is_wildcard(unique[i]) || state[i] != kPending) continue;
      if ((cover[i] = covering(accepted_prefixes, unique[i])) != nullptr)
        state[i] = kCovered;
      else
        state[i] = kLeft;
    }
  } else {
    for (std::size_t i = 0; i < unique.size(); ++i)
      if (is_wildcard(unique[i])) state[i] = kRejected;
  }

  for (std::size_t i = 0; i < unique.size(); ++i) {
    if (state[i] != kPending) continue;
    if ((cover[i] = covering(accepted_prefixes, unique[i])) != nullptr) {
      state[i] = kCovered;
    } else if (path_budget > 0) {
      --path_budget;
      state[i] = kAccepted;
    } else {
      state[i] = kLeft;
    }
  }

  std::vector<std::string> accepted;
  for (std::size_t i = 0; i < unique.size(); ++i) {
    switch (state[i]) {
      case kAccepted:
        accepted.push_back(unique[i]);
        break;
      case kLeft:
        plan.left.push_back(unique[i]);
        break;
      case kCovered:
        plan.covered.emplace_back(unique[i], *cover[i] + "*");
        break;
      case kRejected:
        plan.rejected.push_back(unique[i]);
        break;
      case kPending:
        break;
    }
  }
  emit(accepted);
  return plan;
}

}  // namespace cachekit::cdn
