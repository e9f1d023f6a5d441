/**
 * Count detection: each poll compares Code42's counts with what the daemon has read (count-index.ts)
 * and reads whole only the begin-time slices where they differ (count-search.ts).
 *
 * - `all` every poll, at no extra cost: the recent read's first page carries `totalCount` of the whole
 *   window. A higher count than the daemon has read means a session became visible somewhere in the
 *   window (late, at any age up to DEEP_LOOKBACK).
 * - `out` and `sev` every `probeIntervalMs`, one call each (a page of one item): a close, reopen or other
 *   state change in the console, or an escalation into the filter, moves them, with or without new
 *   activity and wherever the session sits in the end-time order.
 *
 * What counts cannot see (masking): within one family and one slice, changes that cancel between two
 * looks (a close and a reopen of sessions in the same slice; a session escalating while another drops
 * out of the filter), a change that moves no family (new events or a new alert without new activity,
 * a state change inside the filter, OPEN → OPEN_NEW_DATA), and, where the API's state filter matches
 * any state in the history, a second close after a reopen. The sweeps catch those at their slower
 * cadence. Without `totalCount` nothing here runs and the sweeps keep their documented cadence.
 */
import type { SessionQuery } from '../code42/incydr-client.js';
import { SESSION_STATES } from '../code42/vocabulary.js';
import type { CountFamily, CountIndex } from './count-index.js';
import { findChangedSlices, type CountedSlice, type SearchLimits, type Slice } from './count-search.js';

export type CountWatchState = 'active' | 'warming' | 'no_total_count';

export interface CountWatchOptions {
  index: CountIndex;
  /** One call: Code42's count for the query (null when the answer carries none). */
  count(query: SessionQuery): Promise<number | null>;
  filterStates: readonly string[];
  filterSeverities: readonly number[];
  /** How often `out` and `sev` are probed. @defaultValue 4 min */
  probeIntervalMs?: number;
  limits?: SearchLimits;
}

export interface CountRound {
  /** Code42 time now. */
  codeNow: number;
  /** The window: every session that began since `from`. */
  from: number;
  /** `totalCount` of the recent read (the whole window, no filter); undefined when absent. */
  allCount: number | undefined;
  /** Code42 time of the last probe per family (updated in place). */
  probedAt: Record<string, number>;
  /** Reads the slice whole (no filter); resolves with its unfiltered count (null when absent). */
  readSlice(slice: Slice): Promise<number | null>;
}

export interface CountRoundResult {
  probes: number;
  /** Slices read whole. */
  slices: number;
  /** Families whose counts differed. */
  differed: CountFamily[];
  noCount: boolean;
  truncated: boolean;
}

export class CountWatch {
  private readonly outStates: string[];
  private readonly sevNumbers: number[];

  constructor(private readonly opts: CountWatchOptions) {
    this.outStates = SESSION_STATES.filter((s) => !opts.filterStates.includes(s));
    // A filter that takes every severity makes `sev` the same as `all`.
    this.sevNumbers = [1, 2, 3, 4].every((n) => opts.filterSeverities.includes(n)) ? [] : [...opts.filterSeverities];
  }

  get probeIntervalMs(): number {
    return this.opts.probeIntervalMs ?? 4 * 60_000;
  }

  /** The families this filter makes useful. */
  families(): CountFamily[] {
    return ['all', ...(this.outStates.length > 0 ? (['out'] as const) : []), ...(this.sevNumbers.length > 0 ? (['sev'] as const) : [])];
  }

  queryFor(family: CountFamily, slice: Slice): SessionQuery {
    return {
      onOrAfter: slice.from,
      before: slice.to,
      states: family === 'out' ? this.outStates : [],
      severities: family === 'sev' ? this.sevNumbers : [],
      order: 'end_time_desc',
    };
  }

  async round(r: CountRound): Promise<CountRoundResult> {
    const { index } = this.opts;
    const result: CountRoundResult = { probes: 0, slices: 0, differed: [], noCount: false, truncated: false };
    if (r.allCount === undefined) {
      result.noCount = true;
      return result;
    }
    await index.loadGaps();
    // Upper bound: begin times up to a day past Code42's now (a session stamped by a fast device clock).
    const window: Slice = { from: r.from, to: r.codeNow + 86_400_000 };
    const read = new Map<string, number | null>();
    for (const family of this.families()) {
      let top: number | null;
      if (family === 'all') {
        top = r.allCount;
      } else {
        const last = r.probedAt[family] ?? 0;
        if (r.codeNow - last < this.probeIntervalMs) continue;
        top = await this.opts.count(this.queryFor(family, window));
        result.probes += 1;
        r.probedAt[family] = r.codeNow;
      }
      if (top === null) {
        result.noCount = true;
        break;
      }
      const search = await findChangedSlices(
        { ...window, count: top },
        {
          probe: (slice) => this.opts.count(this.queryFor(family, slice)),
          expected: (slice) => index.expected(family, slice),
          // Slices are read whole, without the family's filter: split until that is one page.
          ...(family === 'all' ? {} : { size: (slice: Slice) => index.known('all', slice) }),
        },
        this.opts.limits,
      );
      result.probes += search.probes;
      result.truncated ||= search.truncated;
      // Not every differing slice found within the limits: the family is looked at again next poll, not
      // one probe interval later.
      if (search.truncated && family !== 'all') r.probedAt[family] = 0;
      if (search.noCount) {
        result.noCount = true;
        break;
      }
      if (search.leaves.length > 0) result.differed.push(family);
      for (const leaf of search.leaves) await this.readLeaf(family, leaf, r, read, result);
    }
    return result;
  }

  private async readLeaf(family: CountFamily, leaf: CountedSlice, r: CountRound, read: Map<string, number | null>, result: CountRoundResult): Promise<void> {
    const key = `${leaf.from}|${leaf.to}`;
    let allCount: number | null | undefined = read.get(key);
    if (!read.has(key)) {
      allCount = await r.readSlice(leaf);
      read.set(key, allCount);
      result.slices += 1;
    }
    const { index } = this.opts;
    if (allCount !== null && allCount !== undefined) await index.setGap('all', leaf, allCount);
    if (family !== 'all') await index.setGap(family, leaf, leaf.count);
  }
}
