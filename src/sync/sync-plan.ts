/**
 * What the sync will write where, from the configuration: said once at start (one log line), used for
 * /readyz and by `check` to know which permissions to prove.
 */
import type { Config } from '../config/load-config.js';
import { syncDirectionsOf } from '../config/settings.js';
import type { SyncDirection } from './refusals.js';

/** How long the record of a session closed on both sides outlives the session's DEEP_LOOKBACK window. */
export const RECORD_GRACE_MS = 7 * 24 * 3_600_000;

/** The directions that write: to-xsoar (incident updates, notes, closes) and to-code42 (session state, session notes). */
export function syncDirections(config: Pick<Config, 'sync'>): SyncDirection[] {
  const d = syncDirectionsOf(config.sync);
  const out: SyncDirection[] = [];
  if (d.trackUpdates || d.toXsoar) out.push('to-xsoar');
  if (d.toCode42) out.push('to-code42');
  return out;
}

export interface SyncWrites {
  xsoar: string[];
  code42: string[];
}

export function syncWrites(config: Pick<Config, 'sync'>): SyncWrites {
  const d = syncDirectionsOf(config.sync);
  const xsoar: string[] = [];
  if (d.trackUpdates) xsoar.push('incident fields and war-room notes on session changes');
  if (d.trackUpdates && config.sync.reopenOnNewData) xsoar.push('reopen on OPEN_NEW_DATA');
  if (d.toXsoar) xsoar.push('close when the session is closed in Incydr');
  const code42: string[] = d.toCode42 ? ['session state (change-state) and a session note when the incident is closed in XSOAR'] : [];
  return { xsoar, code42 };
}

/** "sync: writes to XSOAR: …; writes to Code42: nothing (STATE_SYNC=to-xsoar)" */
export function describeSyncPlan(config: Pick<Config, 'sync'>): string {
  const w = syncWrites(config);
  const xsoar = w.xsoar.length > 0 ? w.xsoar.join(', ') : 'nothing';
  const code42 =
    w.code42.length > 0
      ? `${w.code42.join(', ')} (the Code42 API client needs the right to change sessions)`
      : `nothing (STATE_SYNC=${config.sync.stateSync}; STATE_SYNC=both also carries XSOAR closes to Incydr)`;
  return `sync: writes to XSOAR: ${xsoar}; writes to Code42: ${code42}`;
}
