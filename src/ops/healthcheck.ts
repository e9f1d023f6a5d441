/**
 * Container health check: `node dist/ops/healthcheck.js`.
 *
 * Asks the daemon's own ops server for `/livez` and exits 0 on a 200, 1 on anything else (another
 * status, refused connection, no answer within 3 s). It is the image's `HEALTHCHECK` because the slim
 * and distroless Node images have no curl or wget.
 *
 * It imports nothing from the rest of the daemon so that it starts in a few milliseconds and keeps
 * working when the daemon's own modules or configuration are broken. It reads only `HTTP_PORT` from
 * the environment: when the port is set in a `FORWARDER_CONFIG` file instead, set `HTTP_PORT` as well.
 */
import http from 'node:http';

const TIMEOUT_MS = 3_000;
const DEFAULT_PORT = 8080;

/** The ops port from `HTTP_PORT`, or 8080 when it is unset or not a port number. */
function opsPort(env: NodeJS.ProcessEnv): number {
  const raw = env.HTTP_PORT?.trim();
  if (raw === undefined || raw === '') return DEFAULT_PORT;
  const port = Number(raw);
  return Number.isInteger(port) && port > 0 && port < 65536 ? port : DEFAULT_PORT;
}

/** Resolves to the status code of `GET /livez`, or to an error message. */
function probe(port: number): Promise<{ status: number } | { error: string }> {
  return new Promise((resolve) => {
    const req = http.get(
      {
        host: '127.0.0.1',
        port,
        path: '/livez',
        agent: false,
        // The whole exchange (connect, headers) must fit in TIMEOUT_MS.
        signal: AbortSignal.timeout(TIMEOUT_MS),
      },
      (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0 });
      },
    );
    req.on('error', (err) => {
      const timedOut = err.name === 'AbortError' || err.name === 'TimeoutError';
      resolve({ error: timedOut ? `no answer within ${TIMEOUT_MS} ms` : err.message });
    });
  });
}

const port = opsPort(process.env);
const result = await probe(port);
if ('status' in result && result.status === 200) {
  process.exit(0);
}
const reason = 'status' in result ? `status ${result.status}` : result.error;
process.stderr.write(`healthcheck: GET http://127.0.0.1:${port}/livez failed: ${reason}\n`);
process.exit(1);
