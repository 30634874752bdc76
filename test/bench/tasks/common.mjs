// Shared by driver.mjs and peer.mjs (test/bench/tasks.sh runs them).
import { createRequire } from 'node:module';
import path from 'node:path';

// The pinned packages are installed by tasks.sh with `npm ci` into a cache
// folder outside the repository (TASKS_NODE_PREFIX holds node_modules/); ES
// module imports ignore NODE_PATH, so resolve from there explicitly.
const prefix = process.env.TASKS_NODE_PREFIX;
if (!prefix) {
  throw new Error('TASKS_NODE_PREFIX is not set (run through test/bench/tasks.sh)');
}
export const req = createRequire(path.join(path.resolve(prefix), 'noop.js'));

// Wall-clock time in microseconds with sub-millisecond resolution: the
// realtime clock read once at process start plus the monotonic clock since
// (Node has no direct CLOCK_REALTIME reading finer than Date.now()'s ms).
// Postgres' clock_timestamp() reads CLOCK_REALTIME too, so both sides of a
// pickup measured in different processes compare on the same clock; the
// driver's `clock` command checks the agreement.
export function nowUs() {
  return (performance.timeOrigin + performance.now()) * 1000;
}

export function connectionString() {
  const host = process.env.PGHOST || '127.0.0.1';
  const port = process.env.PGPORT || '5432';
  const user = process.env.PGUSER || 'postgres';
  const db = process.env.PGDATABASE || 'postgres';
  // A socket directory as host: pg takes it from the query string.
  if (host.startsWith('/')) {
    return `postgres://${encodeURIComponent(user)}@/${encodeURIComponent(db)}?host=${encodeURIComponent(host)}&port=${port}`;
  }
  return `postgres://${encodeURIComponent(user)}@${host}:${port}/${encodeURIComponent(db)}`;
}

export function log(...args) {
  process.stderr.write(`${path.basename(process.argv[1])}: ${args.join(' ')}\n`);
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Settings of the peers, the same for every measure (tasks.sh passes them on).
export const CONCURRENCY = Number(process.env.TASKS_CONCURRENCY || 8);
export const PGBOSS_BATCH = Number(process.env.PGBOSS_BATCH_SIZE || 100);
export const PGBOSS_POLL_S = Number(process.env.PGBOSS_POLL_SECONDS || 0.5);
// pg-boss' queue and graphile-worker's task identifier.
export const PEER_QUEUE = 'bench';
