vcl 4.1;

# Varnish as pg_cachekit's http provider (cachekit.cdn_provider = http) expects
# it: PURGE or BAN requests from this machine purge what the site serves.
# Tested with Varnish 7.1 by test/cdn/varnish_smoke.sh.
#
#   PURGE /p                      drop the object for /p (return (purge))
#   BAN /p                        ban URL /p exactly
#   BAN /img/ + X-Ban-Prefix: 1   ban every URL starting with /img/ ("/" = everything)
#   BAN / + X-Purge-Tag: t        ban every object tagged t by its Surrogate-Key
#                                 (space-separated) or Cache-Tag (comma-separated)
#                                 response header
#
# Bans compare headers of the cached object only (obj.http.x-cachekit-url,
# obj.http.x-cachekit-tags, copied from the backend request and response), so
# the ban lurker applies them in the background instead of leaving them to be
# tested on every lookup. Bans match the URL on every Host this Varnish serves.
#
# The backend comes from "cachekit_backend.vcl", found on vcl_path:
# test/cdn/varnish.bash writes one into the instance's directory.

import std;

include "cachekit_backend.vcl";

acl cachekit_purgers {
    "127.0.0.1";
    "::1";
}

sub vcl_recv {
    if (req.method == "PURGE" || req.method == "BAN") {
        if (client.ip !~ cachekit_purgers) {
            return (synth(405, "Not allowed"));
        }
        if (req.method == "PURGE") {
            return (purge);
        }
        call cachekit_ban;
    }
}

# A ban is a string that Varnish splits at white space into "field operator
# argument" (7.1 does not group a quoted argument), so the URL or tag goes in
# as one bare word: the regular-expression characters that can appear in a
# purge path (. * + ? ( ) $) each wrapped in a character class, and the blank
# around a tag written [[:space:]], so that no backslash, quote or blank has to
# survive the ban parser. pg_cachekit percent-encodes the rest
# (^ [ ] { } | \ " and white space) in paths and refuses white space in tags;
# anything else is refused here rather than banned wrongly.
sub cachekit_ban {
    if (req.http.X-Purge-Tag) {
        set req.http.x-cachekit-ban = req.http.X-Purge-Tag;
    } else {
        set req.http.x-cachekit-ban = req.url;
    }
    if (req.http.x-cachekit-ban ~ {"[\^\[\]{}|\\"\s]"} || req.http.x-cachekit-ban == "") {
        return (synth(400, "Cannot ban that"));
    }
    set req.http.x-cachekit-ban = regsuball(req.http.x-cachekit-ban, "([.*+?()$])", "[\1]");
    if (req.http.X-Purge-Tag) {
        set req.http.x-cachekit-ban = "obj.http.x-cachekit-tags ~ (^|[[:space:]])" +
            req.http.x-cachekit-ban + "([[:space:]]|$)";
    } else if (req.http.X-Ban-Prefix == "1") {
        set req.http.x-cachekit-ban = "obj.http.x-cachekit-url ~ ^" + req.http.x-cachekit-ban;
    } else {
        set req.http.x-cachekit-ban = "obj.http.x-cachekit-url == " + req.url;
    }
    if (std.ban(req.http.x-cachekit-ban)) {
        return (synth(200, "Banned"));
    }
    return (synth(400, "Ban refused: " + std.ban_error()));
}

sub vcl_backend_response {
    set beresp.http.x-cachekit-url = bereq.url;
    # Tags separated by single spaces. (Not padded with spaces: Varnish
    # drops the blanks at the start of a header value when it reads it.)
    if (beresp.http.Surrogate-Key) {
        set beresp.http.x-cachekit-tags = regsuball(beresp.http.Surrogate-Key, "\s+", " ");
    } else if (beresp.http.Cache-Tag) {
        set beresp.http.x-cachekit-tags = regsuball(beresp.http.Cache-Tag, "\s*,\s*", " ");
    }
}

sub vcl_deliver {
    unset resp.http.x-cachekit-url;
    unset resp.http.x-cachekit-tags;
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
