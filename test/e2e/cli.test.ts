import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { afterEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { generateTenant } from '../sims/code42/index.js';
import { runCli, startDaemon, type DaemonProcess } from '../helpers/daemon-process.js';
import { CODE42_CLIENT_SECRET, XSOAR_API_KEY, startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

const MIN = 60_000;

describe('command line', () => {
  let stack: Stack | undefined;
  const daemons: DaemonProcess[] = [];
  afterEach(async () => {
    await Promise.all(daemons.splice(0).map((d) => d.stop('SIGKILL')));
    await stack?.close();
    stack = undefined;
  });

  it('answers --help for every command and exits 2 on bad arguments', async () => {
    for (const command of ['run', 'check', 'failed', 'replay', 'config']) {
      const help = await runCli([command, '--help'], {});
      assert.equal(help.code, 0, command);
      assert.match(help.stdout, /^Usage: code42-xsoar-forwarder /);
    }
    for (const args of [['bogus'], ['config', '--nope'], ['failed'], ['failed', 'explode'], ['failed', 'retry'], ['replay'], ['replay', '--since', 'whenever'], ['run', 'extra']]) {
      const result = await runCli(args, {});
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, /Usage: code42-xsoar-forwarder/);
    }
  });

  it('prints the configuration table docs/configuration.md carries', async () => {
    const result = await runCli(['config', '--markdown'], {});
    assert.equal(result.code, 0);
    assert.match(result.stdout, /\| code42\.clientSecret \| `CODE42_CLIENT_SECRET` \| \(required\) \|/);
    const readme = readFileSync(fileURLToPath(new URL('../../docs/configuration.md', import.meta.url)), 'utf8');
    assert.ok(readme.includes(result.stdout.trim()), 'docs/configuration.md configuration table differs from `config --markdown`: regenerate it (npm run docs:config)');
  });

  it('check passes against both simulators and names the cause in one line when a credential is wrong', async () => {
    stack = await startStack({ name: 'check' });
    stack.code42.addSession({ sessionId: 'one', beginTime: Date.now() - MIN });
    const ok = await runCli(['check'], stack.env);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    const lines = ok.stdout.trim().split('\n');
    assert.deepEqual(lines.map((l) => l.split(':')[0]), ['OK   config', 'OK   code42 token', 'OK   code42 sessions', 'OK   xsoar', 'OK   xsoar user', 'OK   xsoar incident type', 'OK   redis', 'WARN first start']);
    // A deployment that never polled: the first run's import and its playbooks are announced.
    assert.match(ok.stdout, /^WARN first start: the first run will forward 1 session\(s\) since FIRST_FETCH \(1d\) and start the incident type's playbook/m);

    const badXsoar = await runCli(['check'], { ...stack.env, XSOAR_API_KEY: 'not-the-key' });
    assert.equal(badXsoar.code, 1);
    const xsoarFail = badXsoar.stdout.split('\n').filter((l) => l.startsWith('FAIL'));
    assert.equal(xsoarFail.length, 1, badXsoar.stdout);
    assert.match(xsoarFail[0] ?? '', /^FAIL xsoar: XSOAR refused the API key \(HTTP 403: Issue with CSRF code.*check XSOAR_API_KEY/);

    const badCode42 = await runCli(['check'], { ...stack.env, CODE42_CLIENT_SECRET: 'wrong-secret' });
    assert.equal(badCode42.code, 1);
    const code42Fail = badCode42.stdout.split('\n').filter((l) => l.startsWith('FAIL'));
    assert.match(code42Fail[0] ?? '', /^FAIL code42 token: Code42 refused the API client credentials \(HTTP 401 from \/v1\/oauth\): check CODE42_CLIENT_ID and CODE42_CLIENT_SECRET$/);
    for (const out of [ok, badXsoar, badCode42]) {
      for (const secret of [CODE42_CLIENT_SECRET, XSOAR_API_KEY, 'wrong-secret', 'not-the-key']) assert.ok(!(out.stdout + out.stderr).includes(secret));
    }
  });

  it('failed retry --all turns failed jobs into incidents once the cause is fixed, without duplicates', async () => {
    stack = await startStack({ name: 'retry', env: { WORKER_CONCURRENCY: '2' } });
    const now = Date.now();
    stack.code42.loadTenant(generateTenant({ sessions: 12, seed: 51, beginFrom: now - 20 * MIN, beginTo: now, stateWeights: { OPEN: 1 } }));
    // XSOAR refuses the first 5 creates (say, a mandatory field the admin has since relaxed).
    stack.xsoar.rejectNext(5, 'Missing mandatory field: Code42 Analyst');
    const daemon = startDaemon(stack.env);
    daemons.push(daemon);
    await waitFor(() => (stack?.xsoar.incidents().length ?? 0) >= 7, { timeoutMs: 20_000, what: '7 incidents' });
    const list = await runCli(['failed', 'list', '--json'], stack.env);
    assert.equal(list.code, 0, list.stderr);
    const failed = (JSON.parse(list.stdout) as Array<{ kind: string; reason: string; sessionId: string }>).filter((e) => e.kind === 'failed');
    assert.equal(failed.length, 5);
    for (const f of failed) assert.match(f.reason, /XSOAR rejected the request \(HTTP 400\): Missing mandatory field: Code42 Analyst/);
    const human = await runCli(['failed', 'list'], stack.env);
    assert.match(human.stdout, /^KIND\s+QUEUE\s+SESSION\s+ATTEMPTS\s+WHEN\s+REASON/);

    const retry = await runCli(['failed', 'retry', '--all'], stack.env);
    assert.equal(retry.code, 0, retry.stderr);
    assert.match(retry.stdout, /moved 5 failed job\(s\) back to the queue/);
    await waitFor(() => (stack?.xsoar.incidents().length ?? 0) >= 12, { timeoutMs: 20_000, what: '12 incidents' });
    await new Promise((r) => setTimeout(r, 500));
    const mirrors = stack.xsoar.incidents().map((i) => i.dbotMirrorId);
    assert.equal(mirrors.length, 12);
    assert.equal(new Set(mirrors).size, 12);
    // Retrying again changes nothing: the ledger holds.
    assert.match((await runCli(['failed', 'retry', '--all'], stack.env)).stdout, /moved 0 failed/);
  });
});
