/**
 * Plays the part of the poller's change tracker in tests: keeps the last snapshot of each session and
 * emits a change record (the contract in src/pipeline/session-change.ts) when the simulator's copy differs.
 */
import { SessionSchema, currentSeverity, currentState, type Session } from '../../src/code42/schemas.js';
import type { SessionChange, SessionChangeKind, SessionChangeSink, SessionSnapshot } from '../../src/poll/session-change.js';
import { makeFileEvent, type Code42Simulator, type FileEventV2 } from '../sims/code42/index.js';
import { mulberry32 } from '../sims/http-kit.js';

export function snapshotOf(s: Session): SessionSnapshot {
  return {
    lastUpdated: s.lastUpdated ?? null,
    severity: currentSeverity(s),
    state: currentState(s) ?? 'OPEN',
    alertIds: (s.triggeredAlerts ?? []).map((a) => a.alertId ?? '').filter((a) => a !== '').sort(),
    eventCount: (s.noRiskEvents ?? 0) + (s.lowEvents ?? 0) + (s.moderateEvents ?? 0) + (s.highEvents ?? 0) + (s.criticalEvents ?? 0),
  };
}

export class ChangeTracker {
  private readonly snapshots = new Map<string, SessionSnapshot>();
  private readonly seqs = new Map<string, number>();

  constructor(
    private readonly code42: Code42Simulator,
    private readonly sink: SessionChangeSink,
  ) {}

  read(id: string): Session {
    return SessionSchema.parse(this.code42.getSession(id));
  }

  /** Remembers the session as it is now (what the create was made from). */
  track(id: string): void {
    this.snapshots.set(id, snapshotOf(this.read(id)));
  }

  /** Emits a change record for the session if anything changed since the last snapshot; returns it. */
  async poll(id: string): Promise<SessionChange | null> {
    const session = this.read(id);
    const previous = this.snapshots.get(id);
    if (!previous) throw new Error(`session ${id} is not tracked`);
    const now = snapshotOf(session);
    const kinds: SessionChangeKind[] = [];
    if (now.lastUpdated !== previous.lastUpdated) kinds.push('updated');
    if (now.severity !== previous.severity) kinds.push('severity');
    if (now.state !== previous.state) kinds.push('state');
    if (now.alertIds.join() !== previous.alertIds.join()) kinds.push('alerts');
    if (now.eventCount !== previous.eventCount) kinds.push('events');
    if (kinds.length === 0) return null;
    const seq = (this.seqs.get(id) ?? 0) + 1;
    this.seqs.set(id, seq);
    const change: SessionChange = { sessionId: id, seq, kinds, detectedAt: Date.now(), session, previous };
    await this.sink.emit(change);
    this.snapshots.set(id, now);
    return change;
  }

  /** Re-sends a change record as it was (a poller repeating itself). */
  async replay(change: SessionChange): Promise<void> {
    await this.sink.emit(change);
  }
}

/** The session gains `n` file events, escalates to critical, triggers a new rule and goes to OPEN_NEW_DATA. */
export function escalate(code42: Code42Simulator, id: string, opts: { newEvents: number; ruleId: string; seed: number }): void {
  const rnd = mulberry32(opts.seed);
  const events: FileEventV2[] = [...code42.eventsOf(id)];
  for (let i = 0; i < opts.newEvents; i++) events.push(makeFileEvent(rnd));
  code42.updateSession(
    id,
    (s) => {
      // Stamped now (as Code42 stamps a new state), and after every earlier entry.
      const at = Math.max(Date.now(), Math.max(...s.states.map((x) => x.sourceTimestamp), ...s.scores.map((x) => x.sourceTimestamp)) + 1000);
      s.criticalEvents += opts.newEvents;
      s.scores.push({ score: 95, severity: 4, sourceTimestamp: at });
      s.triggeredAlerts.push({ alertId: `${id}-alert-2`, ruleId: opts.ruleId, lessonId: null });
      s.states.push({ state: 'OPEN_NEW_DATA', stateV2: 'OPEN_NEW_DATA', sourceTimestamp: at, userId: null });
    },
    { events },
  );
}

export const NEW_RULE = { id: 'rule-usb', name: 'USB exfiltration' };

/** `n` open sessions (moderate unless told) with two file events each (unless told), under rule "Cloud upload". */
export function seedSessions(code42: Code42Simulator, n: number, tag: string, opts: { severity?: number; events?: number } = {}): string[] {
  const severity = opts.severity ?? 2;
  const eventsEach = opts.events ?? 2;
  code42.addRule({ id: 'rule-cloud', name: 'Cloud upload' });
  code42.addRule(NEW_RULE);
  code42.addActor({ actorId: 'actor-1', name: 'jane.doe@example.com' });
  const rnd = mulberry32(n);
  const now = Date.now();
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const sessionId = `${tag}-${String(i).padStart(2, '0')}`;
    code42.addSession(
      {
        sessionId,
        actorId: 'actor-1',
        beginTime: now - 10 * 60_000 + i,
        moderateEvents: eventsEach,
        scores: [{ score: 50, severity, sourceTimestamp: now - 9 * 60_000 }],
        states: [{ state: 'OPEN', stateV2: 'OPEN', sourceTimestamp: now - 9 * 60_000, userId: null }],
        triggeredAlerts: [{ alertId: `${sessionId}-alert-1`, ruleId: 'rule-cloud', lessonId: null }],
      },
      { events: Array.from({ length: eventsEach }, () => makeFileEvent(rnd)) },
    );
    ids.push(sessionId);
  }
  return ids;
}

