/**
 * The poller's pure decisions, table-driven: where counts differ (count-search), which listing a poll
 * reads first (count-watch), how a listing read is bounded (listing-bounds), how the sweeps pace
 * themselves (sweep-plan).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { findChangedSlices, splitSlice, type Slice } from '../../src/poll/count-search.js';
import { nextLook } from '../../src/poll/count-watch.js';
import { MAX_LISTING_PAGES, listingPageCap, repeatsPreviousPage } from '../../src/poll/listing-bounds.js';
import { sweepPagesDue, sweepTiers } from '../../src/poll/sweep-plan.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

/** Code42 holds `code42` begin times, the daemon has read `known`: an in-memory oracle. */
function oracle(code42: number[], known: number[]) {
  const count = (list: number[], s: Slice): number => list.filter((t) => t >= s.from && t < s.to).length;
  let probes = 0;
  return {
    deps: {
      probe: async (s: Slice) => {
        probes += 1;
        return count(code42, s);
      },
      expected: async (s: Slice) => count(known, s),
    },
    probes: () => probes,
  };
}

describe('count search', () => {
  it('splits on aligned boundaries, the same ones every time', () => {
    const rows: Array<[Slice, [Slice, Slice] | null]> = [
      [{ from: 0, to: 4 * MIN }, [{ from: 0, to: 2 * MIN }, { from: 2 * MIN, to: 4 * MIN }]],
      [{ from: MIN, to: 4 * MIN }, [{ from: MIN, to: 2 * MIN }, { from: 2 * MIN, to: 4 * MIN }]],
      [{ from: 0, to: MIN }, null],
      [{ from: 30_000, to: 150_000 }, [{ from: 30_000, to: 120_000 }, { from: 120_000, to: 150_000 }]],
    ];
    for (const [slice, want] of rows) assert.deepEqual(splitSlice(slice), want, JSON.stringify(slice));
    // A child of a split splits where a search from a wider slice would.
    const [, right] = splitSlice({ from: 3 * MIN, to: 64 * MIN }) as [Slice, Slice];
    assert.deepEqual(splitSlice(right), [{ from: 32 * MIN, to: 48 * MIN }, { from: 48 * MIN, to: 64 * MIN }]);
  });

  const base = Array.from({ length: 4_000 }, (_, i) => i * 3 * MIN); // 4,000 sessions over 8.3 days
  const rows: Array<{ name: string; code42: number[]; known: number[]; leaves: number; maxProbes: number }> = [
    { name: 'nothing differs', code42: base, known: base, leaves: 0, maxProbes: 0 },
    { name: 'one late session 3 days back', code42: [...base, base[1500] as number + 1], known: base, leaves: 1, maxProbes: 14 },
    { name: 'two late sessions days apart', code42: [...base, 100 * MIN + 7, 10_000 * MIN + 7], known: base, leaves: 2, maxProbes: 28 },
    { name: 'a session the daemon read that Code42 no longer lists', code42: base.slice(1), known: base, leaves: 1, maxProbes: 14 },
    { name: 'two gains and a loss far apart', code42: [...base.slice(1), 11_000 * MIN + 5, 11_000 * MIN + 6], known: base, leaves: 2, maxProbes: 28 },
  ];
  for (const row of rows) {
    it(`finds the differing slices: ${row.name}`, async () => {
      const o = oracle(row.code42, row.known);
      const top = { from: 0, to: 12_500 * MIN, count: row.code42.length };
      const out = await findChangedSlices(top, o.deps);
      assert.equal(out.leaves.length, row.leaves);
      assert.ok(out.probes <= row.maxProbes, `${out.probes} probes`);
      assert.equal(out.probes, o.probes());
      for (const leaf of out.leaves) {
        assert.ok(leaf.count <= 50 || leaf.to - leaf.from <= MIN, 'a leaf is one page or one minute');
        assert.notEqual(leaf.count, row.known.filter((t) => t >= leaf.from && t < leaf.to).length, 'a leaf differs');
      }
      assert.equal(out.truncated, false);
    });
  }

  it('masks a gain and a loss that cancel in the whole window (left to the sweeps)', async () => {
    const o = oracle([...base.slice(1), 11_000 * MIN + 5], base);
    const out = await findChangedSlices({ from: 0, to: 12_500 * MIN, count: base.length }, o.deps);
    assert.deepEqual(out.leaves, []);
  });

  it('stops at its probe limit, newest slices first, and says so', async () => {
    const code42 = [...base, 10 * MIN + 1, 11_000 * MIN + 1];
    const o = oracle(code42, base);
    const out = await findChangedSlices({ from: 0, to: 12_500 * MIN, count: code42.length }, o.deps, { maxProbes: 9 });
    assert.equal(out.truncated, true);
    assert.ok(out.leaves.every((l) => l.from >= 10_000 * MIN), 'the newer one first');
  });

  it('splits a filtered family until a whole read of the slice is one page', async () => {
    // `out`: one session closed among 4,000; the slice handed back must be readable in one page.
    const closedAt = base[2_000] as number;
    const o = oracle([closedAt], []);
    const size = async (s: Slice): Promise<number> => base.filter((t) => t >= s.from && t < s.to).length;
    const out = await findChangedSlices({ from: 0, to: 12_500 * MIN, count: 1 }, { ...o.deps, size });
    assert.equal(out.leaves.length, 1);
    const leaf = out.leaves[0] as Slice;
    assert.ok(closedAt >= leaf.from && closedAt < leaf.to);
    assert.ok((await size(leaf)) <= 50, 'one page');
  });

  it('gives up when a probe carries no count', async () => {
    const out = await findChangedSlices({ from: 0, to: DAY, count: 5 }, { probe: async () => null, expected: async () => 0 }, { leafMax: 1 });
    assert.equal(out.noCount, true);
    assert.deepEqual(out.leaves, []);
  });
});

describe('count looks', () => {
  const firstReads = (families: Parameters<typeof nextLook>[0], intervalMs: number, polls: number, pollMs = 30_000): Array<string | null> => {
    const probedAt: Record<string, number> = {};
    return Array.from({ length: polls }, (_, i) => nextLook(families, intervalMs, 1_000_000 + i * pollMs, probedAt));
  };

  it('looks at each family once per interval, never two polls in a row', () => {
    const reads = firstReads(['all', 'out', 'sev'], 3 * MIN, 16);
    assert.deepEqual(reads.slice(0, 9), ['out', null, 'sev', null, null, null, 'out', null, 'sev']);
    for (let i = 1; i < reads.length; i++) assert.ok(reads[i] === null || reads[i - 1] === null, `two looks in a row at ${i}`);
    for (const family of ['out', 'sev']) {
      const at = reads.flatMap((r, i) => (r === family ? [i] : []));
      for (let k = 1; k < at.length; k++) assert.ok((at[k] as number) - (at[k - 1] as number) >= 6, `${family} more often than every 3 min`);
    }
  });

  it('with a short interval, reads the unfiltered listing every other poll and shares the rest', () => {
    const reads = firstReads(['all', 'out', 'sev'], 1, 8);
    assert.deepEqual(reads, ['out', null, 'sev', null, 'out', null, 'sev', null]);
  });

  it('never looks where the filter does not narrow the listing', () => {
    assert.deepEqual(firstReads(['all'], 1, 4), [null, null, null, null]);
  });
});

describe('listing bounds', () => {
  it('caps pages by totalCount, else by the window, never above the ceiling', () => {
    const rows: Array<[Parameters<typeof listingPageCap>[0], number]> = [
      [{ totalCount: 230, knownInWindow: 0, pageSize: 50 }, 6],
      [{ totalCount: 0, knownInWindow: 99, pageSize: 50 }, 1],
      [{ totalCount: undefined, knownInWindow: 230, pageSize: 50 }, 15],
      [{ totalCount: undefined, knownInWindow: 0, pageSize: 50, room: 20 }, 20],
      [{ totalCount: 10_000_000, knownInWindow: 0, pageSize: 50 }, MAX_LISTING_PAGES],
    ];
    for (const [p, want] of rows) assert.equal(listingPageCap(p), want, JSON.stringify(p));
  });

  it('knows a page that repeats the one before from one that shifted', () => {
    const page = (from: number): string[] => Array.from({ length: 50 }, (_, i) => `s-${from + i}`);
    assert.equal(repeatsPreviousPage(page(0), page(0), 50), true);
    assert.equal(repeatsPreviousPage(page(0), page(1), 50), false, 'shifted by one: an insertion');
    assert.equal(repeatsPreviousPage(page(0), page(0).slice(0, 10), 50), false, 'a short page ends the listing anyway');
    assert.equal(repeatsPreviousPage(undefined, page(0), 50), false);
  });
});

describe('sweep plan', () => {
  it('slows both sweeps while counts are active', () => {
    const normal = sweepTiers({ lookbackMs: 2 * HOUR, sweepIntervalMs: 8 * HOUR, deepLookbackMs: 7 * DAY });
    const slow = sweepTiers({ lookbackMs: 2 * HOUR, sweepIntervalMs: 8 * HOUR, deepLookbackMs: 7 * DAY, countsActive: true });
    assert.deepEqual(normal.map((t) => t.periodMs), [15 * MIN, 8 * HOUR]);
    assert.deepEqual(slow.map((t) => t.periodMs), [2 * HOUR, 7 * DAY]);
  });

  it('keeps a cycle on its schedule: pages when behind, none when ahead, all when overdue', () => {
    const p = { estimatedPages: 100, periodMs: 100 * MIN, pollIntervalMs: MIN, maxPages: 20 };
    const rows: Array<[number, number, number]> = [
      // nextPage, elapsed, due
      [0, 0, 1],
      [1, 0, 0],
      [1, 10 * MIN, 10],
      [0, 50 * MIN, 20],
      [60, 10 * MIN, 0],
      [100, 10 * MIN, 1],
      [50, 100 * MIN, 20],
    ];
    for (const [nextPage, elapsedMs, due] of rows) assert.equal(sweepPagesDue({ ...p, nextPage, elapsedMs }), due, `${nextPage} @ ${elapsedMs / MIN} min`);
  });
});
