/**
 * Loopback network helpers for the proxy and TLS checks:
 * - ForwardProxy: a minimal HTTP forward proxy (what HTTPS_PROXY points at). It tunnels `CONNECT host:port`
 *   (net.connect + pipe) and relays absolute-form requests (`GET http://host:port/path`) with http.request
 *   (one fresh connection each), counting tunnels, relayed requests and the connections it opened per target.
 * - TcpCounter: a TCP pass-through in front of a server that counts the connections it accepts, so a test
 *   can tell how many connections (TLS handshakes included) a client opened, whichever way they came.
 */
import { request as httpRequest, createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';

function listen(server: Server | NetServer): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

function closeAll(server: Server | NetServer, sockets: Set<Socket>): Promise<void> {
  for (const s of sockets) s.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}

function track(sockets: Set<Socket>, socket: Socket): void {
  sockets.add(socket);
  socket.on('close', () => sockets.delete(socket));
}

function bump(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

export class ForwardProxy {
  /** CONNECT tunnels opened, per `host:port`. */
  readonly tunnels = new Map<string, number>();
  /** Absolute-form requests relayed, per `host:port`. */
  readonly requests = new Map<string, number>();
  /** Connections the proxy itself opened to each `host:port` (tunnels and relayed requests alike). */
  readonly upstream = new Map<string, number>();
  /** Requests that were neither (origin-form: a client that took the proxy for the server). */
  readonly strays: string[] = [];
  private readonly sockets = new Set<Socket>();
  private server: Server | undefined;
  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const server = createHttpServer((req, res) => this.relay(req, res));
    server.on('connection', (socket: Socket) => track(this.sockets, socket));
    server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
      const target = req.url ?? '';
      const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(target);
      if (!m) {
        client.end('HTTP/1.1 400 Bad Request\r\n\r\n');
        return;
      }
      bump(this.tunnels, target);
      bump(this.upstream, target);
      const upstream = connect(Number(m[2]), m[1] as string, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        if (head.length > 0) upstream.write(head);
        upstream.pipe(client);
        client.pipe(upstream);
      });
      track(this.sockets, upstream);
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    });
    this.server = server;
    this.port = await listen(server);
  }

  private relay(req: IncomingMessage, res: ServerResponse): void {
    let target: URL;
    try {
      target = new URL(req.url ?? '');
    } catch {
      this.strays.push(`${req.method} ${req.url}`);
      res.writeHead(400).end();
      return;
    }
    bump(this.requests, target.host);
    bump(this.upstream, target.host);
    const headers = { ...req.headers };
    delete headers['proxy-connection'];
    delete headers['proxy-authorization'];
    delete headers.connection;
    const upstream = httpRequest(
      { host: target.hostname, port: target.port, method: req.method, path: `${target.pathname}${target.search}`, headers, agent: false },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    req.pipe(upstream);
  }

  tunnelsTo(hostPort: string): number {
    return this.tunnels.get(hostPort) ?? 0;
  }

  requestsTo(hostPort: string): number {
    return this.requests.get(hostPort) ?? 0;
  }

  upstreamTo(hostPort: string): number {
    return this.upstream.get(hostPort) ?? 0;
  }

  reset(): void {
    this.tunnels.clear();
    this.requests.clear();
    this.upstream.clear();
    this.strays.length = 0;
  }

  async close(): Promise<void> {
    if (this.server) await closeAll(this.server, this.sockets);
    this.server = undefined;
  }
}

export class TcpCounter {
  /** Connections accepted so far. */
  connections = 0;
  private readonly sockets = new Set<Socket>();
  private server: NetServer | undefined;
  port = 0;

  constructor(private readonly targetPort: number, private readonly targetHost = '127.0.0.1') {}

  async start(): Promise<void> {
    const server = createNetServer((client) => {
      this.connections += 1;
      track(this.sockets, client);
      const upstream = connect(this.targetPort, this.targetHost);
      track(this.sockets, upstream);
      client.pipe(upstream);
      upstream.pipe(client);
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    });
    this.server = server;
    this.port = await listen(server);
  }

  async close(): Promise<void> {
    if (this.server) await closeAll(this.server, this.sockets);
    this.server = undefined;
  }
}
