import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RequestObserver } from '../infra/request-observer.js';
import type { ForwardWorkerEvents } from '../forward/forward-worker.js';
import type { PollerEvents } from '../poll/poller.js';
import { packageVersion } from '../infra/version.js';
import type { ReadinessReport } from './readiness.js';

export { METRIC_PREFIX } from '../infra/metric-prefix.js';
import { METRIC_PREFIX } from '../infra/metric-prefix.js';

export interface QueueDepth {
  waiting: number;
  active: number;
  delayed: number;
  failed: number;
}

export interface MetricsSources {
  /** Job counts of the forward queue, read at scrape time. */
  queueDepth?: () => Promise<QueueDepth>;
  /** The poller's checkpoint (epoch ms), read at scrape time. */
  checkpoint?: () => Promise<number | null>;
  /** Sessions forwarded whose XSOAR incident id is not known yet, read at scrape time. */
  incidentIdUnknown?: () => Promise<number>;
  /** Upstreams whose circuit is open, with when it opened (epoch ms). */
  upstreamOutages?: () => Map<'code42' | 'xsoar', { since: number }>;
  /** Redis's memory, read at scrape time (INFO memory). */
  redisMemory?: () => Promise<{ usedBytes: number; maxBytes: number } | undefined>;
  /** Since when Redis refuses writes for memory (epoch ms), if it does. */
  redisFullSince?: () => number | undefined;
}

/**
 * The daemon's Prometheus metrics (prom-client, one registry, one prefix). Components report through
 * the observer/event objects below; queue depth and checkpoint lag are read from Redis at scrape time.
 */
export class ForwarderMetrics {
  readonly registry = new Registry();
  private readonly sessions: Counter<'outcome'>;
  private readonly incidents: Counter<'via'>;
  private readonly failures: Counter<'reason' | 'final'>;
  private readonly requests: Counter<'upstream' | 'endpoint' | 'status'>;
  private readonly requestDuration: Histogram<'upstream' | 'endpoint'>;
  private readonly polls: Counter<'outcome'>;
  private readonly pollDuration: Histogram;
  private readonly rateLimitWaits: Counter<'upstream'>;
  private readonly rateLimitWaitSeconds: Counter<'upstream'>;
  private readonly forwardDuration: Histogram;
  private readonly code42Oddities: Counter<'kind'>;
  private readonly notStored: Counter;
  private readonly ownershipLost: Counter;
  private readonly stateLost: Counter;
  private readonly outages: Counter<'upstream'>;
  private readonly deliveryDelay: Histogram;

  private sources: MetricsSources;
  /** What /readyz answers, read at scrape time (set by `run`). */
  private readiness: (() => Promise<ReadinessReport>) | undefined;

  constructor(sources: MetricsSources = {}, opts: { defaultMetrics?: boolean } = {}) {
    this.sources = sources;
    const p = METRIC_PREFIX;
    const registers = [this.registry];
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
    this.sessions = new Counter({
      name: `${p}sessions_total`,
      help: 'Sessions read from Code42 by outcome: seen (every item read), enqueued, filtered (outside the severity/state filter), rejected (invalid input)',
      labelNames: ['outcome'] as const,
      registers,
    });
    this.incidents = new Counter({
      name: `${p}incidents_total`,
      help: 'Sessions forwarded to XSOAR, by how the incident id was obtained: created, search (an earlier ambiguous create had succeeded), ledger (already forwarded), accepted (XSOAR accepted the create without the id; the id is looked up apart), resolved (found by search later)',
      labelNames: ['via'] as const,
      registers,
    });
    this.failures = new Counter({
      name: `${p}job_failures_total`,
      help: 'Failed forward attempts by reason class; final="true" when the job went to the failed set',
      labelNames: ['reason', 'final'] as const,
      registers,
    });
    this.requests = new Counter({
      name: `${p}upstream_requests_total`,
      help: 'HTTP requests to Code42 and XSOAR by endpoint and status (status="error" when no response arrived)',
      labelNames: ['upstream', 'endpoint', 'status'] as const,
      registers,
    });
    this.requestDuration = new Histogram({
      name: `${p}upstream_request_duration_seconds`,
      help: 'Duration of HTTP requests to Code42 and XSOAR',
      labelNames: ['upstream', 'endpoint'] as const,
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.polls = new Counter({
      name: `${p}polls_total`,
      help: 'Polls of Code42 by outcome (skipped: another replica was polling)',
      labelNames: ['outcome'] as const,
      registers,
    });
    this.pollDuration = new Histogram({
      name: `${p}poll_duration_seconds`,
      help: 'Duration of a poll (all pages)',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    });
    this.rateLimitWaits = new Counter({
      name: `${p}rate_limit_waits_total`,
      help: 'Times work waited for a rate limit: code42 = the shared request budget, xsoar = a 429 that paused the queue',
      labelNames: ['upstream'] as const,
      registers,
    });
    this.rateLimitWaitSeconds = new Counter({
      name: `${p}rate_limit_wait_seconds_total`,
      help: 'Time spent waiting for rate limits',
      labelNames: ['upstream'] as const,
      registers,
    });
    this.forwardDuration = new Histogram({
      name: `${p}forward_duration_seconds`,
      help: 'Time to forward one session (enrichment + XSOAR create)',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.code42Oddities = new Counter({
      name: `${p}code42_oddities_total`,
      help: 'Code42 answers accepted although they differ from the documented API, by kind (e.g. a sessions page without totalCount, counted once per poll)',
      labelNames: ['kind'] as const,
      registers,
    });
    const self = this;
    new Gauge({
      name: `${p}queue_jobs`,
      help: 'Jobs in the forward queue by state',
      labelNames: ['state'] as const,
      registers,
      async collect() {
        const depth = self.sources.queueDepth;
        if (!depth) return;
        const counts = await depth().catch(() => undefined);
        if (!counts) return;
        for (const [state, value] of Object.entries(counts)) this.set({ state }, value);
      },
    });
    new Gauge({
      name: `${p}checkpoint_lag_seconds`,
      help: 'Now minus the poll checkpoint (the query time of the last completed poll)',
      registers,
      async collect() {
        const checkpoint = self.sources.checkpoint;
        if (!checkpoint) return;
        const at = await checkpoint().catch(() => null);
        if (at !== null) this.set(Math.max(0, (Date.now() - at) / 1000));
      },
    });
    new Gauge({
      name: `${p}upstream_up`,
      help: '1 while the upstream answers, 0 while its circuit is open (consecutive transient failures: the queue waits and probes it)',
      labelNames: ['upstream'] as const,
      registers,
      collect() {
        const down = self.sources.upstreamOutages?.() ?? new Map();
        for (const upstream of ['code42', 'xsoar'] as const) this.set({ upstream }, down.has(upstream) ? 0 : 1);
      },
    });
    new Gauge({
      name: `${p}upstream_down_since_timestamp_seconds`,
      help: 'When the upstream\'s current outage began (Unix time); 0 while it is up',
      labelNames: ['upstream'] as const,
      registers,
      collect() {
        const down = self.sources.upstreamOutages?.() ?? new Map();
        for (const upstream of ['code42', 'xsoar'] as const) this.set({ upstream }, (down.get(upstream)?.since ?? 0) / 1000);
      },
    });
    this.outages = new Counter({
      name: `${p}upstream_outages_total`,
      help: 'Times an upstream\'s circuit opened (the queue paused for an outage instead of spending attempts)',
      labelNames: ['upstream'] as const,
      registers,
    });
    const memoryGauge = (name: string, help: string, pick: (m: { usedBytes: number; maxBytes: number }) => number): void => {
      new Gauge({
        name: `${p}${name}`,
        help,
        registers,
        async collect() {
          const m = await self.sources.redisMemory?.().catch(() => undefined);
          if (m) this.set(pick(m));
        },
      });
    };
    memoryGauge('redis_used_memory_bytes', 'Redis used_memory (INFO memory)', (m) => m.usedBytes);
    memoryGauge('redis_maxmemory_bytes', 'Redis maxmemory (INFO memory; 0 = no limit)', (m) => m.maxBytes);
    new Gauge({
      name: `${p}redis_writes_refused`,
      help: '1 while Redis refuses writes for memory (maxmemory with noeviction): forwarding waits; 0 otherwise',
      registers,
      collect() {
        this.set(self.sources.redisFullSince?.() === undefined ? 0 : 1);
      },
    });
    new Gauge({
      name: `${p}redis_writes_refused_since_timestamp_seconds`,
      help: 'When Redis began refusing writes for memory (Unix time); 0 while it accepts them',
      registers,
      collect() {
        this.set((self.sources.redisFullSince?.() ?? 0) / 1000);
      },
    });
    new Gauge({
      name: `${p}build_info`,
      help: 'Always 1; the labels name the running version and Node.js',
      labelNames: ['version', 'node'] as const,
      registers,
    }).set({ version: packageVersion(), node: process.version }, 1);
    this.deliveryDelay = new Histogram({
      name: `${p}delivery_delay_seconds`,
      help: 'Visible in Code42 (read by the poller) to stored in XSOAR (the incident recorded in the ledger), per session forwarded',
      buckets: [0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 14400],
      registers,
    });
    new Gauge({
      name: `${p}ready`,
      help: '1 while /readyz answers 200, 0 while it answers 503 (the failed check is in its body)',
      registers,
      async collect() {
        const report = await self.readiness?.().catch(() => undefined);
        if (self.readiness) this.set(report?.ready ? 1 : 0);
      },
    });
    new Gauge({
      name: `${p}degraded`,
      help: '1 for each condition /readyz lists as degraded (an upstream down, Redis full): the daemon waits it out and stays ready',
      labelNames: ['check'] as const,
      registers,
      async collect() {
        this.reset();
        const report = await self.readiness?.().catch(() => undefined);
        for (const check of report?.degraded ?? []) this.set({ check }, 1);
      },
    });
    for (const outcome of ['seen', 'enqueued', 'filtered', 'rejected']) this.sessions.inc({ outcome }, 0);
    for (const via of ['created', 'search', 'ledger', 'resolved']) this.incidents.inc({ via }, 0);
    this.notStored = new Counter({
      name: `${p}xsoar_not_stored_total`,
      help: 'Creates XSOAR accepted (2xx) but no search found within XSOAR_SEARCH_SETTLE (a pre-process rule dropped them?); each is in the failed set, never created again',
      registers,
    });
    this.ownershipLost = new Counter({
      name: `${p}ownership_lost_total`,
      help: 'Jobs this process stopped before creating because another process had taken them over (frozen past WORKER_LOCK_DURATION)',
      registers,
    });
    this.stateLost = new Counter({
      name: `${p}redis_state_lost_total`,
      help: "Times Redis was found without this deployment's state (its marker key gone: first start, or Redis lost its data); XSOAR is then searched before creating older sessions",
      registers,
    });
    new Gauge({
      name: `${p}xsoar_incident_id_unknown`,
      help: 'Sessions forwarded (XSOAR accepted the create) whose incident id is not known yet',
      registers,
      async collect() {
        const unknown = self.sources.incidentIdUnknown;
        if (!unknown) return;
        const n = await unknown().catch(() => undefined);
        if (n !== undefined) this.set(n);
      },
    });
  }

  /** Where the readiness gauges read from (the same report /readyz serves). */
  setReadiness(readiness: () => Promise<ReadinessReport>): void {
    this.readiness = readiness;
  }

  /** Where scrape-time gauges read from; set once the daemon has its queue. */
  setSources(sources: MetricsSources): void {
    this.sources = sources;
  }

  readonly observer: RequestObserver = (r) => {
    this.requests.inc({ upstream: r.upstream, endpoint: r.endpoint, status: String(r.status) });
    this.requestDuration.observe({ upstream: r.upstream, endpoint: r.endpoint }, r.durationMs / 1000);
  };

  readonly pollerEvents: PollerEvents = {
    onSessions: (c) => {
      this.sessions.inc({ outcome: 'seen' }, c.seen);
      this.sessions.inc({ outcome: 'enqueued' }, c.enqueued);
      this.sessions.inc({ outcome: 'filtered' }, c.filtered);
      this.sessions.inc({ outcome: 'rejected' }, c.rejected);
    },
    onPoll: (outcome, durationMs) => {
      this.polls.inc({ outcome });
      if (outcome !== 'skipped') this.pollDuration.observe(durationMs / 1000);
    },
  };

  readonly workerEvents: ForwardWorkerEvents = {
    onForwarded: (result, durationMs, visibleAt) => {
      this.incidents.inc({ via: result.via });
      this.forwardDuration.observe(durationMs / 1000);
      // A ledger hit stored nothing now: only sessions whose incident this attempt recorded count.
      if (visibleAt !== undefined && result.via !== 'ledger') this.deliveryDelay.observe(Math.max(0, Date.now() - visibleAt) / 1000);
    },
    onFailed: (reason, final) => this.failures.inc({ reason, final: String(final) }),
    onRateLimited: (upstream, waitMs) => this.rateLimitWait(upstream, waitMs),
    onNotStored: () => this.notStored.inc(),
    onOwnershipLost: () => this.ownershipLost.inc(),
  };

  /** Redis was found without this deployment's state. */
  redisStateLost(): void {
    this.stateLost.inc();
  }

  upstreamOutage(upstream: 'code42' | 'xsoar'): void {
    this.outages.inc({ upstream });
  }

  rateLimitWait(upstream: 'code42' | 'xsoar', waitMs: number): void {
    this.rateLimitWaits.inc({ upstream });
    this.rateLimitWaitSeconds.inc({ upstream }, waitMs / 1000);
  }

  code42Oddity(kind: string): void {
    this.code42Oddities.inc({ kind });
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
