// Measures of the task-queue benchmark, one system at a time, the same way
// for all three (test/bench/tasks.sh calls it; see README.md here):
//
//   node driver.mjs setup                 peers' schemas, pgbench enqueue scripts
//   node driver.mjs clock                 Node clock vs clock_timestamp()
//   node driver.mjs hold   --system cachekit   no executor left (task_workers = 0)
//   node driver.mjs drain  --system S --n N
//   node driver.mjs steady --system S --rate R --seconds T --clients C --script F
//   node driver.mjs pickup --system S --n N --warmup W --jitter-ms J --out F.csv
//
// Systems: cachekit (tasks run by the extension's background executors),
// graphile (graphile-worker), pgboss (pg-boss). A peer's workers run in a
// child process (peer.mjs) that the driver starts, releases and stops;
// pg_cachekit's executors are started through cachekit.task_workers and
// held back by pausing the queue (see ckWorkers). Each command prints one
// JSON line on stdout.
import { fork, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  req, nowUs, connectionString, log, sleep, CONCURRENCY, PGBOSS_BATCH, PGBOSS_POLL_S, PEER_QUEUE,
} from './common.mjs';

const pg = req('pg');
const HERE = path.dirname(fileURLToPath(import.meta.url));
const WORK = process.env.TASKS_WORK || '.';
const LOGS = process.env.TASKS_LOG_DIR || WORK;
const CK_QUEUE = process.env.CK_QUEUE || 'default';

// --- arguments --------------------------------------------------------------

const [cmd, ...rest] = process.argv.slice(2);
const opt = {};
for (let i = 0; i < rest.length; i += 2) {
  if (!rest[i].startsWith('--') || i + 1 >= rest.length) {
    log(`bad argument '${rest[i]}'`);
    process.exit(2);
  }
  opt[rest[i].slice(2)] = rest[i + 1];
}
const num = (name, dflt) => {
  const v = opt[name] === undefined ? dflt : Number(opt[name]);
  if (v === undefined || !Number.isFinite(v)) {
    log(`--${name} must be a number`);
    process.exit(2);
  }
  return v;
};
const system = opt.system;
if (['hold', 'drain', 'steady', 'pickup'].includes(cmd) && !['cachekit', 'graphile', 'pgboss'].includes(system)) {
  log('--system must be cachekit, graphile or pgboss');
  process.exit(2);
}

// --- per-system SQL ---------------------------------------------------------

// Jobs not finished yet (queued, retrying or running).
const UNFINISHED = {
  // The table behind the cachekit.tasks view (the superuser may read it):
  // its partial indexes serve this, as the peers' serve theirs. 'failed' is
  // an attempt that failed and waits for its retry.
  cachekit: ['FROM cachekit._tasks WHERE queue = $1 AND state IN (\'queued\', \'running\', \'failed\')', [CK_QUEUE]],
  // Completed jobs are deleted; failed ones stay (none here: checked after).
  // Only this benchmark's jobs are in there.
  graphile: ['FROM graphile_worker._private_jobs', []],
  pgboss: ['FROM pgboss.job WHERE name = $1 AND state < \'completed\'', [PEER_QUEUE]],
};
// Jobs that failed at least once (a no-op never should).
const FAILED = {
  cachekit: ['SELECT count(*)::int AS n FROM cachekit._tasks WHERE queue = $1 AND (state IN (\'dead\', \'cancelled\') OR attempts > 1)', [CK_QUEUE]],
  graphile: ['SELECT count(*)::int AS n FROM graphile_worker._private_jobs WHERE last_error IS NOT NULL', []],
  pgboss: ['SELECT count(*)::int AS n FROM pgboss.job WHERE name = $1 AND (state IN (\'failed\', \'cancelled\') OR retry_count > 0)', [PEER_QUEUE]],
};

async function unfinished(client, sys) {
  const [from, params] = UNFINISHED[sys];
  const r = await client.query(`SELECT count(*)::int AS n ${from}`, params);
  return r.rows[0].n;
}
async function anyUnfinished(client, sys) {
  const [from, params] = UNFINISHED[sys];
  const r = await client.query(`SELECT EXISTS (SELECT 1 ${from}) AS b`, params);
  return r.rows[0].b;
}
async function failed(client, sys) {
  const [sql, params] = FAILED[sys];
  return (await client.query(sql, params)).rows[0].n;
}

// One enqueue of a pickup job, as one autocommitted statement (the same
// client library and protocol for all three).
function pickupEnqueue(sys) {
  if (sys === 'cachekit') {
    return (seq) => ['SELECT cachekit.enqueue($1, \'public.bench_pickup\', jsonb_build_object(\'seq\', $2::int))', [CK_QUEUE, seq]];
  }
  if (sys === 'graphile') {
    return (seq) => ['SELECT graphile_worker.add_job($1, json_build_object(\'seq\', $2::int))', [PEER_QUEUE, seq]];
  }
  // pg-boss has no SQL API: the statement and parameters its send() issues,
  // captured by `setup` from the pinned package.
  const send = JSON.parse(fs.readFileSync(path.join(WORK, 'pgboss_send.json'), 'utf8'));
  return (seq) => {
    const values = send.values.slice();
    values[send.dataIndex] = JSON.stringify({ seq });
    return [send.sql, values];
  };
}

// pg_cachekit's consumers are its executors (background workers, started by
// its launcher). No consumer at all (enqueue and overhead runs, like a peer
// with no worker process): cachekit.task_workers = 0, so none is left to be
// woken at commit. Ready but held back (a peer's process started, connected
// and waiting for 'go'): task_workers executors running, queue paused.
async function ckPause(client, pause) {
  await client.query(`SELECT cachekit.${pause ? 'pause' : 'resume'}_queue($1)`, [CK_QUEUE]);
}

async function ckExecutors(client) {
  const r = await client.query(`SELECT count(*)::int AS n FROM pg_stat_activity
    WHERE backend_type = 'pg_cachekit task executor' AND datname = current_database()`);
  return r.rows[0].n;
}

async function ckWorkers(client, n) {
  await client.query(`ALTER SYSTEM SET cachekit.task_workers = ${Number(n)}`);
  await client.query('SELECT pg_reload_conf()');
  const deadline = Date.now() + 60000;
  for (;;) {
    const have = await ckExecutors(client);
    if (have === n) return;
    if (Date.now() > deadline) throw new Error(`pg_cachekit: ${have} task executors after 60 s, expected ${n}`);
    await sleep(50);
  }
}

// --- helpers ----------------------------------------------------------------

const children = new Set();
function killChildren() {
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch { /* gone */ }
  }
}
process.on('exit', killChildren);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    log(`${sig}: stopping`);
    killChildren();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  });
}

async function connect() {
  const client = new pg.Client({ connectionString: connectionString() });
  await client.connect();
  client.on('error', (err) => log('connection error:', err.message));
  return client;
}

function percentile(sorted, p) {
  if (!sorted.length) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

function waitExit(child, ms) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once('exit', () => { clearTimeout(t); resolve(true); });
  });
}

// Consumers of a system: prepare (not timed), go (timed: the workers start
// taking jobs), stop (hold back again). onPickup receives (seq, t_us).
async function consumers(sys, mode, client) {
  if (sys === 'cachekit') {
    await ckPause(client, true);
    await ckWorkers(client, CONCURRENCY);
    return {
      go: () => ckPause(client, false),
      stop: async () => { await ckPause(client, true); return {}; },
      onPickup: null,
    };
  }
  const logFile = path.join(LOGS, `${sys}-${mode}.log`);
  const fd = fs.openSync(logFile, 'a');
  // graphile-worker logs every completed job at info level unless
  // NO_LOG_SUCCESS is set (its documented switch): 50k lines of console
  // output would be measured rather than the queue.
  const child = fork(path.join(HERE, 'peer.mjs'), [sys, mode], {
    stdio: ['ignore', fd, fd, 'ipc'],
    // Not the repository: graphile-worker looks for a crontab and a config
    // file in its working directory.
    cwd: WORK,
    env: { ...process.env, NO_LOG_SUCCESS: '1' },
  });
  fs.closeSync(fd);
  children.add(child);
  child.on('exit', () => children.delete(child));
  const handle = { onPickup: null };
  const waiters = new Map();
  let stopped = null;
  child.on('message', (msg) => {
    if (msg.ev === 'pickup') {
      if (handle.onPickup) handle.onPickup(msg.seq, msg.t);
      return;
    }
    if (msg.ev === 'stopped') stopped = msg;
    if (msg.ev === 'error') log(`${sys} worker error: ${msg.message}`);
    const w = waiters.get(msg.ev);
    if (w) w(msg);
  });
  const expect = (ev, ms) => new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${sys} worker: no '${ev}' within ${ms} ms (log: ${logFile})`)), ms);
    const onExit = (code) => { clearTimeout(t); reject(new Error(`${sys} worker exited (${code}) before '${ev}' (log: ${logFile})`)); };
    child.once('exit', onExit);
    waiters.set(ev, (msg) => { clearTimeout(t); child.off('exit', onExit); waiters.delete(ev); resolve(msg); });
  });
  await expect('ready', 60000);
  handle.go = async () => {
    child.send({ cmd: 'go' });
    await expect('started', 30000);
  };
  handle.stop = async () => {
    if (child.exitCode === null && child.signalCode === null && child.connected) {
      child.send({ cmd: 'stop' });
      try { await expect('stopped', 30000); } catch (err) { log(err.message); }
    }
    if (!(await waitExit(child, 10000))) {
      log(`${sys} worker still running: SIGTERM`);
      child.kill('SIGTERM');
      if (!(await waitExit(child, 5000))) child.kill('SIGKILL');
    }
    return stopped ? { peer_cpu_s: stopped.cpu_s, peer_handled: stopped.handled } : {};
  };
  return handle;
}

function out(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

// --- commands ---------------------------------------------------------------

// Peers' schemas (their own migrations), pg-boss' queue, and the pgbench
// scripts of one enqueue each. pg-boss' statement is captured from its
// send() so that pgbench runs exactly what the library runs.
async function setup() {
  const { runMigrations } = req('graphile-worker');
  await runMigrations({ connectionString: connectionString(), noHandleSignals: true });
  fs.writeFileSync(path.join(WORK, 'enqueue_graphile.sql'), `SELECT graphile_worker.add_job('${PEER_QUEUE}', '{}');\n`);

  const PgBoss = req('pg-boss');
  const boss = new PgBoss({ connectionString: connectionString(), supervise: false, schedule: false });
  boss.on('error', (err) => log('pg-boss error:', err.message));
  await boss.start();
  if (!(await boss.getQueue(PEER_QUEUE))) await boss.createQueue(PEER_QUEUE);
  let captured = null;
  const marker = { marker: 'data' };
  await boss.send(PEER_QUEUE, marker, {
    db: { executeSql: async (sql, values) => { captured = { sql, values }; return { rows: [{ id: null }] }; } },
  });
  await boss.stop({ graceful: false });
  if (!captured) throw new Error('pg-boss send() issued no statement');
  const dataIndex = captured.values.findIndex((v) => v === marker);
  if (dataIndex < 0) throw new Error('pg-boss send(): job data not found among the parameters');
  fs.writeFileSync(path.join(WORK, 'pgboss_send.json'), JSON.stringify({ sql: captured.sql, values: captured.values, dataIndex }));
  // node-postgres sends parameters as untyped text; quoted literals are
  // untyped too, so the server resolves types the same way.
  const literal = (v, i) => {
    if (i === dataIndex) return '\'{}\'';
    if (v === null || v === undefined) return 'NULL';
    const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
    return `'${s.replace(/'/g, '\'\'')}'`;
  };
  const sql = captured.sql.replace(/\$(\d+)/g, (_, n) => literal(captured.values[Number(n) - 1], Number(n) - 1))
    .split('\n').map((l) => l.trimEnd()).filter((l) => l.trim() !== '').join('\n');
  fs.writeFileSync(path.join(WORK, 'enqueue_pgboss.sql'), `${sql};\n`);

  const version = (name) => JSON.parse(fs.readFileSync(req.resolve(`${name}/package.json`), 'utf8')).version;
  out({
    node: process.version,
    'graphile-worker': version('graphile-worker'),
    'pg-boss': version('pg-boss'),
    pg: version('pg'),
  });
}

// Does the Node clock used by the peers' handlers and by the enqueuer agree
// with clock_timestamp()? Each server reading must fall between the two
// Node readings around its round trip.
async function clock() {
  const client = await connect();
  const n = num('n', 1000);
  let violations = 0;
  let worst = 0;
  const rtt = [];
  for (let i = 0; i < n; i++) {
    const a = nowUs();
    const r = await client.query('SELECT (extract(epoch FROM clock_timestamp()) * 1e6)::bigint AS t');
    const b = nowUs();
    const t = Number(r.rows[0].t);
    if (t < a - 1 || t > b + 1) {
      violations++;
      worst = Math.max(worst, t < a ? a - t : t - b);
    }
    rtt.push(b - a);
  }
  rtt.sort((x, y) => x - y);
  await client.end();
  out({ samples: n, violations, worst_us: Math.round(worst), rtt_p50_us: Math.round(percentile(rtt, 50)) });
}

async function hold() {
  if (system !== 'cachekit') return out({ system, held: true });
  const client = await connect();
  await ckPause(client, true);
  await ckWorkers(client, 0);
  await client.end();
  return out({ system, held: true });
}

// Time from releasing the consumers to the last of the queued jobs done.
async function drain() {
  const n = num('n');
  const timeoutS = num('timeout', 600);
  const pollMs = num('poll-ms', 50);
  const client = await connect();
  const queued = await unfinished(client, system);
  if (queued !== n) log(`warning: ${queued} jobs queued, expected ${n}`);
  const cons = await consumers(system, 'noop', client);
  let result;
  try {
    const t0 = nowUs();
    await cons.go();
    const deadline = t0 + timeoutS * 1e6;
    let timedOut = false;
    for (;;) {
      if (!(await anyUnfinished(client, system))) break;
      if (nowUs() > deadline) { timedOut = true; break; }
      await sleep(pollMs);
    }
    const t1 = nowUs();
    const left = timedOut ? await unfinished(client, system) : 0;
    const secs = (t1 - t0) / 1e6;
    result = {
      system, queued, done: queued - left, seconds: +secs.toFixed(3),
      rate: +((queued - left) / secs).toFixed(1), timed_out: timedOut,
    };
  } finally {
    Object.assign(result || {}, await cons.stop());
  }
  result.failed = await failed(client, system);
  await client.end();
  out(result);
}

function runPgbench(args, timeoutMs) {
  return new Promise((resolve, reject) => {
    const child = spawn('pgbench', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let text = '';
    child.stdout.on('data', (d) => { text += d; });
    child.stderr.on('data', (d) => { text += d; });
    const t = setTimeout(() => { log('pgbench overran: killing it'); child.kill('SIGTERM'); }, timeoutMs);
    child.on('error', (err) => { clearTimeout(t); reject(err); });
    child.on('exit', (code) => {
      clearTimeout(t);
      children.delete(child);
      if (code !== 0) reject(new Error(`pgbench exited ${code}: ${text.split('\n').slice(-5).join(' ')}`));
      else resolve(text);
    });
  });
}

// A producer enqueues at a fixed rate (pgbench -R, one enqueue per
// transaction) for T seconds while the consumers run; completed = enqueued
// minus the growth of the backlog over the window.
async function steady() {
  const rate = num('rate');
  const secs = num('seconds');
  const clients = num('clients', 4);
  const catchupS = num('catchup-timeout', 120);
  const script = opt.script;
  if (!script || !fs.existsSync(script)) throw new Error('--script: pgbench file of one enqueue');
  const client = await connect();
  const cons = await consumers(system, 'noop', client);
  let result;
  try {
    await cons.go();
    await sleep(1000);
    const before = await unfinished(client, system);
    const text = await runPgbench(['-n', '-M', 'prepared', '-c', String(clients), '-j', String(Math.min(clients, 2)),
      '-R', String(rate), '-T', String(secs), '-f', script], (secs + 120) * 1000);
    const after = await unfinished(client, system);
    const enqueued = Number((text.match(/number of transactions actually processed: (\d+)/) || [])[1]);
    const lag = (text.match(/rate limit schedule lag: avg ([0-9.]+) \(max ([0-9.]+)\) ms/) || []);
    if (!Number.isFinite(enqueued)) throw new Error(`cannot read pgbench output: ${text}`);
    const t0 = nowUs();
    let caughtUp = null;
    while (nowUs() - t0 < catchupS * 1e6) {
      if (!(await anyUnfinished(client, system))) { caughtUp = (nowUs() - t0) / 1e6; break; }
      await sleep(50);
    }
    const completed = enqueued - (after - before);
    result = {
      system, rate, seconds: secs, enqueued, enqueue_rate: +(enqueued / secs).toFixed(1),
      backlog_start: before, backlog_end: after, completed, completion_rate: +(completed / secs).toFixed(1),
      catchup_s: caughtUp === null ? null : +caughtUp.toFixed(3),
      schedule_lag_avg_ms: lag[1] ? Number(lag[1]) : null, schedule_lag_max_ms: lag[2] ? Number(lag[2]) : null,
    };
  } finally {
    Object.assign(result || {}, await cons.stop());
  }
  result.failed = await failed(client, system);
  await client.end();
  out(result);
}

// One job at a time, queue idle: t0 = the enqueuing statement's commit has
// returned to the client (Node clock), t1 = the handler's first statement
// (pg_cachekit: clock_timestamp() in the SQL task; peers: the Node clock in
// the worker process). Between jobs: a pause of gap + uniform(0, jitter) ms
// after the pickup was seen, so that enqueues fall at random phases of a
// polling worker's cycle.
async function pickup() {
  const n = num('n', 500);
  const warmup = num('warmup', 20);
  const gapMs = num('gap-ms', 10);
  const jitterMs = num('jitter-ms', 20);
  const timeoutMs = num('timeout-ms', 15000);
  const outFile = opt.out;
  const client = await connect();
  const enqueue = pickupEnqueue(system);
  const pending = new Map();
  const early = new Map();
  const seen = (seq, t) => {
    const p = pending.get(seq);
    if (p) p(t);
    else early.set(seq, t);
  };
  let listener = null;
  let poller = null;
  if (system === 'cachekit') {
    await client.query('TRUNCATE public.bench_pickup_log');
    // The task notifies after it commits; a slow poll of its log row covers a
    // lost notification (and only decides when the next job goes out).
    listener = await connect();
    listener.on('notification', (m) => {
      const [seq, t] = m.payload.split(':').map(Number);
      seen(seq, t);
    });
    await listener.query('LISTEN bench_pickup');
  }
  const cons = await consumers(system, 'pickup', client);
  cons.onPickup = seen;
  const lat = [];
  let lost = 0;
  try {
    await cons.go();
    await sleep(1000);
    for (let seq = 1; seq <= warmup + n; seq++) {
      const [sql, params] = enqueue(seq);
      const got = new Promise((resolve) => {
        if (early.has(seq)) { resolve(early.get(seq)); return; }
        pending.set(seq, resolve);
      });
      await client.query(sql, params);
      const t0 = nowUs();
      if (system === 'cachekit') {
        poller = setInterval(async () => {
          try {
            const r = await client.query('SELECT started_us FROM public.bench_pickup_log WHERE seq = $1', [seq]);
            if (r.rows.length) seen(seq, Number(r.rows[0].started_us));
          } catch { /* next tick */ }
        }, 250);
      }
      const t1 = await Promise.race([got, sleep(timeoutMs).then(() => null)]);
      if (poller) { clearInterval(poller); poller = null; }
      pending.delete(seq);
      early.delete(seq);
      if (t1 === null) {
        lost++;
        log(`${system}: job ${seq} not picked up within ${timeoutMs} ms`);
        if (lost > 5) throw new Error(`${system}: more than 5 jobs not picked up`);
      } else if (seq > warmup) {
        lat.push({ seq: seq - warmup, us: t1 - t0 });
      }
      await sleep(gapMs + Math.random() * jitterMs);
    }
  } finally {
    if (poller) clearInterval(poller);
    Object.assign(cons, { result: await cons.stop() });
    if (listener) await listener.end();
  }
  const sorted = lat.map((l) => l.us).sort((a, b) => a - b);
  const ms = (v) => (v === null ? null : +(v / 1000).toFixed(3));
  if (outFile) {
    fs.writeFileSync(outFile, `seq,latency_ms\n${lat.map((l) => `${l.seq},${(l.us / 1000).toFixed(3)}`).join('\n')}\n`);
  }
  const result = {
    system, samples: sorted.length, lost,
    p50_ms: ms(percentile(sorted, 50)), p90_ms: ms(percentile(sorted, 90)), p99_ms: ms(percentile(sorted, 99)),
    min_ms: ms(sorted[0] ?? null), max_ms: ms(sorted[sorted.length - 1] ?? null),
    mean_ms: ms(sorted.length ? sorted.reduce((a, b) => a + b, 0) / sorted.length : null),
    ...cons.result,
  };
  result.failed = await failed(client, system);
  await client.end();
  out(result);
}

const commands = { setup, clock, hold, drain, steady, pickup };
if (!commands[cmd]) {
  log(`unknown command '${cmd}' (${Object.keys(commands).join(', ')})`);
  process.exit(2);
}
try {
  await commands[cmd]();
} catch (err) {
  log(`${cmd} failed: ${err.stack || err}`);
  killChildren();
  process.exit(1);
}
// Stray handles (a pool still closing) must not keep the run waiting.
process.exit(0);
