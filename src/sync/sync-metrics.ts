import { Counter, type Registry } from 'prom-client';
import { METRIC_PREFIX } from '../infra/metric-prefix.js';

/** Metrics of the two-way sync, registered in the daemon's registry. */
export class SyncMetrics {
  private readonly updates: Counter<'outcome'>;
  private readonly notes: Counter<'side' | 'outcome'>;
  private readonly closes: Counter<'direction'>;
  private readonly conflicts: Counter;
  private readonly code42Calls: Counter<'endpoint'>;
  private readonly failures: Counter<'reason' | 'final'>;
  private readonly runs: Counter;
  private readonly refusedWrites: Counter<'direction' | 'reason'>;
  private readonly notCarried: Counter<'direction' | 'reason'>;

  constructor(registry?: Registry) {
    const p = `${METRIC_PREFIX}sync_`;
    const registers = registry ? [registry] : [];
    this.updates = new Counter({
      name: `${p}updates_total`,
      help: 'Session changes handled by the incident updater: applied (the incident changed), noted (note only: the incident is closed), unchanged (nothing an analyst would see), own (the daemon\'s own write coming back)',
      labelNames: ['outcome'] as const,
      registers,
    });
    this.notes = new Counter({
      name: `${p}notes_total`,
      help: 'Notes written by the sync: side xsoar (war room) or code42 (session note); outcome sent, skipped (found already sent after a crash), refused (XSOAR refuses entries in a closed investigation)',
      labelNames: ['side', 'outcome'] as const,
      registers,
    });
    this.closes = new Counter({
      name: `${p}closes_total`,
      help: 'Closes carried across: to-xsoar (session closed in Incydr → incident closed), to-code42 (incident closed in XSOAR → session state set), reopened (incident reopened on OPEN_NEW_DATA)',
      labelNames: ['direction'] as const,
      registers,
    });
    this.conflicts = new Counter({
      name: `${p}version_conflicts_total`,
      help: 'XSOAR "DB version error" answers met by incident updates (each is followed by a reload and merge)',
      registers,
    });
    this.code42Calls = new Counter({
      name: `${p}code42_calls_total`,
      help: 'Code42 calls made by the sync (all through the shared request budget), by endpoint',
      labelNames: ['endpoint'] as const,
      registers,
    });
    this.runs = new Counter({
      name: `${p}runs_total`,
      help: 'Runs of the periodic state-sync pass (XSOAR closes → Incydr, sweep of pending changes), counted as they start',
      registers,
    });
    this.refusedWrites = new Counter({
      name: `${p}refused_total`,
      help: 'Sync writes the other side refused, by direction (to-code42: change-state, add-note; to-xsoar: close, update, note) and reason (forbidden: the credentials may not write; too_many_notes; not_found: the session or incident is gone; rejected: any other 4xx). The run goes on with the next session',
      labelNames: ['direction', 'reason'] as const,
      registers,
    });
    this.notCarried = new Counter({
      name: `${p}not_carried_total`,
      help: 'State changes not carried because the other side holds a newer state (reason newer_state) or already the same one (reason same_state); a note on the other side says so',
      labelNames: ['direction', 'reason'] as const,
      registers,
    });
    this.failures = new Counter({
      name: `${p}job_failures_total`,
      help: 'Failed update attempts by reason class; final="true" when the job went to the failed set',
      labelNames: ['reason', 'final'] as const,
      registers,
    });
  }

  update(outcome: 'applied' | 'noted' | 'unchanged' | 'own'): void {
    this.updates.inc({ outcome });
  }

  note(side: 'xsoar' | 'code42', outcome: 'sent' | 'skipped' | 'refused'): void {
    this.notes.inc({ side, outcome });
  }

  close(direction: 'to-xsoar' | 'to-code42' | 'reopened', n = 1): void {
    this.closes.inc({ direction }, n);
  }

  versionConflicts(n: number): void {
    if (n > 0) this.conflicts.inc(n);
  }

  code42(endpoint: string, n = 1): void {
    if (n > 0) this.code42Calls.inc({ endpoint }, n);
  }

  refused(direction: 'to-code42' | 'to-xsoar', reason: string): void {
    this.refusedWrites.inc({ direction, reason });
  }

  skipped(direction: 'to-code42' | 'to-xsoar', reason: 'newer_state' | 'same_state'): void {
    this.notCarried.inc({ direction, reason });
  }

  run(): void {
    this.runs.inc();
  }

  failure(reason: string, final: boolean): void {
    this.failures.inc({ reason, final: String(final) });
  }
}
