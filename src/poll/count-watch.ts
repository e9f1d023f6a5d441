/**
 * Count detection: Code42's counts, compared with what the daemon has read (count-index.ts), tell where an
 * unread change lies; only the begin-time slices where they differ are read whole (count-search.ts).
 *
 * The counts of the whole window cost nothing: a recent read's first page carries `totalCount` of its
 * query, and the poll chooses which query that is.
 * - `all`: the unfiltered recent read. A higher count than the daemon has read means a session became
 *   visible somewhere in the window (late, at any age up to DEEP_LOOKBACK).
 * - `out` and `sev`, each every `probeIntervalMs` (never two polls in a row): the poll's first read is the
 *   listing of sessions whose state is outside ALERT_STATES, or whose severity is inside ALERT_SEVERITIES.
 *   Their counts move with a close, a reopen, an escalation into the filter, with or without new activity
 *   and wherever the session sits in the end-time order. When the count matches, that read was the
 *   poll's recent read (new sessions in the filter are on the `sev` listing as on the unfiltered one; on
 *   an `out` poll they wait one poll, and no look poll moves the checkpoint). When it does not, the poll
 *   goes on to the unfiltered read (which may explain it: a change that moved the end time) and then to
 *   a search: about log2(window ÷ 50 sessions) probes of one item each, plus the pages it reads.
 *
 * The state filter is read both ways the API allows (current state, or any state in the history): a
 * close adds a closed state either way, so `out` moves; a reopen moves it only on the first reading.
 *
 * What counts cannot see (masking): within one family and one slice, changes that cancel between two
 * looks (a close and a reopen of sessions in the same slice; a session escalating while another drops
 * out of the filter), a change that moves no family (new events or a new alert without new activity,
 * a state change inside the filter, OPEN → OPEN_NEW_DATA), and, where the state filter matches any state
 * in the history, a reopen and a second close after it. The sweeps catch those at their slower cadence.
 * Without `totalCount` nothing here runs and the sweeps keep their documented cadence.
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
  /** How often the poll's first read is the `out` listing, and how often the `sev` one. @defaultValue 2 min */
  probeIntervalMs?: number;
  limits?: SearchLimits;
}

export interface CountRound {
  /** Code42 time now. */
  codeNow: number;
  /** The window: every session that began since `from`. */
  from: number;
  /** Code42's counts of the whole window read this poll at no cost, by family (the recent reads' `totalCount`). */
  tops: Partial<Record<CountFamily, number>>;
  /** Code42 time of the last look per family (updated in place: a truncated search looks again next poll). */
  probedAt: Record<string, number>;
  /** Reads every page of the slice (unfiltered unless `query` says otherwise); resolves with the query's count and the ids read. */
  readSlice(slice: Slice, query?: SessionQuery): Promise<{ count: number | null; ids: Set<string> }>;
  /** Reads these sessions one by one. */
  reread(ids: readonly string[]): Promise<void>;
}

/**
 * How a slice a search hands back is read: `whole` (unfiltered), only the family's `members` (those that
 * left it since are then read one by one), or only the `others` (those that joined it are read one by one).
 * A filtered family often holds few of a slice's sessions, or nearly all of them: its members, or the
 * others, are then read in a page where the whole slice takes many.
 */
interface LeafPlan {
  how: 'whole' | 'members' | 'others';
  /** Sessions the listing returns. */
  paged: number;
  /** Sessions read one by one afterwards. */
  oneByOne: number;
}

/** More sessions than this to read one by one: the slice is read whole instead. */
const MAX_ONE_BY_ONE = 10;

export interface CountRoundResult {
  probes: number;
  /** Slices read (whole, or by one side of a family). */
  slices: number;
  /** Families whose counts differed. */
  differed: CountFamily[];
  noCount: boolean;
  truncated: boolean;
}

/** The families a poll can look at instead of `all`. */
export type LookFamily = Exclude<CountFamily, 'all'>;

/**
 * Which listing a poll reads first: the family looked at longest ago once `intervalMs` has passed since its
 * last look, or null (the unfiltered one); never two looks in a row, so `all` is read at least every other
 * poll. Marks what it chose in `probedAt` (kept with the sweep position: `look`, `all` and each family).
 */
export function nextLook(families: readonly CountFamily[], intervalMs: number, codeNow: number, probedAt: Record<string, number>): LookFamily | null {
  let due: LookFamily | null = null;
  if (probedAt.look === undefined || probedAt.look < (probedAt.all ?? 0)) {
    for (const family of families) {
      if (family === 'all' || codeNow - (probedAt[family] ?? 0) < intervalMs) continue;
      if (due === null || (probedAt[family] ?? 0) < (probedAt[due] ?? 0)) due = family;
    }
  }
  if (due === null) {
    probedAt.all = codeNow;
    return null;
  }
  probedAt[due] = codeNow;
  probedAt.look = codeNow;
  return due;
}

export class CountWatch {
  private readonly outStates: string[];
  private readonly sevNumbers: number[];
  /** The severities outside the filter (a slice's `others` for `sev`). */
  private readonly otherSevNumbers: number[];

  constructor(private readonly opts: CountWatchOptions) {
    this.outStates = SESSION_STATES.filter((s) => !opts.filterStates.includes(s));
    // A filter that takes every severity makes `sev` the same as `all`.
    this.sevNumbers = [1, 2, 3, 4].every((n) => opts.filterSeverities.includes(n)) ? [] : [...opts.filterSeverities];
    this.otherSevNumbers = [0, 1, 2, 3, 4].filter((n) => !opts.filterSeverities.includes(n));
  }

  get probeIntervalMs(): number {
    return this.opts.probeIntervalMs ?? 2 * 60_000;
  }

  /** The families this filter makes useful. */
  families(): CountFamily[] {
    return ['all', ...(this.outStates.length > 0 ? (['out'] as const) : []), ...(this.sevNumbers.length > 0 ? (['sev'] as const) : [])];
  }

  /** The family whose listing this poll reads first, or null for the unfiltered one (see `nextLook`). */
  lookDue(codeNow: number, probedAt: Record<string, number>): LookFamily | null {
    return nextLook(this.families(), this.probeIntervalMs, codeNow, probedAt);
  }

  /** The window's slices are counted up to a day past Code42's now (a session stamped by a fast device clock). */
  window(from: number, codeNow: number): Slice {
    return { from, to: codeNow + 86_400_000 };
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

  /** Does Code42's count of the whole window match what the daemon has read there (with known gaps)? */
  async matches(family: CountFamily, window: Slice, count: number): Promise<boolean> {
    await this.opts.index.loadGaps();
    return count === (await this.opts.index.expected(family, window));
  }

  async round(r: CountRound): Promise<CountRoundResult> {
    const { index } = this.opts;
    const result: CountRoundResult = { probes: 0, slices: 0, differed: [], noCount: false, truncated: false };
    await index.loadGaps();
    const window = this.window(r.from, r.codeNow);
    const read = new Map<string, number | null>();
    for (const family of this.families()) {
      const top = r.tops[family];
      if (top === undefined) continue;
      const search = await findChangedSlices(
        { ...window, count: top },
        {
          probe: (slice) => this.opts.count(this.queryFor(family, slice)),
          expected: (slice) => index.expected(family, slice),
          // Split until the cheapest read of the slice is one page.
          size: async (slice: CountedSlice) => (await this.plan(family, slice)).paged,
        },
        this.opts.limits,
      );
      result.probes += search.probes;
      result.truncated ||= search.truncated;
      // Not every differing slice found within the limits: the family is looked at again next poll, not
      // one look interval later.
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

  /** The cheapest way to read a slice that differs in `family` (see LeafPlan). */
  private async plan(family: CountFamily, slice: CountedSlice): Promise<LeafPlan> {
    const { index } = this.opts;
    const all = await index.known('all', slice);
    const whole: LeafPlan = { how: 'whole', paged: Math.max(all, family === 'all' ? slice.count : 0), oneByOne: 0 };
    if (family === 'all') return whole;
    const inFamily = await index.known(family, slice);
    const plans: LeafPlan[] = [whole, { how: 'members', paged: Math.max(slice.count, inFamily), oneByOne: Math.max(0, inFamily - slice.count) }];
    // Not for `out`: where the state filter matches any state in the history, the sessions in ALERT_STATES
    // are nearly every session, closed ones included, and a close would not be missing from them.
    if (family === 'sev' && this.otherSevNumbers.length > 0) {
      plans.push({ how: 'others', paged: Math.max(all - inFamily, all - slice.count), oneByOne: Math.max(0, slice.count - inFamily) });
    }
    const usable = plans.filter((p) => p.oneByOne <= MAX_ONE_BY_ONE);
    return usable.reduce((best, p) => (p.paged < best.paged ? p : best), whole);
  }

  private async readLeaf(family: CountFamily, leaf: CountedSlice, r: CountRound, read: Map<string, number | null>, result: CountRoundResult): Promise<void> {
    const { index } = this.opts;
    const plan = await this.plan(family, leaf);
    if (plan.how === 'whole') {
      const key = `${leaf.from}|${leaf.to}`;
      let allCount: number | null | undefined = read.get(key);
      if (!read.has(key)) {
        allCount = (await r.readSlice(leaf)).count;
        read.set(key, allCount);
        result.slices += 1;
      }
      if (allCount !== null && allCount !== undefined) await index.setGap('all', leaf, allCount);
    } else {
      // Who should come back, by the index as it was: whoever does not has changed sides.
      const members = await index.members(family, leaf);
      const expected = plan.how === 'members' ? members : without(await index.members('all', leaf), members);
      const query: SessionQuery = plan.how === 'members' ? this.queryFor(family, leaf) : { ...this.queryFor('all', leaf), severities: this.otherSevNumbers };
      const { ids } = await r.readSlice(leaf, query);
      result.slices += 1;
      const moved = expected.filter((id) => !ids.has(id));
      if (moved.length > MAX_ONE_BY_ONE) {
        // More changed than the counts said (the listing moved meanwhile): read it whole.
        await r.readSlice(leaf);
      } else {
        await r.reread(moved);
      }
    }
    if (family !== 'all') await index.setGap(family, leaf, leaf.count);
  }
}

function without(ids: readonly string[], drop: readonly string[]): string[] {
  const gone = new Set(drop);
  return ids.filter((id) => !gone.has(id));
}
