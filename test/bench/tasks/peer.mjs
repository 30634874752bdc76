// Worker process of a peer queue (graphile-worker or pg-boss), forked by
// driver.mjs with an IPC channel:
//   node peer.mjs graphile|pgboss noop|pickup
// It connects and warms its pool, says {ev:'ready'}, starts its workers on
// {cmd:'go'} and stops them cleanly on {cmd:'stop'} (then exits).
// In pickup mode the handler's first statement reads the clock and sends
// {ev:'pickup', seq, t} to the driver.
import {
  req, nowUs, connectionString, log, CONCURRENCY, PGBOSS_BATCH, PGBOSS_POLL_S, PEER_QUEUE,
} from './common.mjs';

const [system, mode] = process.argv.slice(2);
if (!['graphile', 'pgboss'].includes(system) || !['noop', 'pickup'].includes(mode)) {
  log('usage: peer.mjs graphile|pgboss noop|pickup');
  process.exit(2);
}
if (!process.send) {
  log('must be started by driver.mjs (needs an IPC channel)');
  process.exit(2);
}

const send = (msg) => process.send(msg);
let handled = 0;

function report(seq) {
  // Called first thing in a handler: nothing before the clock reading.
  const t = nowUs();
  handled++;
  send({ ev: 'pickup', seq, t });
}

// Every pooled connection opened before the measure starts (both peers
// would otherwise connect lazily on the first jobs).
async function warm(query, n) {
  await Promise.all(Array.from({ length: n }, () => query('SELECT pg_sleep(0.05)')));
}

async function graphile() {
  const pg = req('pg');
  const { run } = req('graphile-worker');
  // graphile-worker's default pool size (maxPoolSize) is 10.
  const pool = new pg.Pool({ connectionString: connectionString(), max: 10 });
  pool.on('error', (err) => log('pool error:', err.message));
  await warm((sql) => pool.query(sql), 10);
  const task = mode === 'noop'
    ? async () => { handled++; }
    : async (payload) => { report(payload.seq); };
  let runner = null;
  return {
    async go() {
      runner = await run({
        pgPool: pool,
        concurrency: CONCURRENCY,
        noHandleSignals: true,
        taskList: { [PEER_QUEUE]: task },
      });
    },
    async stop() {
      if (runner) await runner.stop();
      await pool.end();
    },
  };
}

async function pgboss() {
  const PgBoss = req('pg-boss');
  // Defaults apart from the connection (pool max 10 is pg-boss' default).
  const boss = new PgBoss({ connectionString: connectionString(), max: 10 });
  boss.on('error', (err) => log('pg-boss error:', err.message));
  await boss.start();
  if (!(await boss.getQueue(PEER_QUEUE))) await boss.createQueue(PEER_QUEUE);
  const db = boss.getDb();
  await warm((sql) => db.executeSql(sql), 10);
  const handler = mode === 'noop'
    ? async (jobs) => { handled += jobs.length; }
    : async (jobs) => {
      const t = nowUs();
      for (const job of jobs) {
        handled++;
        send({ ev: 'pickup', seq: job.data.seq, t });
      }
    };
  return {
    async go() {
      // pg-boss 10 has no teamSize: each work() call is one polling worker
      // that fetches up to batchSize jobs, runs the handler once for them
      // and then sleeps the polling interval (less the time taken).
      for (let i = 0; i < CONCURRENCY; i++) {
        await boss.work(PEER_QUEUE, { batchSize: PGBOSS_BATCH, pollingIntervalSeconds: PGBOSS_POLL_S }, handler);
      }
    },
    async stop() {
      await boss.stop({ graceful: true, wait: true, timeout: 10000 });
    },
  };
}

let peer;
let stopping = false;

async function stop(code) {
  if (stopping) return;
  stopping = true;
  const timer = setTimeout(() => {
    log('workers did not stop within 20 s; exiting');
    process.exit(code || 1);
  }, 20000);
  try {
    if (peer) await peer.stop();
  } catch (err) {
    log('stop failed:', err.message);
    code = code || 1;
  }
  clearTimeout(timer);
  const cpu = process.cpuUsage();
  send({ ev: 'stopped', handled, cpu_s: (cpu.user + cpu.system) / 1e6 });
  // Let the IPC message go out before exiting.
  process.disconnect();
  process.exitCode = code;
}

process.on('message', async (msg) => {
  try {
    if (msg.cmd === 'go') {
      await peer.go();
      send({ ev: 'started' });
    } else if (msg.cmd === 'stop') {
      await stop(0);
    }
  } catch (err) {
    send({ ev: 'error', message: err.stack || String(err) });
    await stop(1);
  }
});
// The driver went away (crashed or was killed): do not linger.
process.on('disconnect', () => { if (!stopping) stop(1).finally(() => process.exit(1)); });
process.on('SIGTERM', () => { stop(143).finally(() => process.exit(143)); });

try {
  peer = system === 'graphile' ? await graphile() : await pgboss();
  send({ ev: 'ready' });
} catch (err) {
  send({ ev: 'error', message: err.stack || String(err) });
  process.exit(1);
}
