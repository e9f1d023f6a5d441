/**
 * What the command line prints for an operator: a closed pipe ends it quietly, `config --effective`
 * shows every value as it is written (pair lists, the file it read), unknown file keys get a "did you
 * mean", ids and keys lose the spaces a copy-paste added, and Redis being down reads as such.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/index.js';
import { VALID, problemsOf } from '../helpers/config-env.js';
import { MAIN_JS, runCli } from '../helpers/daemon-process.js';
import { trackChild } from '../helpers/cleanup.js';

/** Runs the CLI with its stdout read for one chunk and then closed, as `| head -1` does. */
function firstChunkThenClose(args: string[], env: Record<string, string>): Promise<{ code: number | null; stderr: string; first: string }> {
  const child = spawn(process.execPath, [MAIN_JS, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(child);
  let stderr = '';
  let first = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.once('data', (d: Buffer) => {
    first = d.toString();
    child.stdout.destroy();
  });
  return new Promise((done) => child.on('exit', (code) => done({ code, stderr, first })));
}

describe('command-line output', () => {
  it('a reader that goes away ends the command quietly, without an EPIPE stack trace', async () => {
    // config prints about 10 KB in many writes: the pipe closes after the first.
    for (let i = 0; i < 3; i++) {
      const result = await firstChunkThenClose(['config'], {});
      assert.ok(result.first.length > 0);
      assert.doesNotMatch(result.stderr, /EPIPE|at |Error/, result.stderr);
      assert.equal(result.code, 0);
    }
  });

  it('config --effective prints the close-reason maps as written and names the config file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'c42x-eff-'));
    const file = join(dir, 'forwarder.json');
    writeFileSync(file, JSON.stringify({ poll: { interval: '1m' } }));
    const result = await runCli(['config', '--effective'], { ...VALID, FORWARDER_CONFIG: file });
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stdout, /\[object Object\]/);
    assert.match(result.stdout, /^sync\.closeReasonStates\s+STATE_SYNC_CLOSE_REASONS\s+False Positive=CLOSED_FP,Resolved=CLOSED_TP,\*=CLOSED\s+default$/m);
    assert.match(result.stdout, /^sync\.stateCloseReasons\s+STATE_SYNC_CLOSE_STATES\s+CLOSED_FP=False Positive,/m);
    assert.match(result.stdout, new RegExp(`^file: ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} \\(FORWARDER_CONFIG\\)$`, 'm'));
    const none = await runCli(['config', '--effective'], { ...VALID });
    assert.match(none.stdout, /^file: none \(FORWARDER_CONFIG is not set/m);
    assert.match(none.stdout, /^code42\.clientSecret\s+CODE42_CLIENT_SECRET\s+\[REDACTED\]\s+env$/m);
  });

  it('an unknown key in the config file names the key it most likely meant', () => {
    const dir = mkdtempSync(join(tmpdir(), 'c42x-dym-'));
    const file = join(dir, 'forwarder.json');
    writeFileSync(file, JSON.stringify({ poll: { intervall: '1m' }, xsoar: { incidentTyp: 'X' } }));
    const problems = problemsOf({ ...VALID }, file);
    assert.ok(problems.some((p) => /^poll\.intervall: unknown key .*did you mean poll\.interval \(POLL_INTERVAL\)\?/.test(p)), problems.join('\n'));
    assert.ok(problems.some((p) => /^xsoar\.incidentTyp: unknown key .*did you mean xsoar\.incidentType \(XSOAR_INCIDENT_TYPE\)\?/.test(p)), problems.join('\n'));
  });

  it('drops the spaces a copy-paste puts around ids, keys and URLs', () => {
    const config = loadConfig({ env: { ...VALID, CODE42_CLIENT_ID: ' key-x ', XSOAR_API_KEY: 'k-1 ', XSOAR_URL: ' https://xsoar.example.com ' } });
    assert.equal(config.code42.clientId, 'key-x');
    assert.equal(config.xsoar.apiKey, 'k-1');
    assert.equal(config.xsoar.url, 'https://xsoar.example.com');
  });

  it('check with Redis down says there is no connection, not which ioredis option gave up', async () => {
    // Nothing listens on port 1; the upstreams are not reachable either, and that is not what is checked.
    const result = await runCli(['check'], { ...VALID, CODE42_API_URL: 'http://127.0.0.1:1', XSOAR_URL: 'http://127.0.0.1:1', CODE42_TIMEOUT: '1s', XSOAR_TIMEOUT: '1s', CODE42_RETRIES: '0' }, 60_000);
    const redis = result.stdout.split('\n').find((l) => l.includes(' redis: ')) ?? '';
    assert.match(redis, /^FAIL redis: redis:\/\/127\.0\.0\.1:1 does not answer: no connection \(ECONNREFUSED\)$/, result.stdout);
    assert.doesNotMatch(result.stdout, /maxRetriesPerRequest/);
  });

  it('a Code42 URL that answers HTML (the console, a proxy page) is named with its content type and the setting', async () => {
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><html><body>Sign in to Code42</body></html>');
    });
    await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const result = await runCli(['check'], { ...VALID, CODE42_API_URL: url, XSOAR_URL: 'http://127.0.0.1:1', XSOAR_TIMEOUT: '1s' }, 60_000);
      const token = result.stdout.split('\n').find((l) => l.includes(' code42 token: ')) ?? '';
      assert.match(token, new RegExp(`^FAIL code42 token: .*not JSON \\(content-type text/html from ${url}/v1/oauth.*: is CODE42_API_URL the API gateway`), result.stdout);
    } finally {
      server.close();
    }
  });
});
