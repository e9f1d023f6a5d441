/**
 * Security faults against the built daemon (child process, private Redis, both simulators):
 * - secrets (Code42 client secret, its bearer tokens, the XSOAR key, the Redis password) never appear in
 *   logs, metrics, CLI output, failed-job reasons, rejected input or the Redis keyspace;
 * - an untrusted TLS certificate is one clear error line naming the CA setting, not a retry storm;
 *   with the CA file given everything arrives;
 * - HTTPS_PROXY carries all upstream traffic (every connection an upstream accepts was opened by the proxy),
 *   NO_PROXY bypasses it for the hosts it names;
 * - oversized responses from either upstream are refused with the size setting named, without duplicates.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { sessionIdFromJobId } from '../../src/store/keys.js';
import { runCli, type DaemonProcess, type RunResult } from '../helpers/daemon-process.js';
import { withForwardQueue } from '../helpers/queue.js';
import { waitFor } from '../helpers/wait.js';
import { makeFileEvent, type FileEventV2 } from '../sims/code42/tenant-generator.js';
import { mulberry32 } from '../sims/http-kit.js';
import { ForwardProxy, TcpCounter } from './connect-proxy.js';
import { FaultRun, pause, scaled, type FaultReport } from './harness.js';
import { selfSignedCertificate, type TestCertificate } from './tls.js';

const MIN = 60_000;
const TLS_PHRASE = 'TLS certificate is not trusted';

interface LogLine {
  level?: string;
  msg?: string;
  raw: string;
}

/** The daemon's pino lines (JSON) plus anything else it printed, one entry per line. */
function logLines(text: string): LogLine[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((raw) => {
      try {
        const parsed = JSON.parse(raw) as { level?: unknown; msg?: unknown };
        return {
          raw,
          ...(typeof parsed.level === 'string' ? { level: parsed.level } : {}),
          ...(typeof parsed.msg === 'string' ? { msg: parsed.msg } : {}),
        };
      } catch {
        return { raw };
      }
    });
}

/** Waits until every expected session has an incident or a job in the failed set, and the queue is idle. */
async function settle(run: FaultRun, timeoutMs = 30_000): Promise<void> {
  const expected = run.expectedSessions().map((s) => s.sessionId);
  await withForwardQueue(
    run.prefix,
    (queue) =>
      waitFor(
        async () => {
          const got = new Set(run.xsoar.incidents().map((i) => i.dbotMirrorId));
          const failed = new Set((await queue.getFailed()).map((j) => sessionIdFromJobId(String(j.id))));
          if (!expected.every((id) => got.has(id) || failed.has(id))) return false;
          const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
          return Object.values(c).every((n) => n === 0);
        },
        { timeoutMs, intervalMs: 100, what: `${expected.length} sessions settled (incident or failed set)` },
      ),
    run.env.REDIS_URL,
  );
}

async function getText(url: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url);
  return { status: res.status, text: await res.text() };
}

/** Highest VmRSS (MB) of a child process, sampled until stopped. */
function rssSampler(daemon: DaemonProcess): { stop(): number } {
  let peak = 0;
  const sample = (): void => {
    try {
      const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${daemon.child.pid}/status`, 'utf8'));
      if (m) peak = Math.max(peak, Number(m[1]) / 1024);
    } catch {
      // the process is gone
    }
  };
  sample();
  const timer = setInterval(sample, 50);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return Math.round(peak);
    },
  };
}

/**
 * Makes the run's Redis require `password` and points the run's env (daemon, CLI, keyspace dump) at it.
 * Set at runtime rather than with FaultRun's `redisPassword` option, whose start-up probe pings without it.
 */
async function requirePassword(run: FaultRun, password: string): Promise<void> {
  const admin = new Redis(run.env.REDIS_URL as string, { maxRetriesPerRequest: 3, protocol: 2 });
  try {
    await admin.config('SET', 'requirepass', password);
  } finally {
    admin.disconnect();
  }
  const url = new URL(run.env.REDIS_URL as string);
  url.password = password;
  run.env.REDIS_URL = url.toString();
  const probe = new Redis(run.env.REDIS_URL, { maxRetriesPerRequest: 3, protocol: 2 });
  try {
    assert.equal(await probe.ping(), 'PONG');
  } finally {
    probe.disconnect();
  }
  // A client without the password is refused (raw RESP, so no client library retries or hides it).
  const answer = await new Promise<string>((resolve, reject) => {
    const socket = connect(run.redis.port, '127.0.0.1', () => socket.write('PING\r\n'));
    socket.once('data', (d: Buffer) => {
      resolve(d.toString());
      socket.destroy();
    });
    socket.once('error', reject);
  });
  assert.match(answer, /^-NOAUTH/, 'Redis refuses clients without the password');
}

describe('security faults', () => {
  let cert: TestCertificate;
  const runs: FaultRun[] = [];
  const closers: Array<() => Promise<void>> = [];

  const start = async (...args: Parameters<typeof FaultRun.start>): Promise<FaultRun> => {
    const run = await FaultRun.start(...args);
    runs.push(run);
    return run;
  };
  const counter = async (targetPort: number): Promise<TcpCounter> => {
    const c = new TcpCounter(targetPort);
    await c.start();
    closers.push(() => c.close());
    return c;
  };
  const portOf = (url: string): number => Number(new URL(url).port);
  /**
   * The first half of a TLS check: the daemon against an untrusted endpoint, watched for 2 s (several
   * poll intervals, and for XSOAR a paused queue). The failure must stay one error line.
   */
  const observeUntrusted = async (run: FaultRun, env: Record<string, string>): Promise<{ ready: { status: number; text: string }; tlsLines: LogLine[]; observedMs: number }> => {
    const startedAt = Date.now();
    await run.startDaemon(0, env);
    await waitFor(() => logLines(run.allOutput()).some((l) => l.raw.includes(TLS_PHRASE)), { timeoutMs: 15_000, what: 'the TLS error line' });
    await pause(2_000);
    const ready = await getText(`http://127.0.0.1:${run.port(0)}/readyz`);
    await run.stopDaemon(0);
    const observedMs = Date.now() - startedAt;
    const tlsLines = logLines(run.allOutput()).filter((l) => l.raw.includes(TLS_PHRASE));
    assert.equal(tlsLines.length, 1, tlsLines.map((l) => l.raw).join('\n'));
    assert.equal(tlsLines[0]?.level, 'error');
    return { ready, tlsLines, observedMs };
  };
  /** The other half of a TLS check: with the CA file given, every session arrives once and no TLS error is logged. */
  const allArriveWithCa = async (name: string, opts: Omit<Parameters<typeof FaultRun.start>[0], 'name'>, sessions: number, env: Record<string, string>): Promise<FaultReport> => {
    const good = await start({ name, ...opts });
    good.addSessions(sessions);
    await good.startDaemon(0, env);
    await good.waitComplete(30_000);
    const report = await good.report();
    assert.equal(report.got, report.expected, FaultRun.summary(name, report));
    assert.equal(report.duplicates, 0);
    assert.equal(report.failed.length, 0);
    assert.equal(logLines(good.allOutput()).filter((l) => l.raw.includes(TLS_PHRASE)).length, 0);
    return report;
  };

  before(() => {
    cert = selfSignedCertificate();
  });

  after(async () => {
    for (const run of runs.splice(0)) await run.close();
    for (const close of closers.splice(0)) await close();
    cert?.remove();
  });

  it('never writes a secret to logs, metrics, CLI output, failed reasons or Redis', async (t) => {
    const clientId = 'key-secscan-1d9b2e';
    const clientSecret = 'c42-secret-7f3a9e51b2c84d06e1aa';
    const xsoarKey = 'xsoar-key-4c81f0d2e7a94b35c6dd';
    const redisPassword = 'redis-pass-9e2b7d14a6c3f805bb';
    const run = await start({
      name: 'secrets',
      code42: { clientId, clientSecret, tokenTtlSeconds: 3 },
      xsoar: { apiKey: xsoarKey },
      env: { CODE42_CLIENT_ID: clientId, CODE42_CLIENT_SECRET: clientSecret, LOG_LEVEL: 'debug' },
    });
    await requirePassword(run, redisPassword);
    // Error paths that log: XSOAR 400s (failed set), stored-then-5xx creates (ambiguous: search), a Code42 500
    // (retried), an expired token (401, then a fresh one) and one invalid session (rejected input).
    run.xsoar.rejectNext(2, 'Invalid value for field code42alertstate');
    run.xsoar.setFaults({ errorAfterStoreRate: 0.1 });
    run.code42.failNext(1, { status: 500 });
    run.addSessions(scaled(75));
    run.code42.addRawSession({ sessionId: 'secrets-bad-item', beginTime: Date.now() - MIN, scores: 'not a list' });

    await run.startDaemon(0);
    await settle(run);
    run.code42.expireAllTokens();
    await waitFor(() => run.code42.issuedTokens().length >= 4, { timeoutMs: 20_000, what: 'four Code42 tokens' });
    const metrics = await getText(`http://127.0.0.1:${run.port(0)}/metrics`);
    assert.equal(metrics.status, 200);
    const readyz = await getText(`http://127.0.0.1:${run.port(0)}/readyz`);

    const cli: Record<string, RunResult> = {
      'failed list --json': await runCli(['failed', 'list', '--json'], run.env),
      'failed list': await runCli(['failed', 'list'], run.env),
      check: await runCli(['check'], run.env),
      config: await runCli(['config'], run.env),
    };
    await run.stopDaemon(0, 'SIGTERM');
    const keyspace = await run.dumpKeyspace();
    const redis = new Redis(run.env.REDIS_URL as string, { maxRetriesPerRequest: 3, protocol: 2 });
    const keyCount = await redis.dbsize();
    redis.disconnect();

    // Every token issued, the CLI's own included, plus each token's signature part alone (catches a cut token).
    const tokens = run.code42.issuedTokens();
    const secrets: Array<[string, string]> = [
      ['CODE42_CLIENT_SECRET', clientSecret],
      ['Basic credentials', Buffer.from(`${clientId}:${clientSecret}`).toString('base64')],
      ['XSOAR_API_KEY', xsoarKey],
      ['Redis password', redisPassword],
      ...tokens.map((tok, i): [string, string] => [`Code42 token #${i + 1}`, tok]),
      ...tokens.map((tok, i): [string, string] => [`Code42 token #${i + 1} signature`, tok.split('.')[2] ?? tok]),
    ];
    const leaks = (where: string, text: string): string[] => secrets.filter(([, s]) => text.includes(s)).map(([name]) => `${name} in ${where}`);
    assert.deepEqual(leaks('self-test', `x ${clientSecret} y`), ['CODE42_CLIENT_SECRET in self-test'], 'the scanner itself works');

    // Sanity: the secrets were in use (authentication worked, several tokens), and there is plenty to scan.
    assert.ok(tokens.length >= 5, `tokens issued: ${tokens.length}`);
    assert.equal(run.xsoar.stats().authFailures, 0);
    const c42Status = run.code42.stats().byStatus;
    const xsStatus = run.xsoar.stats().byStatus;
    assert.ok((c42Status['500'] ?? 0) >= 1 && (c42Status['401'] ?? 0) >= 1, `Code42 statuses: ${JSON.stringify(c42Status)}`);
    assert.ok(xsStatus['400'] === 2 && (xsStatus['500'] ?? 0) + (xsStatus['502'] ?? 0) >= 1, `XSOAR statuses: ${JSON.stringify(xsStatus)}`);
    assert.equal(cli.check?.code, 0, `check: ${cli.check?.stdout}${cli.check?.stderr}`);
    const failedJson = JSON.parse(cli['failed list --json']?.stdout ?? '[]') as Array<{ kind: string; sessionId: string | null; reason: string }>;
    assert.equal(failedJson.filter((e) => e.kind === 'failed').length, 2, JSON.stringify(failedJson));
    assert.ok(failedJson.some((e) => e.kind === 'rejected'), 'the invalid session is listed as rejected input');
    const expected = run.expectedSessions().map((s) => s.sessionId);
    assert.ok(keyspace.length > 0 && keyCount > 0, 'the keyspace dump is not empty');
    const inKeyspace = expected.filter((id) => keyspace.includes(id)).length;
    assert.equal(inKeyspace, expected.length, 'every session id is in the keyspace dump');
    assert.ok(keyspace.includes('secrets-bad-item'), 'the rejected item is in the keyspace dump');
    const report = await run.report();
    assert.equal(report.duplicates, 0);
    assert.equal(report.got + report.failed.length, report.expected, FaultRun.summary('secrets', report));

    const output = run.allOutput();
    const lines = logLines(output);
    assert.ok(lines.some((l) => l.level === 'debug'), 'debug lines were logged');
    assert.ok(lines.some((l) => l.level === 'error' || l.level === 'warn'), 'error paths were logged');
    const found = [
      ...leaks('daemon logs', output),
      ...leaks('/metrics', metrics.text),
      ...leaks('/readyz', readyz.text),
      ...Object.entries(cli).flatMap(([name, r]) => leaks(`'${name}' output`, r.stdout + r.stderr)),
      ...leaks('Redis keyspace', keyspace),
    ];
    assert.deepEqual(found, []);
    const metricLines = metrics.text.split('\n').filter((l) => l.trim() !== '').length;
    t.diagnostic(
      `SECURITY secrets: scanned ${lines.length} log lines, ${metricLines} metric lines, /readyz, ${Object.keys(cli).length} CLI outputs, ${keyCount} keys (${keyspace.length} bytes) for ${secrets.length} secrets (${tokens.length} tokens): ${found.length} leaks; ${FaultRun.summary('secrets', report)}; Code42 statuses ${JSON.stringify(c42Status)}, XSOAR statuses ${JSON.stringify(xsStatus)}`,
    );
  });

  it('an untrusted XSOAR certificate is one error line naming XSOAR_CA_FILE; with the CA every session arrives', async (t) => {
    const tls = { key: cert.key, cert: cert.cert };
    const sessions = scaled(10);
    // More sessions than WORKER_CONCURRENCY (8): after the first failures the queue pauses, so the rest never try.
    const bad = await start({ name: 'tls-xsoar', xsoar: { tls } });
    bad.addSessions(scaled(25));
    const conns = await counter(portOf(bad.xsoar.url));
    const { ready, tlsLines, observedMs } = await observeUntrusted(bad, { XSOAR_URL: `https://127.0.0.1:${conns.port}` });
    assert.match(tlsLines[0]?.msg ?? '', /^XSOAR's TLS certificate is not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT\): give its CA with XSOAR_CA_FILE$/);
    assert.equal(bad.xsoar.incidents().length, 0);
    assert.equal(bad.xsoar.requests.length, 0, 'no request got past the handshake');
    assert.ok(bad.expectedSessions().length > 0);
    const queued = bad.expectedSessions().length;
    assert.ok(conns.connections >= 1 && conns.connections <= 8 + 2, `TLS connections attempted: ${conns.connections} for ${queued} sessions`);
    assert.equal(ready.status, 503);
    const readyBody = JSON.parse(ready.text) as { checks: Record<string, { ok: boolean; detail: string }> };
    assert.equal(readyBody.checks.xsoarAuth?.ok, false);
    assert.match(readyBody.checks.xsoarAuth?.detail ?? '', /XSOAR_CA_FILE/);

    const report = await allArriveWithCa('tls-xsoar-ca', { xsoar: { tls } }, sessions, { XSOAR_CA_FILE: cert.certPath });
    t.diagnostic(
      `SECURITY tls-xsoar: without CA ${tlsLines.length} error line over ${observedMs} ms, ${conns.connections} handshakes for ${queued} queued sessions (queue paused), 0 requests, 0 incidents, readyz ${ready.status}; with XSOAR_CA_FILE ${report.got}/${report.expected} incidents, duplicates ${report.duplicates}`,
    );
  });

  it('an untrusted Code42 certificate is one error line naming CODE42_CA_FILE; with the CA every session arrives', async (t) => {
    const tls = { key: cert.key, cert: cert.cert };
    const sessions = scaled(10);
    const bad = await start({ name: 'tls-code42', code42: { tls } });
    bad.addSessions(sessions);
    const conns = await counter(portOf(bad.code42.url));
    // Every poll fails the same way (300 ms apart), logged once.
    const { ready, tlsLines, observedMs } = await observeUntrusted(bad, { CODE42_API_URL: `https://127.0.0.1:${conns.port}` });
    assert.match(tlsLines[0]?.raw ?? '', /Code42's TLS certificate is not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT\): give its CA with CODE42_CA_FILE/);
    assert.equal(bad.xsoar.incidents().length, 0);
    assert.equal(bad.code42.stats().total, 0, 'no request got past the handshake');
    // One handshake per poll at most: polls keep trying at their interval, no tighter loop.
    const polls = Math.ceil(observedMs / 300) + 2;
    assert.ok(conns.connections >= 2 && conns.connections <= polls, `TLS connections attempted: ${conns.connections} in ${observedMs} ms (at most ${polls})`);
    // Not ready, and the failing check says why.
    assert.equal(ready.status, 503);
    const readyBody = JSON.parse(ready.text) as { checks: Record<string, { ok: boolean; detail: string }> };
    const failing = Object.entries(readyBody.checks).filter(([, c]) => !c.ok);
    assert.ok(failing.some(([, c]) => /CODE42_CA_FILE/.test(c.detail)), ready.text);
    assert.equal(readyBody.checks.code42Auth?.ok, false, ready.text);
    assert.match(readyBody.checks.code42Auth?.detail ?? '', /CODE42_CA_FILE/);

    const report = await allArriveWithCa('tls-code42-ca', { code42: { tls } }, sessions, { CODE42_CA_FILE: cert.certPath });
    t.diagnostic(
      `SECURITY tls-code42: without CA ${tlsLines.length} error line over ${observedMs} ms, ${conns.connections} handshakes (one per poll), 0 requests, readyz ${ready.status} (failing: ${failing.map(([name]) => name).join(',')}); with CODE42_CA_FILE ${report.got}/${report.expected} incidents, duplicates ${report.duplicates}`,
    );
  });

  it('HTTPS_PROXY carries all upstream traffic; NO_PROXY bypasses only the hosts it names', async (t) => {
    const proxy = new ForwardProxy();
    await proxy.start();
    closers.push(() => proxy.close());
    const tls = { key: cert.key, cert: cert.cert };
    const sessions = scaled(10);

    // 1. Both upstreams over HTTPS through the proxy: CONNECT tunnels, and every connection the simulators
    //    accept was opened by the proxy (a connection counter sits in front of each simulator).
    const viaProxy = await start({ name: 'proxy-connect', code42: { tls }, xsoar: { tls } });
    viaProxy.addSessions(sessions);
    const c42Conns = await counter(portOf(viaProxy.code42.url));
    const xsConns = await counter(portOf(viaProxy.xsoar.url));
    const c42Target = `127.0.0.1:${c42Conns.port}`;
    const xsTarget = `127.0.0.1:${xsConns.port}`;
    await viaProxy.startDaemon(0, {
      CODE42_API_URL: `https://${c42Target}`,
      XSOAR_URL: `https://${xsTarget}`,
      CODE42_CA_FILE: cert.certPath,
      XSOAR_CA_FILE: cert.certPath,
      HTTPS_PROXY: proxy.url,
    });
    await viaProxy.waitComplete(30_000);
    await viaProxy.stopDaemon(0, 'SIGTERM');
    const r1 = await viaProxy.report();
    assert.equal(r1.got, r1.expected, FaultRun.summary('proxy-connect', r1));
    assert.equal(r1.duplicates, 0);
    assert.ok(viaProxy.code42.stats().total > 0 && viaProxy.xsoar.requests.length > 0);
    assert.ok(proxy.tunnelsTo(c42Target) >= 1, `CONNECTs to Code42: ${proxy.tunnelsTo(c42Target)}`);
    assert.ok(proxy.tunnelsTo(xsTarget) >= 1, `CONNECTs to XSOAR: ${proxy.tunnelsTo(xsTarget)}`);
    assert.equal(c42Conns.connections, proxy.upstreamTo(c42Target), 'every Code42 connection was opened by the proxy');
    assert.equal(xsConns.connections, proxy.upstreamTo(xsTarget), 'every XSOAR connection was opened by the proxy');
    assert.deepEqual([...proxy.upstream.keys()].sort(), [c42Target, xsTarget].sort());
    assert.equal(proxy.requests.size, 0, 'https targets are tunnelled, never relayed in the clear');
    assert.deepEqual(proxy.strays, []);
    const connectSummary = `Code42 ${proxy.tunnelsTo(c42Target)} tunnels/${viaProxy.code42.stats().total} requests, XSOAR ${proxy.tunnelsTo(xsTarget)} tunnels/${viaProxy.xsoar.requests.length} requests`;

    // 2. Plain HTTP with the lower-case variables: Code42 addressed as localhost goes through the proxy;
    //    XSOAR at 127.0.0.1 is named by no_proxy and connects directly. (For http targets the proxy may see
    //    CONNECT or absolute-form requests; either way it opens the connections the simulator accepts.)
    proxy.reset();
    const split = await start({ name: 'proxy-split' });
    split.addSessions(sessions);
    const c42Split = await counter(portOf(split.code42.url));
    const xsSplit = await counter(portOf(split.xsoar.url));
    const c42HostPort = `localhost:${c42Split.port}`;
    const xsHostPort = `127.0.0.1:${xsSplit.port}`;
    await split.startDaemon(0, {
      CODE42_API_URL: `http://${c42HostPort}`,
      XSOAR_URL: `http://${xsHostPort}`,
      https_proxy: proxy.url,
      no_proxy: '127.0.0.1',
    });
    await split.waitComplete(30_000);
    await split.stopDaemon(0, 'SIGTERM');
    const r2 = await split.report();
    assert.equal(r2.got, r2.expected, FaultRun.summary('proxy-split', r2));
    assert.equal(r2.duplicates, 0);
    const code42Total = split.code42.stats().total;
    assert.ok(code42Total > 0);
    assert.ok(proxy.upstreamTo(c42HostPort) >= 1, 'Code42 traffic went through the proxy');
    assert.equal(c42Split.connections, proxy.upstreamTo(c42HostPort), 'every Code42 connection was opened by the proxy');
    assert.deepEqual([...proxy.upstream.keys()], [c42HostPort], 'the proxy saw Code42 only');
    assert.ok(xsSplit.connections >= 1, 'XSOAR was reached directly');
    assert.ok(split.xsoar.requests.length >= r2.expected, `XSOAR requests: ${split.xsoar.requests.length}`);
    assert.deepEqual(proxy.strays, []);
    const mode = proxy.tunnelsTo(c42HostPort) > 0 ? `${proxy.tunnelsTo(c42HostPort)} CONNECTs` : `${proxy.requestsTo(c42HostPort)} absolute-form requests`;
    t.diagnostic(
      `SECURITY proxy: https via CONNECT: ${connectSummary}, 0 direct connections, ${r1.got}/${r1.expected} incidents; no_proxy=127.0.0.1: Code42 over http via proxy (${mode}, ${c42Split.connections} connections, ${code42Total} requests), XSOAR 0 via proxy/${xsSplit.connections} direct connections/${split.xsoar.requests.length} requests, ${r2.got}/${r2.expected} incidents`,
    );
  });

  it('a Code42 response over CODE42_MAX_RESPONSE_SIZE is refused and an events answer over CODE42_MAX_EVENTS_SIZE is read no further: memory stays low', async (t) => {
    const run = await start({ name: 'size-code42', env: { CODE42_MAX_RESPONSE_SIZE: '4MB', CODE42_MAX_EVENTS_SIZE: '4MB' } });
    run.addSessions(scaled(10));
    // About 10 MB of file events behind one session (each event padded with a long directory path).
    const rnd = mulberry32(99);
    const pad = `/Users/pad/${'deep-folder/'.repeat(90)}`;
    const events: FileEventV2[] = [];
    for (let i = 0; i < 3000; i++) events.push(makeFileEvent(rnd, { file: { directory: pad } }));
    const bigId = 'size-code42-big-session';
    run.code42.addSession({ sessionId: bigId, beginTime: Date.now() - 5 * MIN }, { events });
    const bodyBytes = Buffer.byteLength(JSON.stringify(events));
    assert.ok(bodyBytes > 9 * 1024 * 1024, `events body is ${bodyBytes} bytes`);
    // An actor answer of about 5 MB: buffered answers are refused over CODE42_MAX_RESPONSE_SIZE.
    const hugeActorSession = 'size-code42-huge-actor';
    run.code42.addActor({ actorId: 'huge-actor', name: 'n'.repeat(5 * 1024 * 1024) });
    run.code42.addSession({ sessionId: hugeActorSession, beginTime: Date.now() - 5 * MIN, actorId: 'huge-actor' });

    const daemon = await run.startDaemon(0);
    const rss = rssSampler(daemon);
    await settle(run);
    const peakMb = rss.stop();
    await run.stopDaemon(0, 'SIGTERM');
    const report = await run.report();
    assert.deepEqual(report.missing, [hugeActorSession], FaultRun.summary('size-code42', report));
    assert.equal(report.duplicates, 0);
    assert.equal(report.failed.length, 1);
    const reason = report.failed[0]?.reason ?? '';
    assert.equal(sessionIdFromJobId(report.failed[0]?.id ?? ''), hugeActorSession);
    assert.match(reason, /^Code42 actors\.get refused: response body is over the 4 MB limit \(CODE42_MAX_RESPONSE_SIZE\)$/);
    const listed = JSON.parse((await runCli(['failed', 'list', '--json'], run.env)).stdout) as Array<{ sessionId: string; reason: string }>;
    assert.ok(listed.some((e) => e.sessionId === hugeActorSession && e.reason === reason), JSON.stringify(listed));
    // The events answer was read up to the cap: the session arrived, stating the events counted by then.
    const big = run.xsoar.incidentsByMirrorId(bigId)[0];
    const raw = JSON.parse(big?.rawJSON ?? '{}') as { fileevents_total?: number; fileevents_shown?: number };
    assert.ok((raw.fileevents_total ?? 0) > 0 && (raw.fileevents_total ?? 0) < 3_000, `events counted before the cap: ${raw.fileevents_total}`);
    assert.ok((raw.fileevents_shown ?? 0) > 0);
    assert.ok(peakMb > 0 && peakMb < 300, `daemon peak RSS ${peakMb} MB`);
    t.diagnostic(
      `SECURITY size-code42: 5 MB actor answer refused at 4 MB ("${reason}"); ${(bodyBytes / 1024 / 1024).toFixed(1)} MB events answer read up to 4 MB (${raw.fileevents_total} events counted, ${raw.fileevents_shown} shown); ${report.got}/${report.expected - 1} other sessions arrived; daemon peak RSS ${peakMb} MB`,
    );
  });

  it('an XSOAR response over XSOAR_MAX_RESPONSE_SIZE is refused: the job fails after its attempts, with no duplicate incident', async (t) => {
    const run = await start({ name: 'size-xsoar', env: { XSOAR_MAX_RESPONSE_SIZE: '1KB', WORKER_ATTEMPTS: '3' } });
    run.addSessions(scaled(3));
    await run.startDaemon(0);
    await settle(run);
    await run.stopDaemon(0, 'SIGTERM');
    const report = await run.report();
    const expected = run.expectedSessions().map((s) => s.sessionId);
    assert.ok(expected.length > 0);
    assert.equal(report.failed.length, expected.length, FaultRun.summary('size-xsoar', report));
    for (const f of report.failed) assert.match(f.reason, /^XSOAR incident(s\.search|\.create) refused: response body is over the 1 KB limit \(XSOAR_MAX_RESPONSE_SIZE\)$/);
    const perSession = expected.map((id) => run.xsoar.incidentsByMirrorId(id).length);
    assert.ok(perSession.every((n) => n <= 1), `incidents per session: ${perSession.join(',')}`);
    assert.equal(report.duplicates, 0);
    const creates = run.xsoar.stats().creates;
    assert.equal(creates, expected.length, 'one create per session: the retries searched instead of creating again');
    const attempts = await withForwardQueue(run.prefix, async (q) => (await q.getFailed()).map((j) => j.attemptsMade), run.env.REDIS_URL);
    assert.ok(attempts.every((n) => n === 3), `attempts: ${attempts.join(',')}`);
    t.diagnostic(
      `SECURITY size-xsoar: ${report.failed.length}/${expected.length} sessions in the failed set after 3 attempts ("${report.failed[0]?.reason ?? ''}"); ${creates} creates, ${run.xsoar.stats().searches} searches, incidents per session ${perSession.join(',')}`,
    );
  });
});
