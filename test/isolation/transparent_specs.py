#!/usr/bin/env python3
"""Derive the transparent_*.spec isolation specs from the cached_query ones.

Each cached_query spec is re-run through the transparent path (issue 12):
every `SELECT * FROM cachekit.cached_query('<query>', ARRAY[...]) AS r(...)`
step becomes the application's own statement, `<query>` with its $n
parameters replaced by the ARRAY's literals (a quoted literal such as '1' is
an unknown-type literal, so `id = '1'` compares as the int it was), its
select-list items aliased to r(...)'s column names so the result headers
stay the same. Every session sets cachekit.transparent = 'all' in its setup.
The pause points (cachekit.debug_pause_at) sit at the same places in both
paths, so the expected output is the original's with the step text replaced:
the same rows and the same cachekit.last_outcome().

  python3 test/isolation/transparent_specs.py          rewrite the files
  python3 test/isolation/transparent_specs.py --check  fail if they are stale

Run from anywhere; the files are written next to the originals, in specs/
and expected/. Never edit the generated files: change this script or the
original spec and regenerate.
"""
import pathlib
import re
import sys
import textwrap

HERE = pathlib.Path(__file__).resolve().parent
SPECS = HERE / "specs"
EXPECTED = HERE / "expected"
PREFIX = "transparent_"

# Specs whose point is cached_query itself, one line each on why.
EXCLUDED = {
    "enqueue_unique_key": "task queue, no cached query",
    "own_write_same_statement": "cached_query inside a data-modifying WITH and inside a "
    "trigger; neither is a client's SELECT, which is all the transparent path serves",
    "replan_during_miss": "the pinned reader holds its lock on the view since parsing: the view "
    "cannot change under it, no bypass:plan_changed (adapted in transparent_locks.spec)",
}

# Permutations (1-based, in the original's order) whose outcome legitimately
# differs: the application's SELECT takes AccessShareLock on its relations
# when it is parsed and keeps it to the end of the transaction, as any plain
# SELECT does, where cached_query's hit takes no lock and its miss locks only
# when its prepared plan runs. Rows and outcomes of each were checked by hand
# and are covered, adapted, by transparent_locks.spec; each line says why.
DROPPED_PERMUTATIONS = {
    "ddl": {
        5: "a statement on an unwatched table is not wrapped in `all` mode, so "
        "last_outcome() still shows the previous statement's outcome",
        7: "the pinned reader holds its lock since parsing: the ALTER waits for it, "
        "nothing is re-planned under it, so no bypass:plan_changed",
    },
    "rollback": {
        4: "a plain SELECT waits for the open TRUNCATE's ACCESS EXCLUSIVE lock "
        "(the cached_query hit reads no table)",
    },
    "stale_catalog_in_transaction": {
        2: "the reader's transaction holds its lock on the view, so CREATE OR REPLACE "
        "VIEW waits for its COMMIT",
    },
}

# Written by hand, not by this script: the dropped permutations' transparent
# behaviour (the reader waits for DDL, DDL waits for the reader).
HAND_WRITTEN = {"transparent_locks"}

# isolationtester names each connection isolation/<test>/<session>, cut (with
# a NOTICE in the output) at 63 bytes.
SHORT_NAMES = {"commit_between_generations_and_snapshot": "commit_between_gens_and_snapshot"}

CALL = re.compile(
    r"SELECT \* FROM cachekit\.cached_query\(\s*'((?:[^']|'')*)'"
    r"(?:\s*,\s*ARRAY\[((?:[^\]'(]|'(?:[^']|'')*')*)\])?\s*\)\s+AS\s+r\(([^)]*)\)"
)


def split_top(text, sep=","):
    """Split at `sep` outside quotes and parentheses."""
    parts, depth, quote, cur = [], 0, False, ""
    for ch in text:
        if quote:
            quote = ch != "'"
        elif ch == "'":
            quote = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]


def substitute_params(query, literals):
    """$n -> the n-th ARRAY element as written (outside string literals)."""
    out = ""
    for piece in re.split(r"('(?:[^']|'')*')", query):
        if piece.startswith("'"):
            out += piece
            continue

        def one(m):
            n = int(m.group(1))
            if n < 1 or n > len(literals):
                raise ValueError(f"${n} without a value in {query!r}")
            return literals[n - 1]

        out += re.sub(r"\$(\d+)", one, piece)
    return out


def alias_columns(query, columns):
    """Alias the select list to r(...)'s names: the headers stay the same."""
    m = re.match(r"(?is)\s*SELECT\s+(.*?)\s+(FROM\s.*)$", query)
    if not m:
        raise ValueError(f"cannot find the select list of {query!r}")
    items = split_top(m.group(1))
    if len(items) != len(columns):
        raise ValueError(f"{len(items)} select items for {len(columns)} columns in {query!r}")
    aliased = []
    for item, col in zip(items, columns):
        item = re.sub(r"(?i)\s+AS\s+\w+$", "", item)
        aliased.append(item if item == col else f"{item} AS {col}")
    return f"SELECT {', '.join(aliased)} {m.group(2)}"


def plain_statement(m):
    query = m.group(1).replace("''", "'")
    literals = split_top(m.group(2)) if m.group(2) and m.group(2).strip() else []
    columns = [c.split()[0] for c in split_top(m.group(3))]
    return alias_columns(substitute_params(query, literals), columns)


def add_session_setup(spec):
    """SET cachekit.transparent = 'all' first in every session's setup."""
    line = "SET cachekit.transparent = 'all';"
    out = []
    lines = spec.split("\n")
    i = 0
    while i < len(lines):
        out.append(lines[i])
        if re.match(r"^session\s+\w+\s*$", lines[i]):
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            one_line = re.match(r"^setup\s*\{(.*)\}\s*$", nxt)
            if one_line:  # setup { SET ...; }
                out.append(f"setup           {{ {line} {one_line.group(1).strip()} }}")
                i += 1
            elif re.match(r"^setup\s*$", nxt) and lines[i + 2].strip() == "{":
                out += [nxt, lines[i + 2], f"  {line}"]
                i += 2
            else:
                out.append(f"setup           {{ {line} }}")
        i += 1
    return "\n".join(out)


def drop_permutations(name, spec, expected):
    """Remove the DROPPED_PERMUTATIONS of `name` from the spec and its output."""
    drop = DROPPED_PERMUTATIONS.get(name, {})
    lines = spec.split("\n")
    perm_lines = [i for i, l in enumerate(lines) if l.startswith("permutation ")]
    if any(n > len(perm_lines) for n in drop):
        raise ValueError(f"{name}: fewer permutations than DROPPED_PERMUTATIONS says")
    blocks = re.split(r"(?m)^(?=starting permutation: )", expected)
    if len(blocks) != len(perm_lines) + 1:
        raise ValueError(f"{name}: {len(perm_lines)} permutations, {len(blocks) - 1} in its output")
    for n in sorted(drop, reverse=True):
        del lines[perm_lines[n - 1]]
        del blocks[n]
    kept = [l for l in lines if l.startswith("permutation ")]
    if not kept:
        return None
    # isolationtester lists the steps no permutation uses first, by name.
    steps = re.findall(r"(?m)^step\s+(\w+)", spec)
    used = {s for l in kept for s in re.findall(r"\w+", l.split(None, 1)[1])}
    unused = "".join(f"unused step name: {s}\n" for s in sorted(set(steps) - used))
    # Permutations are separated by a blank line, the last one is not.
    tail = expected[len(expected.rstrip("\n")) :]
    return "\n".join(lines), unused + "".join(blocks).rstrip("\n") + tail


def generate(name):
    """(spec text, expected text) for transparent_<name>, or None."""
    spec = (SPECS / f"{name}.spec").read_text()
    expected = (EXPECTED / f"{name}.out").read_text()
    code = "\n".join(l for l in spec.split("\n") if not l.lstrip().startswith("#"))
    if "cached_query" not in code:
        return None
    calls = {m.group(0): plain_statement(m) for m in CALL.finditer(spec)}
    new_spec = CALL.sub(lambda m: calls[m.group(0)], spec)
    if any("cached_query" in l for l in new_spec.split("\n") if not l.lstrip().startswith("#")):
        raise ValueError(f"{name}: a cached_query call of another form; exclude it or handle it")
    for old, new in calls.items():
        expected = expected.replace(old, new)
    if "cached_query" in expected:
        raise ValueError(f"{name}: expected output names a call the spec does not")
    dropped = drop_permutations(name, new_spec, expected)
    if dropped is None:
        return None
    new_spec, expected = dropped
    reasons = "".join(
        textwrap.fill(
            f"Without permutation {n} of the original: {why}.",
            width=78,
            initial_indent="# ",
            subsequent_indent="#   ",
        )
        + "\n"
        for n, why in sorted(DROPPED_PERMUTATIONS.get(name, {}).items())
    )
    header = (
        f"# GENERATED by test/isolation/transparent_specs.py from {name}.spec: do not edit.\n"
        f"# Regenerate with `python3 test/isolation/transparent_specs.py`.\n"
        f"# The same permutations through the transparent path: the application's own\n"
        f"# SELECT with cachekit.transparent = 'all' instead of cached_query().\n"
        f"{reasons}#\n"
    )
    return header + add_session_setup(new_spec), expected


def main():
    check = "--check" in sys.argv[1:]
    wanted = {}
    for path in sorted(SPECS.glob("*.spec")):
        name = path.stem
        if name.startswith(PREFIX) or name in EXCLUDED:
            continue
        result = generate(name)
        if result is None:
            continue
        out = PREFIX + SHORT_NAMES.get(name, name)
        sessions = re.findall(r"(?m)^session\s+(\w+)", result[0])
        if len(f"isolation/{out}/{max(sessions, key=len)}") > 63:
            raise ValueError(f"{out}: too long for application_name; add it to SHORT_NAMES")
        wanted[SPECS / f"{out}.spec"] = result[0]
        wanted[EXPECTED / f"{out}.out"] = result[1]
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    extra = [
        p
        for d, ext in ((SPECS, "spec"), (EXPECTED, "out"))
        for p in d.glob(f"{PREFIX}*.{ext}")
        if p not in wanted and p.stem not in HAND_WRITTEN
    ]
    if check:
        for p in stale + extra:
            print(f"stale: {p.relative_to(HERE.parent.parent)}")
        return 1 if stale or extra else 0
    for p in stale:
        p.write_text(wanted[p])
        print(f"wrote {p.relative_to(HERE.parent.parent)}")
    for p in extra:
        p.unlink()
        print(f"removed {p.relative_to(HERE.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
