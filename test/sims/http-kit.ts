/**
 * Small shared pieces for the project's HTTP simulators (Code42 and XSOAR).
 * Plain node:http/https, no framework: the simulators must behave like real servers on the wire.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

export interface TlsOptions {
  /** PEM private key. */
  key: string;
  /** PEM certificate chain. */
  cert: string;
}

export interface SimServerOptions {
  /** Port to listen on; 0 picks a free one. @defaultValue 0 */
  port?: number;
  /** @defaultValue '127.0.0.1' */
  host?: string;
  /** Serve HTTPS with this key and certificate instead of plain HTTP. */
  tls?: TlsOptions;
}

export type SimHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

/**
 * A started HTTP(S) server that tracks its sockets so close() never hangs on keep-alive connections.
 */
export class SimServer {
  readonly url: string;
  private readonly sockets = new Set<Socket>();

  private constructor(private readonly server: Server, url: string) {
    this.url = url;
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  static async start(handler: SimHandler, opts: SimServerOptions = {}): Promise<SimServer> {
    const host = opts.host ?? '127.0.0.1';
    const wrapped = (req: IncomingMessage, res: ServerResponse): void => {
      Promise.resolve(handler(req, res)).catch((err: unknown) => {
        if (!res.headersSent) sendJson(res, 500, { msg: `simulator error: ${String(err)}` });
        else res.destroy();
      });
    };
    const server: Server = opts.tls
      ? (createHttpsServer({ key: opts.tls.key, cert: opts.tls.cert }, wrapped) as unknown as Server)
      : createHttpServer(wrapped);
    server.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, host, () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    const sim = new SimServer(server, `${opts.tls ? 'https' : 'http'}://${host}:${port}`);
    return sim;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Reads the whole request body as text, refusing bodies over `limitBytes`. */
export async function readBody(req: IncomingMessage, limitBytes = 64 * 1024 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > limitBytes) throw new Error(`request body over ${limitBytes} bytes`);
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

export function sendText(
  res: ServerResponse,
  status: number,
  text: string,
  contentType = 'text/plain; charset=utf-8',
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Deterministic PRNG (mulberry32) so generated tenants and injected faults repeat run to run. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
