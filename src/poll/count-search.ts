/**
 * Finding where a listing changed from counts alone (no change feed in Incydr): Code42 tells how many
 * sessions match a begin-time slice and a filter for one call; the daemon knows how many it has read in
 * that slice. A slice whose two numbers differ holds something the daemon has not read (a session that
 * became visible late, or one that entered or left the filter: a close, an escalation). The slice is
 * halved until it is small enough to read whole, one probe per level: the right half's count is the
 * parent's minus the left half's.
 *
 * Pure: the counts come through `SearchDeps`, so the walk is tested with an in-memory oracle.
 */

/** Sessions that began in [from, to) (epoch ms). */
export interface Slice {
  from: number;
  to: number;
}

/** A slice and Code42's count for it. */
export interface CountedSlice extends Slice {
  count: number;
}

export interface SearchDeps {
  /** Code42's count for the slice (one call); null when the answer carries none. */
  probe(slice: Slice): Promise<number | null>;
  /** What the daemon expects Code42 to count there: what it has read, plus known gaps. */
  expected(slice: Slice): Promise<number>;
  /**
   * How many sessions reading the slice costs (a filtered family counts a few sessions of a slice that
   * holds many; the cheapest way to read it may be another filter). @defaultValue the slice's count
   */
  size?(slice: CountedSlice): Promise<number>;
}

export interface SearchLimits {
  /** A slice counting at most this many is read whole rather than halved. @defaultValue 50 (one page) */
  leafMax?: number;
  /** Slices are never split finer than this (a burst of sessions in one minute is read whole). @defaultValue 60 s */
  unitMs?: number;
  /** Most probes one search spends (the rest waits for the next round). @defaultValue 40 */
  maxProbes?: number;
  /** Most slices one search hands back to be read. @defaultValue 8 */
  maxLeaves?: number;
}

export interface SearchOutcome {
  /** Slices to read whole, newest begin time first. */
  leaves: CountedSlice[];
  probes: number;
  /** A limit stopped the walk before every differing slice was found. */
  truncated: boolean;
  /** A probe came back without a count: counts cannot be used now. */
  noCount: boolean;
}

/**
 * Splits at the coarsest aligned boundary inside the slice (a multiple of the largest power-of-two
 * multiple of `unitMs` that falls strictly inside), so the same slices come back search after search
 * and what is learnt about one (its gap) applies again. Null when the slice is one unit or less.
 */
export function splitSlice(slice: Slice, unitMs = 60_000): [Slice, Slice] | null {
  const width = slice.to - slice.from;
  if (width <= unitMs) return null;
  for (let w = unitMs * 2 ** Math.floor(Math.log2(width / unitMs)); w >= unitMs; w /= 2) {
    const m = Math.floor(slice.from / w) * w + w;
    if (m > slice.from && m < slice.to) return [{ from: slice.from, to: m }, { from: m, to: slice.to }];
  }
  return null;
}

/**
 * Walks down from `top` (whose count is known) to the smallest slices that differ. Newer slices are
 * walked first: changes concentrate on recent sessions, and a truncated walk then leaves the older
 * ones for the next round (or the sweeps).
 */
export async function findChangedSlices(top: CountedSlice, deps: SearchDeps, limits: SearchLimits = {}): Promise<SearchOutcome> {
  const leafMax = limits.leafMax ?? 50;
  const unitMs = limits.unitMs ?? 60_000;
  const maxProbes = limits.maxProbes ?? 40;
  const maxLeaves = limits.maxLeaves ?? 8;
  const out: SearchOutcome = { leaves: [], probes: 0, truncated: false, noCount: false };
  if (top.count === (await deps.expected(top))) return out;
  // Depth-first, newest half first.
  const stack: CountedSlice[] = [top];
  while (stack.length > 0) {
    const node = stack.pop() as CountedSlice;
    const size = deps.size ? await deps.size(node) : node.count;
    const halves = size > leafMax ? splitSlice(node, unitMs) : null;
    if (!halves) {
      if (out.leaves.length >= maxLeaves) {
        out.truncated = true;
        break;
      }
      out.leaves.push(node);
      continue;
    }
    if (out.probes >= maxProbes) {
      out.truncated = true;
      break;
    }
    const [older, newer] = halves;
    const olderCount = await deps.probe(older);
    out.probes += 1;
    if (olderCount === null) {
      out.noCount = true;
      break;
    }
    const children: CountedSlice[] = [
      { ...older, count: olderCount },
      // Counts add up; a negative difference means the listing changed between the two calls.
      { ...newer, count: Math.max(0, node.count - olderCount) },
    ];
    for (const child of children) {
      if (child.count !== (await deps.expected(child))) stack.push(child);
    }
  }
  return out;
}
