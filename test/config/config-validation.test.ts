import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/index.js';
import { VALID, problemsOf } from '../helpers/config-env.js';
import { runCli } from '../helpers/daemon-process.js';

describe('configuration', () => {
  it('accepts the documented defaults once the required keys are set', () => {
    const config = loadConfig({ env: VALID });
    assert.deepEqual(config.code42.severities, ['critical', 'high', 'moderate', 'low']);
    assert.deepEqual(config.code42.states, ['OPEN', 'OPEN_NEW_DATA']);
    assert.equal(config.poll.interval, 30_000);
    assert.equal(config.poll.firstFetch, 86_400_000);
    assert.equal(config.poll.lookback, 7_200_000);
    assert.equal(config.code42.rateLimit, 120);
    assert.equal(config.redis.prefix, 'c42x');
    assert.equal(config.code42.consoleUrl, 'https://console.us.code42.com');
  });

  it('reads durations in every documented unit', () => {
    for (const [text, ms] of [['500ms', 500], ['30s', 30_000], ['5m', 300_000], ['2h', 7_200_000], ['1d', 86_400_000]] as const) {
      assert.equal(loadConfig({ env: { ...VALID, POLL_INTERVAL: text } }).poll.interval, ms, text);
    }
  });

  it('lets the environment override the config file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'c42x-cfg-'));
    const file = join(dir, 'forwarder.json');
    writeFileSync(file, JSON.stringify({ poll: { interval: '5m', lookback: '1h' }, code42: { severities: ['high'] } }));
    const config = loadConfig({ env: { ...VALID, POLL_INTERVAL: '10s', FORWARDER_CONFIG: file } });
    assert.equal(config.poll.interval, 10_000);
    assert.equal(config.poll.lookback, 3_600_000);
    assert.deepEqual(config.code42.severities, ['high']);
  });

  it('takes state names Code42 adds later in ALERT_STATES, and refuses what is not a state name', () => {
    assert.deepEqual(loadConfig({ env: { ...VALID, ALERT_STATES: 'open, snoozed_for_review' } }).code42.states, ['OPEN', 'SNOOZED_FOR_REVIEW']);
    const problems = problemsOf({ ...VALID, ALERT_STATES: 'OPEN,in progress' });
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.ok(problems[0]?.startsWith('code42.states (ALERT_STATES):') && problems[0].includes('"in progress"'), problems[0]);
  });

  it('names the key and its env variable in every problem, one line each', () => {
    const problems = problemsOf({ ...VALID, ALERT_SEVERITIES: 'urgent', POLL_INTERVAL: 'soon', CODE42_CLIENT_SECRET: '' });
    assert.equal(problems.length, 3, problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith('code42.severities (ALERT_SEVERITIES):') && p.includes('"urgent"')));
    assert.ok(problems.some((p) => p.startsWith('poll.interval (POLL_INTERVAL):')));
    assert.ok(problems.some((p) => p.startsWith('code42.clientSecret (CODE42_CLIENT_SECRET): is required')));
  });

  it('never echoes a sensitive value in a problem', () => {
    const problems = problemsOf({ ...VALID, REDIS_URL: 'http://user:hunter2-pass@redis:6379' });
    assert.equal(problems.length, 1);
    assert.ok(problems[0]?.startsWith('redis.url (REDIS_URL):'));
    assert.ok(!problems[0]?.includes('hunter2-pass'), problems[0]);
  });
});

describe('bad configuration stops start-up', () => {
  const cases: Array<{ name: string; env: Record<string, string>; file?: object; key: string }> = [
    { name: 'a missing client secret', env: { ...VALID, CODE42_CLIENT_SECRET: '' }, key: 'code42.clientSecret (CODE42_CLIENT_SECRET)' },
    { name: 'ALERT_SEVERITIES=urgent', env: { ...VALID, ALERT_SEVERITIES: 'urgent' }, key: 'code42.severities (ALERT_SEVERITIES)' },
    { name: 'POLL_INTERVAL=soon', env: { ...VALID, POLL_INTERVAL: 'soon' }, key: 'poll.interval (POLL_INTERVAL)' },
    { name: 'an unknown key in the file', env: VALID, file: { code42: { clientIdd: 'key-x' } }, key: 'code42.clientIdd: unknown key' },
  ];
  for (const c of cases) {
    it(`exits 2 with a line naming the key for ${c.name}`, async () => {
      const env = { ...c.env };
      if (c.file) {
        const dir = mkdtempSync(join(tmpdir(), 'c42x-cfg-'));
        env.FORWARDER_CONFIG = join(dir, 'forwarder.json');
        writeFileSync(env.FORWARDER_CONFIG, JSON.stringify(c.file));
      }
      const result = await runCli(['run'], env);
      assert.equal(result.code, 2, result.stderr);
      const lines = result.stderr.trim().split('\n');
      assert.ok(lines.some((l) => l.includes(c.key)), result.stderr);
      assert.ok(!/\n\s+at /.test(result.stderr), `no stack trace expected:\n${result.stderr}`);
      assert.ok(!result.stderr.includes(VALID.CODE42_CLIENT_SECRET as string));
    });
  }
});
