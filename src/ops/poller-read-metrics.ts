import { Counter, Gauge, type Registry } from 'prom-client';
import type { PollerEvents } from '../poll/poller.js';
import { METRIC_PREFIX } from './metrics.js';

/**
 * What the poller's reads cost and find: list pages by purpose, sweep slices held back for forwarding,
 * change records, and how far this host's clock is from Code42's. Registered next to the daemon's metrics.
 */
export function pollerReadMetrics(registry: Registry): NonNullable<PollerEvents['onReads']> {
  const p = METRIC_PREFIX;
  const registers = [registry];
  const pages = new Counter({
    name: `${p}list_pages_total`,
    help: 'GET /v1/sessions pages read, by purpose: recent (each poll, newest activity), sweep_recent, sweep_deep',
    labelNames: ['purpose'] as const,
    registers,
  });
  const yields = new Counter({
    name: `${p}sweep_yields_total`,
    help: 'Polls in which a sweep held back its slice because forwarding needed the Code42 request budget (forward backlog)',
    labelNames: ['tier'] as const,
    registers,
  });
  const changes = new Counter({
    name: `${p}session_changes_total`,
    help: 'Change records emitted for sessions already forwarded (new events, alerts, severity or state)',
    registers,
  });
  const offset = new Gauge({
    name: `${p}code42_clock_offset_seconds`,
    help: "Code42's clock (Date header of its answers) minus this host's clock; polling windows use Code42's",
    registers,
  });
  for (const purpose of ['recent', 'sweep_recent', 'sweep_deep']) pages.inc({ purpose }, 0);
  for (const tier of ['recent', 'deep']) yields.inc({ tier }, 0);
  return (r) => {
    pages.inc({ purpose: 'recent' }, r.recentPages);
    for (const [tier, n] of Object.entries(r.sweepPages)) pages.inc({ purpose: `sweep_${tier}` }, n);
    for (const tier of r.yielded) yields.inc({ tier });
    changes.inc(r.changes);
    if (r.clockOffsetMs !== null) offset.set(r.clockOffsetMs / 1000);
  };
}
