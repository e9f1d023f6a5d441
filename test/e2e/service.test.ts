import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { generateTenant } from '../sims/code42/index.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon-process.js';
import { freePort } from '../helpers/ports.js';
import { RedisProcess } from '../helpers/redis-process.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

const MIN = 60_000;

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: await res.text() };
}

function metric(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `) || (labels === '' && l.startsWith(`${name} `)));
  return line ? Number(line.split(' ').at(-1)) : NaN;
}

describe('running as a service', () => {
  let stack: Stack | undefined;
  let redis: RedisProcess | undefined;
  const daemons: DaemonProcess[] = [];
  afterEach(async () => {
    await Promise.all(daemons.splice(0).map((d) => d.stop('SIGKILL')));
    await stack?.close().catch(() => undefined);
    await redis?.destroy();
    stack = undefined;
    redis = undefined;
  });

  it('counts 50 forwarded sessions in /metrics', async () => {
    stack = await startStack({ name: 'metrics' });
    const now = Date.now();
    stack.code42.loadTenant(generateTenant({ sessions: 50, seed: 61, beginFrom: now - 30 * MIN, beginTo: now, stateWeights: { OPEN: 1 } }));
    const port = await freePort();
    const daemon = startDaemon({ ...stack.env, HTTP_PORT: String(port) });
    daemons.push(daemon);
    await waitFor(() => (stack?.xsoar.incidents().length ?? 0) >= 50, { timeoutMs: 20_000, what: '50 incidents' });
    const text = await waitFor(async () => {
      const m = (await get(port, '/metrics')).body;
      return metric(m, 'code42_forwarder_incidents_total', 'via="created"') === 50 ? m : undefined;
    }, { what: 'the created counter at 50' });
    assert.equal(metric(text, 'code42_forwarder_sessions_total', 'outcome="enqueued"'), 50);
    assert.equal(metric(text, 'code42_forwarder_sessions_total', 'outcome="seen"') >= 50, true);
    assert.equal(metric(text, 'code42_forwarder_upstream_requests_total', 'upstream="xsoar",endpoint="incident.create",status="200"'), 50);
    assert.equal(metric(text, 'code42_forwarder_upstream_requests_total', 'upstream="code42",endpoint="sessions.events",status="200"') +
      (metric(text, 'code42_forwarder_upstream_requests_total', 'upstream="code42",endpoint="sessions.events",status="404"') || 0), 50);
    assert.ok(metric(text, 'code42_forwarder_polls_total', 'outcome="ok"') >= 1);
    assert.equal(metric(text, 'code42_forwarder_queue_jobs', 'state="failed"'), 0);
    assert.ok(metric(text, 'code42_forwarder_checkpoint_lag_seconds') < 60);
    // prom-client's default metrics keep their standard names (Node dashboards find them); ours carry the prefix.
    assert.match(text, /^process_cpu_seconds_total /m);
    assert.match(text, /^nodejs_heap_size_used_bytes /m);
    assert.doesNotMatch(text, /^code42_forwarder_(process|nodejs)_/m);
    const names = [...text.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1] as string);
    assert.deepEqual(names.filter((n) => !/^(code42_forwarder_|process_|nodejs_)/.test(n)), []);
    assert.match(text, /^code42_forwarder_upstream_request_duration_seconds_bucket\{/m);
    assert.match(text, /^code42_forwarder_poll_duration_seconds_count /m);
    const live = await get(port, '/livez');
    assert.equal(live.status, 200);
    const ready = await get(port, '/readyz');
    assert.equal(ready.status, 200, ready.body);
  });

  it('is not ready while Redis is down, recovers by itself and loses nothing', async () => {
    redis = new RedisProcess();
    await redis.start();
    stack = await startStack({ name: 'redisdown', env: { REDIS_URL: redis.url } });
    const now = Date.now();
    stack.code42.loadTenant(generateTenant({ sessions: 40, seed: 62, beginFrom: now - 30 * MIN, beginTo: now, stateWeights: { OPEN: 1 } }));
    const port = await freePort();
    const daemon = startDaemon({ ...stack.env, HTTP_PORT: String(port), LOG_LEVEL: 'info' });
    daemons.push(daemon);
    await waitFor(() => (stack?.xsoar.incidents().length ?? 0) >= 40, { timeoutMs: 20_000, what: 'first 40 incidents' });
    assert.equal((await get(port, '/readyz')).status, 200);

    await redis.stop();
    const down = await waitFor(async () => {
      const r = await get(port, '/readyz');
      return r.status === 503 ? r : undefined;
    }, { what: '/readyz 503' });
    const report = JSON.parse(down.body) as { checks: { redis: { ok: boolean; detail: string } } };
    assert.equal(report.checks.redis.ok, false);
    assert.equal((await get(port, '/livez')).status, 200, 'alive while Redis is down');
    // New alerts arrive while Redis is down.
    stack.code42.loadTenant(generateTenant({ sessions: 20, seed: 63, idPrefix: 'during', beginFrom: Date.now() - 5 * MIN, beginTo: Date.now(), stateWeights: { OPEN: 1 } }));
    await new Promise((r) => setTimeout(r, 1_000));

    await redis.start();
    await waitFor(async () => (await get(port, '/readyz')).status === 200, { timeoutMs: 20_000, what: '/readyz 200 again' });
    await waitFor(() => (stack?.xsoar.incidents().length ?? 0) >= 60, { timeoutMs: 30_000, what: 'the 20 sessions from the outage' });
    await new Promise((r) => setTimeout(r, 700));
    const mirrors = stack.xsoar.incidents().map((i) => i.dbotMirrorId);
    assert.equal(mirrors.length, 60);
    assert.equal(new Set(mirrors).size, 60);
    assert.equal(daemon.child.exitCode, null, 'no crash');
    assert.match(daemon.output(), /Redis is unreachable/);
    assert.match(daemon.output(), /Redis is reachable again/);
  });

  it('stops within 30 s on SIGTERM during a busy run, and the next start forwards the rest exactly once', async () => {
    stack = await startStack({ name: 'sigterm', env: { WORKER_CONCURRENCY: '8', XSOAR_TIMEOUT: '10s' } });
    const now = Date.now();
    stack.code42.loadTenant(generateTenant({ sessions: 300, seed: 64, beginFrom: now - 30 * MIN, beginTo: now, stateWeights: { OPEN: 1 } }));
    stack.xsoar.setFaults({ latencyMs: 150 });
    const first = startDaemon(stack.env);
    daemons.push(first);
    await waitFor(() => (stack?.xsoar.incidents().length ?? 0) >= 40, { timeoutMs: 20_000, what: 'a busy run' });
    const t0 = Date.now();
    const result = await first.stop('SIGTERM');
    const took = Date.now() - t0;
    assert.equal(result.code, 0, result.stderr);
    assert.ok(took < 30_000, `stopped in ${took} ms`);
    daemons.splice(daemons.indexOf(first), 1);
    const partial = stack.xsoar.incidents().length;
    assert.ok(partial < 300, 'stopped mid-run');

    stack.xsoar.setFaults({});
    const second = startDaemon(stack.env);
    daemons.push(second);
    await waitFor(() => (stack?.xsoar.incidents().length ?? 0) >= 300, { timeoutMs: 30_000, what: 'the rest' });
    await new Promise((r) => setTimeout(r, 700));
    const mirrors = stack.xsoar.incidents().map((i) => i.dbotMirrorId);
    assert.equal(mirrors.length, 300);
    assert.equal(new Set(mirrors).size, 300);
  });
});
