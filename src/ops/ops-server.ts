import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../infra/logger.js';
import type { ForwarderMetrics } from './metrics.js';
import type { ReadinessReport } from './readiness.js';

export interface OpsServerOptions {
  host: string;
  port: number;
  metrics: ForwarderMetrics;
  /** Undefined until the daemon has its Redis connections. */
  readiness: () => Promise<ReadinessReport>;
  logger: Logger;
}

/** /livez, /readyz and /metrics on plain node:http. */
export class OpsServer {
  private server: Server | undefined;
  private readonly startedAt = Date.now();

  constructor(private readonly opts: OpsServerOptions) {}

  async start(): Promise<number> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.opts.logger.warn({ err }, 'ops request failed');
        if (!res.headersSent) this.send(res, 500, 'application/json', JSON.stringify({ error: 'internal error' }));
      });
    });
    server.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => resolve());
    });
    this.server = server;
    const { port } = server.address() as AddressInfo;
    this.opts.logger.info({ host: this.opts.host, port }, 'ops server listening (/livez, /readyz, /metrics)');
    return port;
  }

  get port(): number | undefined {
    const address = this.server?.address();
    return address && typeof address === 'object' ? address.port : undefined;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      this.send(res, 405, 'application/json', JSON.stringify({ error: 'method not allowed' }));
      return;
    }
    switch (path) {
      case '/livez':
      case '/healthz':
        // Answering at all proves the process and its event loop are alive.
        this.send(res, 200, 'application/json', JSON.stringify({ status: 'ok', uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000) }));
        return;
      case '/readyz': {
        const report = await this.opts.readiness();
        this.send(res, report.ready ? 200 : 503, 'application/json', JSON.stringify({ status: report.ready ? 'ready' : 'not ready', ...report }));
        return;
      }
      case '/metrics':
        this.send(res, 200, this.opts.metrics.contentType, await this.opts.metrics.text());
        return;
      default:
        this.send(res, 404, 'application/json', JSON.stringify({ error: 'not found', paths: ['/livez', '/readyz', '/metrics'] }));
    }
  }

  private send(res: ServerResponse, status: number, contentType: string, body: string): void {
    res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    res.end(body);
  }
}
