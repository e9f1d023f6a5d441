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
    help: 'GET /v1/sessions pages read, by purpose: recent (each poll, newest activity), sweep_recent, sweep_deep, count_probe (a page of one item for its totalCount), count_read (what a count search pointed at: a begin-time slice, or a session read alone); a count look (the out or sev listing read first) counts as recent',
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
  const countState = new Gauge({
    name: `${p}count_detection`,
    help: "Count detection of changes (1 for the current state): active, warming (the whole window not read yet), no_total_count (Code42's pages carry no totalCount: the sweeps alone find late sessions and changes, at their documented cadence)",
    labelNames: ['state'] as const,
    registers,
  });
  const looks = new Counter({
    name: `${p}count_looks_total`,
    help: "Polls whose first read was the out (state outside ALERT_STATES) or sev (severity inside ALERT_SEVERITIES) listing, for its totalCount: matched (the poll ends there) or differed (the unfiltered read and a search follow)",
    labelNames: ['family', 'outcome'] as const,
    registers,
  });
  const listingTrouble = new Gauge({
    name: `${p}listing_not_ending`,
    help: 'GET /v1/sessions did not end at the last poll (a page repeating the one before, or past totalCount): reads are bounded, /readyz degraded',
    registers,
  });
  for (const purpose of ['recent', 'sweep_recent', 'sweep_deep', 'count_probe', 'count_read']) pages.inc({ purpose }, 0);
  for (const state of ['active', 'warming', 'no_total_count']) countState.set({ state }, 0);
  listingTrouble.set(0);
  for (const tier of ['recent', 'deep']) yields.inc({ tier }, 0);
  for (const family of ['out', 'sev']) for (const outcome of ['matched', 'differed']) looks.inc({ family, outcome }, 0);
  return (r) => {
    pages.inc({ purpose: 'recent' }, r.recentPages);
    for (const [tier, n] of Object.entries(r.sweepPages)) pages.inc({ purpose: `sweep_${tier}` }, n);
    for (const tier of r.yielded) yields.inc({ tier });
    if (r.countProbes) pages.inc({ purpose: 'count_probe' }, r.countProbes);
    if (r.countPages) pages.inc({ purpose: 'count_read' }, r.countPages);
    if (r.countLook) looks.inc({ family: r.countLook.family, outcome: r.countLook.matched ? 'matched' : 'differed' });
    if (r.countState) for (const state of ['active', 'warming', 'no_total_count'] as const) countState.set({ state }, r.countState === state ? 1 : 0);
    listingTrouble.set(r.listingTrouble ? 1 : 0);
    changes.inc(r.changes);
    if (r.clockOffsetMs !== null) offset.set(r.clockOffsetMs / 1000);
  };
}
