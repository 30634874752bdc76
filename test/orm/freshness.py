#!/usr/bin/python3
"""Transparent caching under a real ORM: test/orm/shop.py (SQLAlchemy 1.4 over
psycopg2, both from Debian) runs its own statements, unchanged, with
cachekit.transparent on; every read made after a committed write is compared
with the same read run directly (transparent off, separate connection).

    test/orm/freshness.py --db NAME [--transparent all|off] [--rounds N]
                          [--seed S] [--break stale] [--phases A,B,...]

Connection parameters come from libpq's environment (PGHOST, PGPORT, PGUSER =
a superuser). The database must exist with pg_cachekit created and nothing
else in it; the application connects as role --app-role, created here.

Phases:
  rounds     one committed write (the app's own session or another engine),
             then every read twice through the cache, each compared with the
             truth;
  steady     a pass with no write in between: every statement must hit;
  per-value  orders are watched by customer_id: a new order of one customer
             leaves another customer's cached orders served (a hit);
  transactions  a session open across another's commit: READ COMMITTED
             sees it, REPEATABLE READ keeps its snapshot (a bypass);
  own-write  a read after its own uncommitted write in the same transaction
             sees it (a bypass), and a rolled-back write leaves no trace;
  cursors    yield_per (psycopg2 named cursor) and a raw named cursor with
             several fetch sizes, across a write;
  concurrent readers racing a writer's commits: no read older than a commit
             that finished before it started, none newer than one begun;
  clock      a read with now() in its WHERE clause, after the clock alone
             changed its answer (transparent = all does not serve statements
             that read the clock);
  latency    (not by default) median time of each ORM read, cached vs direct;
  registered transparent = registered with one ORM statement registered by
             create_cache: it hits (other constants too), nothing else is
             cached.
Fails (exit 1) on any stale read, on no hits at all, or on a phase's
expectation; prints hits/misses/bypasses and the number of checks.

--break stale compares the reads with the truth from before each write: it
must fail, which shows the checker can see a stale read.
"""

import argparse
import datetime
import random
import sys
import threading
import time
from decimal import Decimal

from sqlalchemy import create_engine, event, select, text, update
from sqlalchemy.orm import Session

import shop


class Failed(Exception):
    pass


def engine_for(db, user=None, transparent=None):
    args = {}
    if transparent is not None:
        args["options"] = f"-c cachekit.transparent={transparent}"
    if user is not None:
        args["user"] = user
    return create_engine(f"postgresql+psycopg2:///{db}", future=True, connect_args=args)


class Capture:
    """The SQL an engine sends, as the server receives it (psycopg2 binds
    parameters on the client, so mogrify gives the exact text), and with
    outcomes=True the cache's decision for each statement, asked on the same
    connection right after it (cachekit.last_outcome(); a SELECT that reads
    no table is never served, so asking does not change the answer; after a
    statement that was not served at all it still names the one before)."""

    def __init__(self, engine, outcomes=False):
        self.statements = []
        self.outcomes = outcomes
        event.listen(engine, "after_cursor_execute", self._after)

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        if not executemany and parameters:
            statement = cursor.mogrify(statement, parameters).decode()
        outcome = None
        # A named (server-side) cursor has only been declared at this point.
        if self.outcomes and not executemany and getattr(cursor, "name", None) is None:
            with cursor.connection.cursor() as c:
                c.execute("SELECT cachekit.last_outcome()")
                outcome = c.fetchone()[0]
        self.statements.append((statement, outcome))

    def take(self):
        out, self.statements = self.statements, []
        return out


class Stats:
    """Per-fingerprint counters of cachekit.query_stats (this database)."""

    def __init__(self, admin):
        self.admin = admin

    def snapshot(self):
        with self.admin.connect() as c:
            rows = c.execute(text(
                "SELECT fingerprint, min(query), sum(hits)::int8, sum(misses)::int8,"
                "       sum(bypassed)::int8, sum(l1_hits)::int8"
                "  FROM cachekit.query_stats GROUP BY fingerprint"))
            return {r[0]: (r[1], r[2], r[3], r[4], r[5]) for r in rows}

    @staticmethod
    def delta(before, after):
        out = {}
        for fp, (q, h, m, b, l1) in after.items():
            h0, m0, b0, l10 = before.get(fp, (q, 0, 0, 0, 0))[1:]
            if (h - h0, m - m0, b - b0) != (0, 0, 0):
                out[fp] = (q, h - h0, m - m0, b - b0, l1 - l10)
        return out

    @staticmethod
    def totals(delta):
        return tuple(sum(v[i] for v in delta.values()) for i in (1, 2, 3, 4))


def show(delta, limit=40):
    for fp, (q, h, m, b, l1) in sorted(delta.items(), key=lambda kv: -kv[1][1])[:limit]:
        q1 = " ".join((q or "").split())
        print(f"#   {fp:>20} hits {h:5} (l1 {l1:5}) misses {m:4} bypassed {b:4}  {q1[:110]}")


class Checker:
    def __init__(self, app, truth, capture, break_mode):
        self.app = app
        self.truth = truth
        self.capture = capture
        self.break_mode = break_mode
        self.checks = 0
        self.stale = []
        self.previous_truth = {}
        # read name -> outcome class (hit, miss, bypass:..., none) -> count
        self.outcomes = {}

    def check_all(self, after, times=2):
        """Every read, `times` times through the cache, against the truth."""
        for name, fn, args in shop.READS:
            for arg in args:
                truth = shop.run_read(self.truth, fn, arg)
                expected = truth
                if self.break_mode == "stale":
                    expected = self.previous_truth.get((name, arg), truth)
                self.previous_truth[(name, arg)] = truth
                for i in range(times):
                    self.capture.take()
                    got = shop.run_read(self.app, fn, arg)
                    statements = self.capture.take()
                    self.count(name, statements)
                    self.compare(f"{name}({arg!r}) read {i + 1} after {after}", expected, got,
                                 statements)

    def count(self, name, statements):
        per = self.outcomes.setdefault(name, {})
        for _, outcome in statements:
            key = outcome or "none"
            per[key] = per.get(key, 0) + 1

    def compare(self, what, expected, got, statements):
        self.checks += 1
        if got == expected:
            return
        self.stale.append(what)
        print(f"not ok - STALE read: {what}")
        for st, outcome in statements:
            print(f"#   statement ({outcome or 'outcome unknown'}): {' '.join(st.split())}")
        print(f"#   through the cache: {got!r}")
        print(f"#   direct (truth):    {expected!r}")


def setup(admin, db, role, mode):
    with admin.begin() as c:
        c.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        c.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
    shop.Base.metadata.create_all(admin)
    shop.seed(admin)
    # Statistics now, as after any load: an autoanalyze of the fresh tables
    # in the middle of a pass would re-plan a miss and turn it into a bypass
    # (bypass:plan_changed, correct) where the steady pass counts hits.
    with admin.connect() as c:
        c = c.execution_options(isolation_level="AUTOCOMMIT")
        c.exec_driver_sql("ANALYZE")
    with admin.begin() as c:
        c.exec_driver_sql(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
        c.exec_driver_sql(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}")
        # The application's role may use the cache as cached_query's callers
        # may: a member of cachekit_user (other roles' statements run
        # uncached). Its own grants are the application's only.
        c.exec_driver_sql("GRANT cachekit_user TO " + role)
        for table in ("customers", "products", "order_lines"):
            c.execute(text("SELECT cachekit.watch(:t)"), {"t": table})
        # Per value: a new order of one customer leaves the others' reads cached.
        c.execute(text("SELECT cachekit.watch('orders', by => 'customer_id')"))
        if mode != "off":
            # Per role and database, as an operator would turn it on: the
            # application's connection strings stay as they are.
            c.exec_driver_sql(f"ALTER ROLE {role} IN DATABASE {db} SET cachekit.transparent = '{mode}'")


def has_transparent(admin):
    with admin.connect() as c:
        return c.scalar(text("SELECT count(*) FROM pg_settings WHERE name = 'cachekit.transparent'")) == 1


def writes(app, writer, rng):
    """Committed writes, each (description, callable): the application's own
    session (app) and another instance of it or plain Core SQL (writer)."""
    t = shop.Product.__table__
    ol = shop.OrderLine.__table__
    day = datetime.date(2026, 2, 1) + datetime.timedelta(days=rng.randrange(20))

    def core_reprice():
        pid = rng.randrange(1, 31)
        with writer.begin() as c:
            c.execute(update(t).where(t.c.id == pid).values(price=t.c.price + Decimal("1.50")))
        return f"writer: Core UPDATE products price of {pid}"

    def core_quantity():
        with writer.begin() as c:
            c.execute(update(ol).where(ol.c.order_id == 3).values(quantity=ol.c.quantity + 1))
        return "writer: Core UPDATE order_lines of order 3"

    def raw_insert_order():
        cid = rng.choice([1, 2, 8, 9])
        with writer.begin() as c:
            c.exec_driver_sql(
                "INSERT INTO orders (customer_id, status, placed_on) VALUES (%(c)s, 'open', %(d)s)",
                {"c": cid, "d": day})
        return f"writer: raw INSERT order for customer {cid}"

    def app_place_order():
        cid = rng.choice([1, 2, 8, 20])
        oid = shop.place_order(app, cid, [(rng.randrange(1, 31), 2), (rng.randrange(1, 31), 1)], day)
        return f"app session: place order {oid} for customer {cid}"

    def app_ship():
        oid = rng.choice([3, 4, 10, 11])
        shop.ship_order(app, oid)
        return f"app session: ship order {oid}"

    def app_reprice():
        pid = rng.randrange(1, 31)
        shop.reprice(app, pid, Decimal(rng.randrange(3, 99)) + Decimal("0.49"))
        return f"app session: reprice product {pid}"

    def app_drop_line():
        oid = rng.choice([3, 4, 10])
        shop.drop_last_line(app, oid)
        return f"app session: delete last line of order {oid}"

    def app_move():
        cid = rng.choice([1, 2, 7, 12])
        city = rng.choice(shop.CITIES)
        shop.move_customer(app, cid, city)
        return f"app session: move customer {cid} to {city}"

    def writer_sign_up():
        cid = shop.sign_up(writer, f"New Customer {rng.randrange(10**6)}", rng.choice(shop.CITIES))
        return f"writer session: sign up customer {cid}"

    def writer_close():
        cid = rng.choice([7, 8, 36, 37])
        shop.close_account(writer, cid)
        return f"writer session: close account {cid} (cascade)"

    return [core_reprice, core_quantity, raw_insert_order, app_place_order, app_ship,
            app_reprice, app_drop_line, app_move, writer_sign_up, writer_close]


def phase_rounds(args, app, writer, checker, rng):
    ops = writes(app, writer, rng)
    checker.check_all("setup")
    for r in range(args.rounds):
        # Every kind of write in turn, then random ones.
        op = ops[r] if r < len(ops) else rng.choice(ops)
        checker.check_all(op())


def phase_steady(app, checker, stats, mode):
    """No write since the last pass: every statement is served from the cache."""
    checker.check_all("nothing (warming pass)", times=1)
    before = stats.snapshot()
    checker.check_all("nothing (steady pass)", times=1)
    d = Stats.delta(before, stats.snapshot())
    hits, misses, bypassed, _ = Stats.totals(d)
    print(f"# steady pass: hits {hits}, misses {misses}, bypassed {bypassed}")
    if mode == "all" and (misses != 0 or bypassed != 0 or hits == 0):
        show(d)
        raise Failed("steady pass: with no write since the last pass every statement must hit")


def phase_per_value(app, truth, writer, checker, mode):
    """orders is watched by customer_id: the cache keeps serving customer 1's
    orders while customer 9 gets a new one, and customer 9's are fresh."""
    read = shop.orders_of_customer
    for cid in (1, 9):
        shop.run_read(app, read, cid)
    with writer.begin() as c:
        c.exec_driver_sql("INSERT INTO orders (customer_id, status, placed_on) "
                          "VALUES (9, 'open', '2026-03-01')")
    got = {}
    for cid in (1, 9):
        checker.capture.take()
        value = shop.run_read(app, read, cid)
        statements = checker.capture.take()
        got[cid] = statements[0][1]
        checker.compare(f"orders_of_customer({cid}) after a new order of customer 9",
                        shop.run_read(truth, read, cid), value, statements)
    print(f"# per-value: customer 1's orders {got[1]}, customer 9's {got[9]}")
    if mode == "all" and checker.capture.outcomes and (got[1], got[9]) != ("hit", "miss"):
        raise Failed("per-value: a new order of customer 9 must leave customer 1's orders cached "
                     f"(hit) and customer 9's not (miss); got {got[1]}, {got[9]}")


def phase_transactions(app, truth, writer, checker, mode):
    """A session that stays open while another commits: under READ COMMITTED
    each statement sees the commits made before it (so the cache must serve
    the new rows); under REPEATABLE READ the transaction keeps its snapshot
    (so the cache must not serve the new rows). Column and aggregate reads:
    the ORM's identity map would keep loaded objects as they were anyway."""
    reads = [("open_order_count", shop.open_order_count, "open"),
             ("category_summary", shop.category_summary, None),
             ("top_customers", shop.top_customers, 5)]
    for _, fn, arg in reads:  # cached before the transactions start
        shop.run_read(app, fn, arg)
    t = shop.Order.__table__
    with Session(app) as s:
        for name, fn, arg in reads:
            fn(s, arg)
        with writer.begin() as c:
            c.execute(update(t).where(t.c.id == 5).values(status="cancelled"))
        for name, fn, arg in reads:
            checker.capture.take()
            got = fn(s, arg)
            checker.compare(f"{name}({arg!r}) in a READ COMMITTED transaction begun before "
                            "another session cancelled order 5",
                            shop.run_read(truth, fn, arg), got, checker.capture.take())
    rr = app.execution_options(isolation_level="REPEATABLE READ")
    rr_outcomes = []
    with Session(rr) as s:
        first = {name: fn(s, arg) for name, fn, arg in reads}
        with writer.begin() as c:
            c.execute(update(t).where(t.c.id == 5).values(status="open"))
        for name, fn, arg in reads:
            checker.capture.take()
            got = fn(s, arg)
            statements = checker.capture.take()
            rr_outcomes += [o for _, o in statements]
            checker.compare(f"{name}({arg!r}) in a REPEATABLE READ transaction after another "
                            "session reopened order 5 (must keep its snapshot)",
                            first[name], got, statements)
    print(f"# transactions: REPEATABLE READ reads after a concurrent commit: "
          f"{', '.join(map(str, rr_outcomes))}")
    if mode == "all" and checker.capture.outcomes and \
            not all(o and o.startswith("bypass") for o in rr_outcomes):
        raise Failed("transactions: reads under REPEATABLE READ must bypass the cache")


def phase_clock(app, truth, writer, checker, timeout=10.0):
    """A read whose answer changes with the clock alone (now() in WHERE):
    once its truth has moved on, the cache must not keep serving the old
    answer. (Found served stale in `all` mode while issue 12 was built; since
    then `all` does not serve statements that read the clock.)"""
    read = shop.recent_order_count
    with writer.begin() as c:
        c.exec_driver_sql("INSERT INTO orders (customer_id, status, placed_on) "
                          "VALUES (3, 'open', '2026-03-02')")
    first = shop.run_read(app, read, 2)
    checker.capture.take()
    shop.run_read(app, read, 2)
    outcomes = [o for _, o in checker.capture.take()]
    # Poll until two seconds have passed for the server: the new order drops out.
    deadline = time.monotonic() + timeout
    while shop.run_read(truth, read, 2) == first:
        if time.monotonic() > deadline:
            raise Failed(f"clock: the direct answer did not change within {timeout} s")
        time.sleep(0.1)
    # The truth just before and just after the read: another order may leave
    # the window meanwhile (a stall on a loaded machine); either is fresh.
    before = shop.run_read(truth, read, 2)
    checker.capture.take()
    got = shop.run_read(app, read, 2)
    statements = checker.capture.take()
    after = shop.run_read(truth, read, 2)
    outcomes += [o for _, o in statements]
    print(f"# clock: orders of the last 2 s: {first} at first, then through the cache {got}, "
          f"directly {before} before and {after} after; outcomes {', '.join(map(str, outcomes))}")
    checker.compare("recent_order_count(2) once the clock moved on (no write)",
                    before if got == before else after, got, statements)


def phase_latency(app, truth, capture, n=100):
    """Not by default, nothing asserted (a shared machine): median time of a
    whole ORM read (session, SQL, rows to objects) through the cache (hits)
    and directly, alternating."""
    import statistics
    probing, capture.outcomes = capture.outcomes, False  # no extra round trip
    for name, fn, args in shop.READS:
        arg = args[0]
        shop.run_read(app, fn, arg)
        times = {"cache": [], "direct": []}
        for _ in range(n):
            for label, engine in (("cache", app), ("direct", truth)):
                t0 = time.perf_counter()
                shop.run_read(engine, fn, arg)
                times[label].append((time.perf_counter() - t0) * 1000)
        c, d = statistics.median(times["cache"]), statistics.median(times["direct"])
        print(f"# latency {name:26} cache {c:7.3f} ms  direct {d:7.3f} ms  ({d / c:4.1f}x)")
    capture.outcomes = probing
    capture.take()


def phase_own_write(app, truth, checker, stats, mode):
    """Reads in the transaction that wrote: own rows, and no cache poisoning."""
    read = shop.products_page
    checker.compare("products_page(0) before own write", shop.run_read(truth, read, 0),
                    shop.run_read(app, read, 0), [])
    before = stats.snapshot()
    own_outcomes = []
    for finish in ("rollback", "commit"):
        with Session(app) as s:
            p = s.execute(select(shop.Product).order_by(shop.Product.price.desc(),
                                                        shop.Product.id)).scalars().first()
            p.price = Decimal("0.01")
            s.flush()
            checker.capture.take()
            got = read(s, 0)
            statements = checker.capture.take()
            own_outcomes += [o for _, o in statements]
            if got[0] != (p.sku, Decimal("0.01")):
                checker.stale.append("own write")
                print(f"not ok - own write not seen in its transaction: {got!r}")
                for st, outcome in statements:
                    print(f"#   statement ({outcome}): {' '.join(st.split())}")
            if mode != "off":
                s.execute(text("SET LOCAL cachekit.transparent = off"))
                direct = read(s, 0)
                s.execute(text(f"SET LOCAL cachekit.transparent = '{mode}'"))
                checker.compare(f"products_page(0) after own uncommitted write ({finish})",
                                direct, got, statements)
            if finish == "commit":
                s.commit()
            else:
                s.rollback()
        checker.check_all(f"own write then {finish}", times=2)
    d = Stats.delta(before, stats.snapshot())
    hits, misses, bypassed, _ = Stats.totals(d)
    print(f"# own-write: hits {hits}, misses {misses}, bypassed {bypassed}; "
          f"the reads after their own write: {', '.join(map(str, own_outcomes))}")
    if mode == "all" and checker.capture.outcomes and \
            not all(o and o.startswith("bypass") for o in own_outcomes):
        raise Failed("own-write: a read after its own write in the transaction must bypass")
    if mode == "all" and bypassed == 0:
        show(d)
        raise Failed("own-write: a read after its own write in the transaction must bypass")


def phase_cursors(app, truth, writer, checker, stats):
    ol = shop.OrderLine

    def orm_stream(engine):
        with Session(engine) as s:
            rows = s.execute(select(ol).order_by(ol.id).execution_options(yield_per=7)).scalars()
            return [(l.id, l.order_id, l.quantity, l.unit_price) for l in rows]

    def direct(engine):
        with Session(engine) as s:
            rows = s.execute(select(ol).order_by(ol.id)).scalars()
            return [(l.id, l.order_id, l.quantity, l.unit_price) for l in rows]

    sql = "SELECT id, quantity FROM order_lines WHERE order_id <= %s ORDER BY id"

    def named(engine, sizes):
        conn = engine.raw_connection()
        try:
            cur = conn.cursor(name="cachekit_orm_lines")
            cur.itersize = 4
            cur.execute(sql, (40,))
            out = []
            for n in sizes:
                out += cur.fetchmany(n)
            out += cur.fetchall()
            cur.close()
            conn.rollback()
            return out
        finally:
            conn.close()

    before = stats.snapshot()
    for step in range(3):
        if step:
            with writer.begin() as c:
                c.execute(update(ol.__table__).where(ol.__table__.c.order_id == 4 + step)
                          .values(quantity=ol.__table__.c.quantity + 10))
        after = "setup" if step == 0 else f"writer: UPDATE order_lines of order {4 + step}"
        t_all = direct(truth)
        t_named = named(truth, [])
        for i in range(2):
            checker.capture.take()
            checker.compare(f"yield_per(7) over order_lines, read {i + 1} after {after}", t_all,
                            orm_stream(app), checker.capture.take())
            for sizes in ([1], [1, 3, 100], [2, 2]):
                checker.compare(f"named cursor fetchmany{sizes}, read {i + 1} after {after}",
                                t_named, named(app, sizes), [(sql % 40, None)])
    d = Stats.delta(before, stats.snapshot())
    hits, misses, bypassed, _ = Stats.totals(d)
    print(f"# cursors: hits {hits}, misses {misses}, bypassed {bypassed}")
    return d


def phase_concurrent(app, writer, checker, stats, increments=300, readers=3):
    """Reads racing commits. The writer only ever raises product 1's stock by
    one, so each value names the commit that made it: a read must return at
    least the value committed before it started (not stale) and at most the
    value being written when it ended (not phantom)."""
    lock = threading.Lock()
    state = {"committed": None, "writing": None, "done": False}
    errors = []
    with Session(app) as s:
        state["committed"] = state["writing"] = s.get(shop.Product, 1).stock

    def write():
        try:
            for _ in range(increments):
                with Session(writer) as s, s.begin():
                    p = s.get(shop.Product, 1)
                    with lock:
                        state["writing"] = p.stock + 1
                    p.stock += 1
                with lock:
                    state["committed"] = state["writing"]
        finally:
            state["done"] = True

    def by_pk(s):
        # populate_existing: the identity map would otherwise answer a second
        # get() in the same session without asking the server.
        return s.get(shop.Product, 1, populate_existing=True).stock

    def by_filter(s):
        return s.scalar(select(shop.Product.stock).filter_by(sku="SKU-0001"))

    counts = {"reads": 0}

    def read():
        fns = [by_pk, by_filter]
        i = 0
        while not state["done"] and not errors:
            # Up to four statements a transaction: under READ COMMITTED each
            # one must see the commits made before it started.
            with Session(app) as s:
                for _ in range(1 + i % 4):
                    with lock:
                        low = state["committed"]
                    fn = fns[i % 2]
                    i += 1
                    v = fn(s)
                    with lock:
                        high = state["writing"]
                        counts["reads"] += 1
                    if not low <= v <= high:
                        errors.append(f"{fn.__name__}: read {v}, committed before the read {low}, "
                                      f"being written after it {high}")

    before = stats.snapshot()
    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    d = Stats.delta(before, stats.snapshot())
    hits, misses, bypassed, _ = Stats.totals(d)
    checker.checks += counts["reads"]
    print(f"# concurrent: {counts['reads']} reads racing {increments} commits: "
          f"hits {hits}, misses {misses}, bypassed {bypassed}")
    for e in errors:
        checker.stale.append(e)
        print(f"not ok - STALE or phantom read under concurrent commits: {e}")


def phase_registered(args, admin, checker, stats):
    """transparent = registered: one ORM statement registered by its text,
    with the constant it happened to carry; the same shape with other
    constants hits, nothing else is cached, reads stay fresh."""
    reg = engine_for(args.db, user=args.app_role, transparent="registered")
    writer = engine_for(args.db, user=args.app_role, transparent="registered")
    capture = Capture(reg, checker.capture.outcomes)
    checker_reg = Checker(reg, checker.truth, capture, args.break_mode)
    checker_reg.previous_truth = checker.previous_truth
    shop.run_read(reg, shop.orders_of_customer, 1)
    ((statement, _),) = capture.take()

    def shape_counts():
        with admin.connect() as c:
            row = c.execute(text("SELECT hits, misses FROM cachekit.caches WHERE fingerprint = :f"),
                            {"f": fp}).one_or_none()
        return (0, 0) if row is None else tuple(row)

    with admin.begin() as c:
        fp = c.scalar(text("SELECT cachekit.create_cache(:q)"), {"q": statement})
    print(f"# registered {fp}: {' '.join(statement.split())}")
    try:
        before = stats.snapshot()
        shape_before = shape_counts()
        ops = writes(reg, writer, random.Random(args.seed + 1))
        checker_reg.check_all("create_cache")
        for op in ops[:6]:
            checker_reg.check_all(op())
        # Another constant than the registered text's: the same shape.
        outcomes = []
        for _ in range(2):
            shop.run_read(reg, shop.orders_of_customer, 8)
            outcomes += [o for _, o in capture.take()]
        d = Stats.delta(before, stats.snapshot())
        shape_after = shape_counts()
    finally:
        with admin.begin() as c:
            c.execute(text("SELECT cachekit.drop_cache(:q)"), {"q": statement})
        reg.dispose()
        writer.dispose()
    checker.checks += checker_reg.checks
    checker.stale += checker_reg.stale
    hits, misses = (a - b for a, b in zip(shape_after, shape_before))
    print(f"# registered: cachekit.caches hits {hits}, misses {misses}; "
          f"customer 8's orders read twice: {', '.join(map(str, outcomes))}; "
          f"reads per kind: " + "; ".join(f"{n} " + ", ".join(f"{k} {v}" for k, v in sorted(per.items()))
                                         for n, per in checker_reg.outcomes.items()
                                         if n == "orders_of_customer"))
    others = {k: v for k, v in d.items() if k != fp and (v[1] or v[2])}
    if others:
        show(others)
        raise Failed("registered: statements that were not registered were cached")
    if hits == 0 or d.get(fp, (None, 0))[1] != hits:
        show(d)
        raise Failed("registered: the registered statement never hit, or query_stats and "
                     "cachekit.caches disagree")
    if checker.capture.outcomes and outcomes[-1] != "hit":
        raise Failed("registered: the registered shape with another constant did not hit")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--app-role", default="cachekit_orm_app")
    ap.add_argument("--transparent", choices=["all", "off"], default="all")
    ap.add_argument("--rounds", type=int, default=24)
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--break", dest="break_mode", choices=["stale"])
    ap.add_argument("--phases", default="rounds,steady,per-value,transactions,own-write,cursors,concurrent,registered,clock")
    args = ap.parse_args()
    phases = args.phases.split(",")

    admin = engine_for(args.db, transparent="off" if args.transparent != "off" else None)
    if args.transparent != "off" and not has_transparent(admin):
        print("not ok - the server has no setting cachekit.transparent")
        return 1
    off = "off" if args.transparent != "off" else None
    setup(admin, args.db, args.app_role, args.transparent)
    app = engine_for(args.db, user=args.app_role)
    writer = engine_for(args.db, user=args.app_role)
    truth = engine_for(args.db, user=args.app_role, transparent=off)
    with app.connect() as c, truth.connect() as t:
        if off:
            got = (c.scalar(text("SHOW cachekit.transparent")), t.scalar(text("SHOW cachekit.transparent")))
            if got != (args.transparent, "off"):
                print(f"not ok - cachekit.transparent (app, truth) = {got}")
                return 1
    with admin.connect() as c:
        outcomes = off is not None and c.scalar(
            text("SELECT to_regprocedure('cachekit.last_outcome()') IS NOT NULL"))
    checker = Checker(app, truth, Capture(app, outcomes), args.break_mode)
    stats = Stats(admin)
    rng = random.Random(args.seed)
    start = stats.snapshot()
    try:
        for phase in phases:
            t0 = time.monotonic()
            if phase == "rounds":
                phase_rounds(args, app, writer, checker, rng)
            elif phase == "steady":
                phase_steady(app, checker, stats, args.transparent)
            elif phase == "per-value":
                phase_per_value(app, truth, writer, checker, args.transparent)
            elif phase == "transactions":
                phase_transactions(app, truth, writer, checker, args.transparent)
            elif phase == "clock":
                phase_clock(app, truth, writer, checker)
            elif phase == "latency":
                phase_latency(app, truth, checker.capture)
            elif phase == "own-write":
                phase_own_write(app, truth, checker, stats, args.transparent)
            elif phase == "cursors":
                phase_cursors(app, truth, writer, checker, stats)
            elif phase == "concurrent":
                phase_concurrent(app, writer, checker, stats)
            elif phase == "registered":
                if args.transparent == "off":
                    continue
                phase_registered(args, admin, checker, stats)
            else:
                raise Failed(f"unknown phase {phase}")
            print(f"# phase {phase}: {time.monotonic() - t0:.1f} s")
    except Failed as e:
        print(f"not ok - {e}")
        return 1
    finally:
        for e in (app, writer, truth):
            e.dispose()
    d = Stats.delta(start, stats.snapshot())
    hits, misses, bypassed, l1 = Stats.totals(d)
    print(f"# query_stats over the run (top statements by hits):")
    show(d, limit=25)
    print(f"# totals: hits {hits} (l1 {l1}), misses {misses}, bypassed {bypassed}; "
          f"freshness checks {checker.checks}, stale reads {len(checker.stale)}")
    rc = 0
    if checker.outcomes and checker.capture.outcomes:
        print("# outcomes per read (cachekit.last_outcome() after each statement):")
        for name, per in checker.outcomes.items():
            print(f"#   {name:26} " + ", ".join(f"{k} {v}" for k, v in sorted(per.items())))
        if args.transparent == "all":
            never = [n for n, per in checker.outcomes.items() if not per.get("hit")]
            if never:
                print(f"not ok - reads never served from the cache: {', '.join(never)}")
                rc = 1
            else:
                print(f"ok - every one of the {len(checker.outcomes)} kinds of read was served from the cache")
    if checker.stale:
        print(f"not ok - {len(checker.stale)} stale reads out of {checker.checks} checks")
        rc = 1
    else:
        print(f"ok - {checker.checks} reads after committed writes, none stale")
    if args.transparent != "off":
        if hits == 0:
            print("not ok - no hits: the application's statements were never served from the cache")
            rc = 1
        else:
            print(f"ok - {hits} hits from the application's own statements")
    admin.dispose()
    return rc


if __name__ == "__main__":
    sys.exit(main())
