import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { generateTenant } from '../sims/code42/index.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon-process.js';
import { CODE42_CLIENT_ID, CODE42_CLIENT_SECRET, XSOAR_API_KEY, startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';
import { waitForDrain } from '../helpers/queue.js';

const MIN = 60_000;

describe('the daemon as a process', () => {
  let stack: Stack | undefined;
  const daemons: DaemonProcess[] = [];

  afterEach(async () => {
    await Promise.all(daemons.splice(0).map((d) => d.stop('SIGKILL')));
    await stack?.close();
    stack = undefined;
  });

  it('never writes the client secret, a bearer token or the XSOAR key to its logs, even at debug level', async () => {
    stack = await startStack({ name: 'secrets', env: { LOG_LEVEL: 'debug' } });
    const now = Date.now();
    stack.code42.loadTenant(generateTenant({ sessions: 40, seed: 41, beginFrom: now - 30 * MIN, beginTo: now, stateWeights: { OPEN: 1 } }));
    stack.xsoar.rejectNext(1, 'Invalid value for mandatory field code42username');
    stack.xsoar.setFaults({ errorAfterStoreRate: 0.1 });
    const daemon = startDaemon(stack.env);
    daemons.push(daemon);
    await waitFor(() => new Set(stack?.xsoar.incidents().map((i) => i.dbotMirrorId)).size >= 20, { timeoutMs: 20_000, what: '20 incidents' });
    // A token that Code42 revokes mid-run: refreshed, and the new one must not leak either.
    stack.code42.expireAllTokens();
    stack.code42.addSession({ sessionId: 'after-revoke-1', beginTime: Date.now() - 1000 });
    await waitFor(() => stack?.xsoar.incidentsByMirrorId('after-revoke-1').length, { timeoutMs: 20_000, what: 'the session added after the revocation' });
    await waitForDrain(stack.prefix);
    const result = await daemon.stop('SIGTERM');
    assert.equal(result.code, 0, result.stderr);

    const output = result.stdout + result.stderr;
    const tokens = stack.code42.issuedTokens();
    console.error('DEBUG', JSON.stringify(stack.code42.stats()), tokens.length, JSON.stringify(stack.xsoar.incidentsByMirrorId('after-revoke-1').map(i=>i.id)));
    assert.ok(tokens.length >= 2, `a token was refreshed during the run: ${JSON.stringify(stack.code42.stats())}`);
    const secrets = [
      CODE42_CLIENT_SECRET,
      Buffer.from(`${CODE42_CLIENT_ID}:${CODE42_CLIENT_SECRET}`).toString('base64'),
      XSOAR_API_KEY,
      ...tokens,
    ];
    for (const secret of secrets) {
      const at = output.indexOf(secret);
      assert.equal(at, -1, `secret ${secret.slice(0, 6)}… found in the logs: ${output.slice(Math.max(0, at - 300), at + 50)}`);
    }

    // pino JSON, one event per line; every line about an alert names it.
    const lines = output.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const created = lines.filter((l) => l.msg === 'incident created');
    const recovered = lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('earlier create had reached XSOAR'));
    // 41 sessions, one refused by XSOAR (failed set); the rest created, or found by the search after a 5xx.
    assert.equal(new Set([...created, ...recovered].map((l) => l.alertId)).size, 40);
    for (const l of created) {
      assert.equal(typeof l.alertId, 'string');
      assert.equal(typeof l.incidentId, 'string');
      assert.equal(typeof l.durationMs, 'number');
    }
    const started = lines.find((l) => l.msg === 'starting') as { config?: { code42?: { clientSecret?: string }; xsoar?: { apiKey?: string } } };
    // Masked by the config (and redacted again by the logger).
    assert.match(started.config?.code42?.clientSecret ?? '', /^\[(Sensitive|REDACTED)\]$/);
    assert.match(started.config?.xsoar?.apiKey ?? '', /^\[(Sensitive|REDACTED)\]$/);
  });

  it('after a restart forwards the rest, and nothing twice', async () => {
    stack = await startStack({ name: 'restart', env: { WORKER_CONCURRENCY: '4' } });
    const now = Date.now();
    stack.code42.loadTenant(generateTenant({ sessions: 80, seed: 42, beginFrom: now - 30 * MIN, beginTo: now, stateWeights: { OPEN: 1 } }));
    stack.xsoar.setFaults({ latencyMs: 20 });
    const first = startDaemon(stack.env);
    daemons.push(first);
    await waitFor(() => (stack?.xsoar.incidents().length ?? 0) >= 10, { timeoutMs: 20_000, what: 'first incidents' });
    const stopped = await first.stop('SIGTERM');
    assert.equal(stopped.code, 0, stopped.stderr);
    daemons.splice(daemons.indexOf(first), 1);
    const before = stack.xsoar.incidents().length;
    assert.ok(before < 80, 'stopped mid-run');

    // Created while it was down.
    stack.code42.loadTenant(generateTenant({ sessions: 20, seed: 43, idPrefix: 'down', beginFrom: now - 10 * MIN, beginTo: Date.now(), stateWeights: { OPEN: 1 } }));
    const second = startDaemon(stack.env);
    daemons.push(second);
    await waitFor(() => (stack?.xsoar.incidents().length ?? 0) >= 100, { timeoutMs: 30_000, what: '100 incidents' });
    await new Promise((resolve) => setTimeout(resolve, 700));
    const mirrors = stack.xsoar.incidents().map((i) => i.dbotMirrorId);
    assert.equal(mirrors.length, 100);
    assert.equal(new Set(mirrors).size, 100);
  });
});
