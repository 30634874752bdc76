// The SQL functions that queue CDN purges: cdn_purge(), cdn_purge_tags(),
// cdn_purge_all(), cdn_purge_on() and the row trigger of purge rules,
// cachekit._cdn_capture(). None is SECURITY DEFINER: each checks and
// normalises as the caller, then calls cachekit._cdn_request() (SECURITY
// DEFINER, granted to nobody) through fmgr. The request, its items and its
// dispatch task are rows written in the caller's transaction, so a rollback
// (of the transaction or of a savepoint) sends nothing, and a prepared
// transaction sends only after COMMIT PREPARED.
#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/cdn_batch.h"
#include "core/cdn_settings.h"
#include "core/key_template.h"
#include "pg/access_checks.h"
#include "pg/boundary.h"
#include "pg/datum.h"
#include "pg/guc.h"
#include "pg/internal_call.h"
#include "pg/sql_function.h"
#include "pg/task_common.h"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
}

using namespace cachekit;
using namespace cachekit::pg;

namespace {

constexpr std::size_t kMaxItemsPerCall = 100000;

// ---- the purge-rule request of the current transaction ---------------------------
//
// A rule's row trigger adds its paths to one request per transaction. Which
// one, and which paths it already holds, is remembered here, per
// subtransaction level: when a savepoint rolls back, its rows are gone, so
// a request created at or below that level is forgotten, and so is the set
// of paths sent (it only saves repeated inserts: forgetting it costs an
// insert that does nothing).
int64 rule_request = 0;
int rule_request_level = 0;
std::unordered_set<std::string> *rule_paths = nullptr;

void forget_rule_request() {
  rule_request = 0;
  rule_request_level = 0;
  if (rule_paths) rule_paths->clear();
}

void on_xact(XactEvent event, void *) {
  if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
      event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
      event == XACT_EVENT_PREPARE)
    forget_rule_request();
}

void on_subxact(SubXactEvent event, SubTransactionId, SubTransactionId, void *) {
  int level = GetCurrentTransactionNestLevel();
  if (event == SUBXACT_EVENT_ABORT_SUB) {
    if (rule_request != 0 && rule_request_level >= level) {
      rule_request = 0;
      rule_request_level = 0;
    }
    if (rule_paths) rule_paths->clear();
  } else if (event == SUBXACT_EVENT_COMMIT_SUB) {
    if (rule_request != 0 && rule_request_level >= level) rule_request_level = level - 1;
  }
}

bool callbacks_installed = false;
void install_callbacks() {
  if (callbacks_installed) return;
  pg_call([] {
    RegisterXactCallback(on_xact, nullptr);
    RegisterSubXactCallback(on_subxact, nullptr);
  });
  callbacks_installed = true;
  rule_paths = new std::unordered_set<std::string>();
}

// ---- configuration -------------------------------------------------------------------

// Parsed once per value of the setting: the rules' trigger asks for every row.
const std::vector<std::string> &configured_providers() {
  static std::string seen;
  static std::vector<std::string> list;
  const char *now = settings.cdn_provider ? settings.cdn_provider : "";
  if (list.empty() || seen != now) {
    list = cdn::provider_list(now);
    seen = now;
  }
  return list;
}

// A rule's template, parsed once per backend: the trigger's argument never
// changes (a new rule is a new trigger with its own text).
const KeyTemplate &parsed_template(const char *text) {
  static std::unordered_map<std::string, KeyTemplate> parsed;
  auto it = parsed.find(text);
  if (it == parsed.end()) it = parsed.emplace(text, KeyTemplate::parse(text)).first;
  return it->second;
}

bool takes_tags(const std::string &provider) {
  return provider == "fastly" || provider == "cloudflare" ||
         (provider == "http" && settings.cdn_http_method == kCdnBan);
}

// The providers a request of `kind` goes to; refuses when there is none.
std::vector<std::string> providers_for(const std::string &kind) {
  if (!settings.cdn_enabled)
    throw Error(sqlstate::kObjectNotInPrerequisiteState, "CDN purges are disabled",
                "cachekit.cdn_enabled is off.",
                "Set cachekit.cdn_enabled and cachekit.cdn_provider in postgresql.conf.");
  const std::vector<std::string> &all = configured_providers();
  std::vector<std::string> out;
  if (all.empty())
    throw Error(sqlstate::kObjectNotInPrerequisiteState, "no CDN provider is configured",
                "cachekit.cdn_provider is empty.",
                "Set it to one or more of cloudfront, fastly, cloudflare, http.");
  for (const auto &p : all)
    if (kind != "tags" || takes_tags(p)) out.push_back(p);
  if (out.empty())
    throw Error(sqlstate::kFeatureNotSupported, "no configured CDN provider can purge by tag",
                "Tags are purged by fastly, cloudflare, and http with cachekit.cdn_http_method = "
                "BAN.");
  return out;
}

// ---- items -----------------------------------------------------------------------------

std::vector<std::optional<std::string>> text_array_arg(FunctionCallInfo fcinfo, int i,
                                                       const char *what) {
  if (PG_ARGISNULL(i))
    throw Error(sqlstate::kNullValueNotAllowed, std::string(what) + " must not be NULL");
  std::vector<std::optional<std::string>> out;
  Datum *elems = nullptr;
  bool *nulls = nullptr;
  int n = 0;
  pg_call([&] {
    ArrayType *a = PG_GETARG_ARRAYTYPE_P(i);
    if (ARR_NDIM(a) > 1)
      ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
                      errmsg("%s must be a one-dimensional array", what)));
    deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
  });
  if (static_cast<std::size_t>(n) > kMaxItemsPerCall)
    throw Error(sqlstate::kProgramLimitExceeded, std::string("too many ") + what + " in one call",
                "At most " + std::to_string(kMaxItemsPerCall) + " per call.");
  for (int k = 0; k < n; ++k) {
    if (nulls[k]) {
      out.push_back(std::nullopt);
      continue;
    }
    out.push_back(pg_call([&] {
      text *t = DatumGetTextPP(elems[k]);
      return std::string(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
    }));
  }
  return out;
}

// Fastly surrogate keys are separated by spaces, Cloudflare's Cache-Tag by
// commas, and a Varnish BAN takes the tag into a regular expression: a tag
// is letters, digits and - _ . : / @ + = ~ ! only, so that it can never
// stand for other tags.
std::string check_tag(const std::string &tag) {
  if (tag.empty() || tag.size() > 1024)
    throw Error(sqlstate::kInvalidParameterValue, "a CDN tag must be 1 to 1024 bytes long");
  for (unsigned char c : tag) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string_view("-_.:/@+=~!").find(static_cast<char>(c)) != std::string_view::npos;
    if (!ok)
      throw Error(sqlstate::kInvalidParameterValue, "invalid CDN tag",
                  "Tags are letters, digits and - _ . : / @ + = ~ ! only.");
  }
  return tag;
}

std::vector<std::string> items_arg(FunctionCallInfo fcinfo, const std::string &kind) {
  const char *what = kind == "paths" ? "paths" : "tags";
  std::vector<std::string> out;
  std::unordered_set<std::string> seen;
  for (auto &v : text_array_arg(fcinfo, 0, what)) {
    if (!v)
      throw Error(sqlstate::kNullValueNotAllowed, std::string(what) + " must not contain NULL");
    check_text(*v);
    std::string item = kind == "paths" ? cdn::normalize_path(*v) : check_tag(*v);
    if (seen.insert(item).second) out.push_back(std::move(item));
  }
  if (out.empty())
    throw Error(sqlstate::kInvalidParameterValue, std::string(what) + " must not be empty");
  return out;
}

Datum text_array_datum(const std::vector<std::string> &items) {
  std::vector<Datum> d;
  d.reserve(items.size());
  for (const auto &s : items) d.push_back(text_datum(s));
  return pg_call([&] {
    return PointerGetDatum(
        construct_array(d.data(), static_cast<int>(d.size()), TEXTOID, -1, false, TYPALIGN_INT));
  });
}

int64 request(int64 request_id, const std::string &kind, const std::vector<std::string> &items,
              const std::vector<std::string> &providers, const std::string &source) {
  const std::vector<Oid> types = {INT8OID, TEXTOID, TEXTARRAYOID, TEXTARRAYOID,
                                  TEXTOID, OIDOID,  BOOLOID};
  const bool fresh = request_id == 0;
  Value v = call_internal(
      "_cdn_request", types,
      {fresh ? Value{} : val(Int64GetDatum(request_id)), text_val(kind),
       val(text_array_datum(items)), val(text_array_datum(providers)), text_val(source),
       val(ObjectIdGetDatum(GetUserId())), val(BoolGetDatum(fresh))});
  if (fresh) note_enqueued_in_xact("cdn", 1);
  return DatumGetInt64(v.d);
}

Datum purge(FunctionCallInfo fcinfo, const std::string &kind) {
  return cpp_entry([&]() -> Datum {
    std::vector<std::string> providers = providers_for(kind);
    std::vector<std::string> items;
    if (kind != "all") items = items_arg(fcinfo, kind);
    const char *source = kind == "paths"  ? "cdn_purge"
                         : kind == "tags" ? "cdn_purge_tags"
                                          : "cdn_purge_all";
    return Int64GetDatum(request(0, kind, items, providers, source));
  });
}

// ---- purge rules -----------------------------------------------------------------------

std::optional<std::string> attr_text(TupleTableSlot *slot, Relation rel, const std::string &name) {
  int attnum = 0;
  TupleDesc desc = RelationGetDescr(rel);
  for (int i = 0; i < desc->natts; ++i) {
    Form_pg_attribute a = TupleDescAttr(desc, i);
    if (!a->attisdropped && name == NameStr(a->attname)) attnum = i + 1;
  }
  if (attnum == 0)
    throw Error("42703",
                "CDN purge rule names column \"" + name + "\" which " +
                    std::string(RelationGetRelationName(rel)) + " does not have",
                {}, "Drop and re-create the rule.");
  bool isnull = false;
  Datum d = pg_call([&] { return slot_getattr(slot, attnum, &isnull); });
  if (isnull) return std::nullopt;
  Oid type = TupleDescAttr(desc, attnum - 1)->atttypid;
  return pg_call([&] {
    Oid out;
    bool varlena;
    getTypeOutputInfo(type, &out, &varlena);
    return std::string(OidOutputFunctionCall(out, d));
  });
}

// The template's literal text up to its first placeholder, as a prefix
// purge ("/products/{slug}.html" -> "/products/*").
std::string literal_prefix_purge(const std::string &tmpl) {
  std::string prefix;
  for (std::size_t i = 0; i < tmpl.size(); ++i) {
    if (tmpl[i] == '{' && (i + 1 >= tmpl.size() || tmpl[i + 1] != '{')) break;
    if ((tmpl[i] == '{' || tmpl[i] == '}') && i + 1 < tmpl.size() && tmpl[i + 1] == tmpl[i]) ++i;
    prefix += tmpl[i];
  }
  return prefix + "*";
}

void add_unique(std::vector<std::string> &paths, std::string p) {
  if (rule_paths->count(p) == 0 && std::find(paths.begin(), paths.end(), p) == paths.end())
    paths.push_back(std::move(p));
}

// The row's path. A row whose path cannot be built (a value that makes it
// longer than a path may be, a column renamed or dropped since the rule was
// made) must not fail the application's write, nor lose its purge: it
// purges the template's literal prefix instead, with a WARNING.
void add_path(std::vector<std::string> &paths, const std::string &rule, const std::string &text,
              const KeyTemplate &tmpl, TupleTableSlot *slot, Relation rel) {
  if (slot == nullptr) return;
  std::string why;
  try {
    std::vector<std::optional<std::string>> values;
    for (const auto &c : tmpl.columns()) values.push_back(attr_text(slot, rel, c));
    std::optional<std::string> path = tmpl.expand(values);
    if (!path) return;  // a NULL column: no page to purge
    add_unique(paths, cdn::normalize_path(*path));
    return;
  } catch (const PgError &) {
    throw;
  } catch (const Error &e) {
    why = e.what();
  }
  std::string prefix = literal_prefix_purge(text);
  pg_call([&] {
    ereport(WARNING, (errmsg("CDN purge rule \"%s\" purges %s instead of a row's path",
                             rule.c_str(), prefix.c_str()),
                      errdetail("The row's path could not be built: %s.", why.c_str())));
  });
  add_unique(paths, cdn::normalize_path(prefix));
}

void check_template(const std::string &tmpl) {
  if (tmpl.empty() || tmpl[0] != '/')
    throw Error(sqlstate::kInvalidParameterValue, "a CDN path template must start with \"/\"", {},
                "For example '/products/{slug}.html'.");
}

}  // namespace

CK_SQL_FUNCTION(ck_cdn_purge) { return purge(fcinfo, "paths"); }
CK_SQL_FUNCTION(ck_cdn_purge_tags) { return purge(fcinfo, "tags"); }
CK_SQL_FUNCTION(ck_cdn_purge_all) { return purge(fcinfo, "all"); }

CK_SQL_FUNCTION(ck_cdn_purge_on) {
  Arg tmpl = varlena_arg(fcinfo, 1);
  Arg name = varlena_arg(fcinfo, 2);
  return cpp_entry([&]() -> Datum {
    if (PG_ARGISNULL(0) || tmpl.null)
      throw Error(sqlstate::kNullValueNotAllowed, "table and path template must not be NULL");
    const Oid relid = PG_GETARG_OID(0);
    std::string t(tmpl.view());
    check_text(t);
    check_template(t);
    KeyTemplate parsed = KeyTemplate::parse(t);
    // The template's literal text must itself be a valid path (a trailing *
    // purges a prefix where the provider can).
    std::vector<std::optional<std::string>> sample(parsed.columns().size(), std::string("x"));
    (void)cdn::normalize_path(*parsed.expand(sample));
    char relkind = pg_call([&] { return get_rel_relkind(relid); });
    if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
      throw Error(sqlstate::kWrongObjectType, "CDN purge rules are for tables",
                  "Only ordinary and partitioned tables have the row triggers a rule needs.");
    // Creating a trigger on the table is the owner's (or an admin's) call.
    Oid admin = pg_call([] { return get_role_oid("cachekit_admin", true); });
    if (!pg_call([&] { return pg_class_ownercheck(relid, GetUserId()); }) &&
        !(OidIsValid(admin) && pg_call([&] { return has_privs_of_role(GetUserId(), admin); })))
      throw Error(sqlstate::kInsufficientPrivilege,
                  "must be owner of table to add a CDN purge rule", {},
                  "Or be a member of cachekit_admin.");
    check_may_read_columns(relid, parsed.columns(), "a CDN purge rule", "CDN paths");
    std::string rule = name.null ? pg_call([&] {
                                     const char *n = get_rel_name(relid);
                                     return std::string(n ? n : "?");
                                   }) + ":" +
                                       t
                                 : std::string(name.view());
    check_text(rule);
    Value v = call_internal("_add_cdn_rule", {REGCLASSOID, TEXTOID, TEXTOID, OIDOID},
                            {val(ObjectIdGetDatum(relid)), text_val(t), text_val(rule),
                             val(ObjectIdGetDatum(GetUserId()))});
    return v.d;
  });
}

CK_SQL_FUNCTION(ck_cdn_capture) {
  return cpp_entry([&]() -> Datum {
    if (!CALLED_AS_TRIGGER(fcinfo))
      throw Error(sqlstate::kObjectNotInPrerequisiteState,
                  "cachekit._cdn_capture() must be called as a trigger");
    auto *td = reinterpret_cast<TriggerData *>(fcinfo->context);
    TriggerEvent ev = td->tg_event;
    Datum ret = PointerGetDatum(TRIGGER_FIRED_BY_UPDATE(ev) ? td->tg_newtuple : td->tg_trigtuple);
    if (!TRIGGER_FIRED_FOR_ROW(ev) || td->tg_trigger->tgnargs < 2)
      throw Error(sqlstate::kInternalError,
                  "CDN purge rule trigger is not a row trigger with "
                  "a rule name and a template");
    // Disabled or unconfigured: a write must not fail for the CDN's sake.
    if (!settings.cdn_enabled) return ret;
    const std::vector<std::string> &providers = configured_providers();
    if (providers.empty()) return ret;
    install_callbacks();
    std::string rule = td->tg_trigger->tgargs[0];
    const KeyTemplate &tmpl = parsed_template(td->tg_trigger->tgargs[1]);
    TupleTableSlot *old_slot = nullptr, *new_slot = nullptr;
    if (TRIGGER_FIRED_BY_INSERT(ev)) {
      new_slot = td->tg_trigslot;
    } else if (TRIGGER_FIRED_BY_UPDATE(ev)) {
      old_slot = td->tg_trigslot;
      new_slot = td->tg_newslot;
    } else {
      old_slot = td->tg_trigslot;
    }
    std::vector<std::string> paths;
    const std::string text = td->tg_trigger->tgargs[1];
    add_path(paths, rule, text, tmpl, old_slot, td->tg_relation);
    add_path(paths, rule, text, tmpl, new_slot, td->tg_relation);
    if (paths.empty()) return ret;
    const bool fresh = rule_request == 0;
    int64 id = request(rule_request, "paths", paths, providers, rule);
    if (fresh) {
      rule_request = id;
      rule_request_level = GetCurrentTransactionNestLevel();
    }
    for (auto &p : paths) rule_paths->insert(std::move(p));
    return ret;
  });
}
