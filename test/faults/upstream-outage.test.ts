/**
 * Long outages of an upstream are not the sessions' fault: with the retry budget compressed to 1.4 s
 * (4 attempts, 200 ms backoff doubling), an outage of 5× that ends with every session delivered once and
 * the failed set empty, with no operator step. During the outage /readyz stays 200 and names the
 * upstream, /metrics says it is down and since when.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { freePort } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';
import { FaultRun, assertExactlyOnce, pause, scaled } from './harness.js';

const ATTEMPTS = 4;
const BACKOFF_MS = 200;
/** Every backoff of one session's attempts: 200 + 400 + 800 ms. */
const RETRY_BUDGET_MS = BACKOFF_MS * (2 ** (ATTEMPTS - 1) - 1);
const OUTAGE_MS = 5 * RETRY_BUDGET_MS;

const ENV = {
  WORKER_ATTEMPTS: String(ATTEMPTS),
  WORKER_BACKOFF: `${BACKOFF_MS}ms`,
  WORKER_CONCURRENCY: '4',
  UPSTREAM_FAILURE_THRESHOLD: '3',
  UPSTREAM_PROBE_INTERVAL: '200ms',
  UPSTREAM_PROBE_MAX: '1s',
  CODE42_RETRIES: '0',
  XSOAR_TIMEOUT: '1s',
};

interface OpsView {
  status: number;
  body: { ready: boolean; degraded?: string[]; checks: Record<string, { ok: boolean; degraded?: boolean; since?: string; detail: string }> };
  metrics: string;
}

async function opsView(port: number): Promise<OpsView> {
  const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
  const body = (await ready.json()) as OpsView['body'];
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return { status: ready.status, body, metrics };
}

/** Waits until the daemon reports `upstream` down, and checks what /readyz and /metrics say then. */
async function assertReportedDown(run: FaultRun, upstream: 'xsoar' | 'code42'): Promise<void> {
  const view = await waitFor(
    async () => {
      const v = await opsView(run.port()).catch(() => undefined);
      return v?.body.checks[upstream]?.degraded ? v : undefined;
    },
    { timeoutMs: OUTAGE_MS, intervalMs: 100, what: `/readyz naming ${upstream} down` },
  );
  assert.equal(view.status, 200, `an upstream outage does not make the pod unready: ${JSON.stringify(view.body)}`);
  assert.ok(view.body.degraded?.includes(upstream));
  assert.ok(Date.parse(view.body.checks[upstream]?.since ?? '') <= Date.now());
  assert.match(view.metrics, new RegExp(`^code42_forwarder_upstream_up\\{upstream="${upstream}"\\} 0$`, 'm'));
  const since = new RegExp(`^code42_forwarder_upstream_down_since_timestamp_seconds\\{upstream="${upstream}"\\} (\\S+)$`, 'm').exec(view.metrics);
  assert.ok(since && Number(since[1]) > 0 && Number(since[1]) * 1000 <= Date.now(), 'down since a time in the past');
}

async function assertAllOnce(run: FaultRun, name: string, t: { diagnostic(msg: string): void }, extra: Record<string, string | number>): Promise<void> {
  await run.waitComplete(60_000);
  const report = await run.report();
  t.diagnostic(FaultRun.summary(name, report, { outageMs: OUTAGE_MS, retryBudgetMs: RETRY_BUDGET_MS, ...extra }));
  assertExactlyOnce(report);
  assert.deepEqual(report.wrongFields, []);
}

describe('faults: upstream outages (circuit breaker)', () => {
  it('XSOAR answering 503 for 5x the retry budget: every session once, failed set empty', async (t) => {
    const run = await FaultRun.start({ name: 'xsoar-503', env: ENV });
    try {
      run.xsoar.outage(OUTAGE_MS);
      run.addSessions(scaled(30));
      await run.startDaemon();
      await assertReportedDown(run, 'xsoar');
      await pause(Math.max(0, OUTAGE_MS - 1_000));
      await assertAllOnce(run, 'xsoar-503-outage', t, { status503: run.xsoar.stats().byStatus['503'] ?? 0 });
      assert.ok((run.xsoar.stats().byStatus['503'] ?? 0) > 0, 'the outage happened');
      assert.match(run.allOutput(), /XSOAR answers again/);
    } finally {
      await run.close();
    }
  });

  it('XSOAR refusing connections for 5x the retry budget: every session once, failed set empty', async (t) => {
    const run = await FaultRun.start({ name: 'xsoar-refused', env: ENV, xsoar: { port: await freePort() } });
    try {
      await run.xsoar.close();
      run.addSessions(scaled(30));
      const daemon = await run.startDaemon();
      const before = daemon.output().length;
      await assertReportedDown(run, 'xsoar');
      await pause(OUTAGE_MS);
      const during = daemon.output().slice(before);
      await run.xsoar.start();
      await assertAllOnce(run, 'xsoar-refused-outage', t, { linesDuringOutage: during.split('\n').filter(Boolean).length });
      assert.match(during, /ECONNREFUSED/);
    } finally {
      await run.close();
    }
  });

  it("Code42's events endpoint answering 503 for 5x the retry budget: every session once, failed set empty", async (t) => {
    const run = await FaultRun.start({ name: 'code42-events', env: ENV });
    try {
      run.code42.failNext(1e9, { status: 503, path: /\/events$/ });
      run.addSessions(scaled(30));
      await run.startDaemon();
      await assertReportedDown(run, 'code42');
      await pause(Math.max(0, OUTAGE_MS - 1_000));
      run.code42.clearFaults();
      await assertAllOnce(run, 'code42-events-outage', t, { status503: run.code42.stats().byStatus['503'] ?? 0 });
      assert.match(run.allOutput(), /Code42 answers again/);
    } finally {
      await run.close();
    }
  });

  it('an XSOAR port closed for 10 s writes fewer than 20 lines at info', async (t) => {
    // The suite's usual daemon settings (15 attempts, 100 ms backoff) and the default breaker.
    const run = await FaultRun.start({ name: 'log-volume', xsoar: { port: await freePort() } });
    try {
      run.addSessions(scaled(10));
      const daemon = await run.startDaemon();
      await run.waitComplete(30_000);
      await run.xsoar.close();
      const closedAt = daemon.output().length;
      run.addSessions(scaled(40));
      await pause(10_000);
      const during = lines(daemon.output().slice(closedAt));
      const reopenedAt = daemon.output().length;
      await run.xsoar.start();
      await run.waitComplete(60_000);
      const recovery = lines(daemon.output().slice(reopenedAt)).filter((l) => !l.includes('"msg":"incident created"'));
      const report = await run.report();
      t.diagnostic(FaultRun.summary('log-volume', report, { linesWhileClosed: during.length, otherLinesDuringRecovery: recovery.length }));
      assert.ok(during.length < 20, `${during.length} lines while the port was closed:\n${during.join('\n')}`);
      assert.ok(recovery.length < 10, `${recovery.length} lines besides the incidents during recovery:\n${recovery.join('\n')}`);
      assert.ok(!during.some((l) => l.includes('"stack"')), 'no stack traces at info');
      assert.ok(during.some((l) => /ECONNREFUSED/.test(l)), 'the reason is named');
      assertExactlyOnce(report);
    } finally {
      await run.close();
    }
  });
});

function lines(text: string): string[] {
  return text.split('\n').filter((l) => l.trim() !== '');
}
