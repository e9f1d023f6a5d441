/**
 * Configuration that would silently do something else: misspelt variables, durations without a unit;
 * and the views that show what is in force (`config --effective`, `--version`).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/index.js';
import { VALID, problemsOf } from '../helpers/config-env.js';
import { unknownEnvVariables } from '../../src/config/unknown-env.js';
import { runCli, startDaemon } from '../helpers/daemon-process.js';
import { startStack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

function tempFile(content: object): string {
  const file = join(mkdtempSync(join(tmpdir(), 'c42x-cfg-')), 'forwarder.json');
  writeFileSync(file, JSON.stringify(content));
  return file;
}

describe('settings that would silently do something else', { timeout: 120_000 }, () => {
  it('finds variables that look like settings but are none, each with the closest real name', () => {
    const found = unknownEnvVariables({
      ...VALID,
      ALERT_SEVERITY: 'critical',
      LOG_LEVL: 'debug',
      alert_states: 'OPEN',
      CODE42_SECRET: 'x',
      XSOAR_APIKEY: 'x',
      // Not ours: the usual environment, proxies other programs read, Kubernetes service links.
      PATH: '/usr/bin',
      HOME: '/root',
      HTTP_PROXY: 'http://proxy:3128',
      NODE_OPTIONS: '--max-old-space-size=256',
      REDIS_SERVICE_HOST: '10.0.0.5',
      REDIS_PORT: 'tcp://10.0.0.5:6379',
      REDIS_PORT_6379_TCP_ADDR: '10.0.0.5',
      CODE42_XSOAR_FORWARDER_SERVICE_PORT_OPS: '8080',
    });
    assert.deepEqual(found, [
      { name: 'ALERT_SEVERITY', suggestion: 'ALERT_SEVERITIES' },
      { name: 'CODE42_SECRET', suggestion: 'CODE42_CLIENT_SECRET' },
      { name: 'LOG_LEVL', suggestion: 'LOG_LEVEL' },
      { name: 'XSOAR_APIKEY', suggestion: 'XSOAR_API_KEY' },
      { name: 'alert_states', suggestion: 'ALERT_STATES' },
    ]);
    assert.deepEqual(unknownEnvVariables({ ...VALID, FORWARDER_CONFIG: '/etc/f.json', https_proxy: 'http://p:1' }), []);
  });

  it('refuses a duration without a unit, naming the key, from the environment and from the file', () => {
    assert.deepEqual(problemsOf({ ...VALID, POLL_INTERVAL: '30' }), ['poll.interval (POLL_INTERVAL): 30: give a unit, e.g. 30s (ms, s, m, h or d)']);
    const both = problemsOf({ ...VALID, XSOAR_TIMEOUT: '1.5', WORKER_BACKOFF: '5s' });
    assert.equal(both.length, 1, both.join('\n'));
    assert.match(both[0] ?? '', /^xsoar\.timeout \(XSOAR_TIMEOUT\): 1\.5: give a unit, e.g\. 1\.5s/);
    const fromFile = problemsOf(VALID, tempFile({ poll: { lookback: '90' } }));
    assert.deepEqual(fromFile, ['poll.lookback (LOOKBACK): 90: give a unit, e.g. 90s (ms, s, m, h or d)']);
    // With a unit, the same numbers are fine.
    assert.equal(loadConfig({ env: { ...VALID, POLL_INTERVAL: '30s' } }).poll.interval, 30_000);
  });

  it('check fails, and run warns at start, on a misspelt variable', async (t) => {
    const stack = await startStack({ name: 'unknownenv' });
    t.after(() => stack.close());
    const ok = await runCli(['check'], stack.env);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);

    const typo = await runCli(['check'], { ...stack.env, ALERT_SEVERITY: 'critical' });
    assert.equal(typo.code, 1, typo.stdout);
    const fails = typo.stdout.split('\n').filter((l) => l.startsWith('FAIL'));
    assert.deepEqual(fails, ['FAIL env: ALERT_SEVERITY is not a setting of this daemon and is ignored; did you mean ALERT_SEVERITIES?']);

    const daemon = startDaemon({ ...stack.env, ALERT_SEVERITY: 'critical', LOG_LEVEL: 'info' });
    t.after(() => daemon.stop('SIGKILL'));
    const line = await waitFor(
      () => daemon.output().split('\n').find((l) => l.includes('"variable":"ALERT_SEVERITY"')),
      { timeoutMs: 20_000, what: 'the start-up warning' },
    );
    const parsed = JSON.parse(line) as { level: string; msg: string; suggestion: string };
    assert.equal(parsed.level, 'warn');
    assert.equal(parsed.suggestion, 'ALERT_SEVERITIES');
    assert.match(parsed.msg, /ALERT_SEVERITY is not a setting.*did you mean ALERT_SEVERITIES\?/);
  });

  it('run stops at start-up on a duration without a unit', async () => {
    const result = await runCli(['run'], { ...VALID, POLL_INTERVAL: '30' });
    assert.equal(result.code, 2, result.stderr);
    assert.equal(result.stderr.trim(), 'config error: poll.interval (POLL_INTERVAL): 30: give a unit, e.g. 30s (ms, s, m, h or d)');
  });
});

describe('what is in force', { timeout: 60_000 }, () => {
  it('config --effective shows each value in force, where it came from, and no secret', async () => {
    const file = tempFile({ poll: { interval: '5m', lookback: '1h' }, worker: { concurrency: 3 } });
    const env = { ...VALID, REDIS_URL: 'redis://:redis-pass-123@127.0.0.1:1', FORWARDER_CONFIG: file, LOOKBACK: '3h', ALERT_SEVERITIES: 'critical' };
    const result = await runCli(['config', '--effective'], env);
    assert.equal(result.code, 0, result.stderr);
    const rows = new Map(
      result.stdout
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => {
          const [key, env, value, source] = l.split(/\s{2,}/);
          return [key, { env, value, source }];
        }),
    );
    assert.deepEqual(rows.get('poll.interval'), { env: 'POLL_INTERVAL', value: '5m', source: 'file' });
    assert.deepEqual(rows.get('poll.lookback'), { env: 'LOOKBACK', value: '3h', source: 'env' });
    assert.deepEqual(rows.get('worker.concurrency'), { env: 'WORKER_CONCURRENCY', value: '3', source: 'file' });
    assert.deepEqual(rows.get('code42.severities'), { env: 'ALERT_SEVERITIES', value: 'critical', source: 'env' });
    assert.deepEqual(rows.get('poll.firstFetch'), { env: 'FIRST_FETCH', value: '1d', source: 'default' });
    assert.deepEqual(rows.get('code42.clientSecret'), { env: 'CODE42_CLIENT_SECRET', value: '[REDACTED]', source: 'env' });
    assert.equal(rows.get('redis.url')?.source, 'env');
    for (const secret of [VALID.CODE42_CLIENT_SECRET, VALID.XSOAR_API_KEY, 'redis-pass-123']) {
      assert.ok(!result.stdout.includes(secret as string), `${secret} in the output`);
    }
    const bad = await runCli(['config', '--effective'], { ...VALID, POLL_INTERVAL: '30' });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^config error: poll\.interval \(POLL_INTERVAL\): 30: give a unit/);
  });

  it('--version prints the package version', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    const result = await runCli(['--version'], {});
    assert.equal(result.code, 0);
    assert.equal(result.stdout, `code42-xsoar-forwarder ${pkg.version}\n`);
  });
});
