/**
 * The XSOAR simulator answers `POST /incidents/search` by scanning every stored incident. That is right
 * for tests, but after a long outage every retried job searches once or twice before creating
 * (the code42sessionid label query, dbotMirrorId, …), and with 100,000 stored incidents the scans would
 * make the bench measure the simulator instead of the daemon. Real XSOAR answers these exact-id
 * queries from an index.
 *
 * `indexXsoarSearch` gives one simulator instance the same fast path: a query that is exactly one
 * quoted `dbotMirrorId:"…"` or `code42sessionid:"…"` term, or `labels.type:code42sessionid and labels.value:"…"` (nothing else in the filter but page and size)
 * is answered from a map kept up to date with the stored incidents, with the same matching rules
 * (whole value, case-insensitive), order (creation order) and body as the scan. Every other search
 * goes to the simulator's own code. When the simulator's internals are not what this expects, the
 * instance is left unchanged.
 */
import { parseQuery, type QueryNode, type StoredIncident, type XsoarSimulator } from '../sims/xsoar/index.js';

type Answer = (status: number, body: unknown, headers?: Record<string, string>) => Promise<void>;

interface SimInternals {
  stored: StoredIncident[];
  search(body: unknown, answer: Answer): Promise<void>;
  wire(inc: StoredIncident): Record<string, unknown>;
}

const INDEXED_FIELDS = new Set(['dbotmirrorid', 'code42sessionid']);
const MAX_SEARCH_SIZE = 1000;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** The index key of an exact-id search, or undefined when the search needs the full scan. */
function exactLookup(body: unknown): { key: string; page: number; size: number } | undefined {
  if (!isPlainObject(body)) return undefined;
  const keys = Object.keys(body);
  if (keys.length !== 1 || keys[0]?.toLowerCase() !== 'filter') return undefined;
  const filter = body[keys[0]];
  if (!isPlainObject(filter)) return undefined;
  let query: unknown;
  let page: unknown = 0;
  let size: unknown = 0;
  for (const [k, v] of Object.entries(filter)) {
    const lower = k.toLowerCase();
    if (lower === 'query') query = v;
    else if (lower === 'page') page = v;
    else if (lower === 'size') size = v;
    else return undefined;
  }
  if (typeof query !== 'string' || !Number.isInteger(page) || !Number.isInteger(size)) return undefined;
  let node: QueryNode;
  try {
    node = parseQuery(query);
  } catch {
    return undefined;
  }
  // The label query the daemon sends first: `labels.type:code42sessionid and labels.value:"<id>"`.
  if (node.kind === 'and' && node.left.kind === 'term' && node.right.kind === 'term') {
    const [type, value] = [node.left, node.right];
    if (type.field?.toLowerCase() === 'labels.type' && type.value.toLowerCase() === 'code42sessionid' && type.op === ':' && value.field?.toLowerCase() === 'labels.value' && value.op === ':' && value.quoted) {
      return { key: `code42sessionid\u0000${value.value.toLowerCase()}`, page: page as number, size: size as number };
    }
    return undefined;
  }
  if (node.kind !== 'term' || node.field === null || node.op !== ':' || !node.quoted) return undefined;
  const field = node.field.toLowerCase();
  if (!INDEXED_FIELDS.has(field)) return undefined;
  return { key: `${field}\u0000${node.value.toLowerCase()}`, page: page as number, size: size as number };
}

export function indexXsoarSearch(sim: XsoarSimulator): boolean {
  const internals = sim as unknown as SimInternals;
  if (!Array.isArray(internals.stored) || typeof internals.search !== 'function' || typeof internals.wire !== 'function') return false;
  const scan = internals.search.bind(sim);
  const wire = internals.wire.bind(sim);
  const byKey = new Map<string, Set<StoredIncident>>();
  let source: StoredIncident[] | undefined;
  let indexed = 0;

  const add = (field: string, value: string, inc: StoredIncident): void => {
    const key = `${field}\u0000${value.toLowerCase()}`;
    let set = byKey.get(key);
    if (!set) byKey.set(key, (set = new Set()));
    set.add(inc);
  };
  const catchUp = (): StoredIncident[] => {
    const stored = internals.stored;
    if (stored !== source || stored.length < indexed) {
      // reset() replaced the list.
      source = stored;
      indexed = 0;
      byKey.clear();
    }
    for (; indexed < stored.length; indexed++) {
      const inc = stored[indexed] as StoredIncident;
      if (inc.dbotMirrorId) add('dbotmirrorid', inc.dbotMirrorId, inc);
      for (const [k, v] of Object.entries(inc.CustomFields)) {
        if (k.toLowerCase() === 'code42sessionid' && typeof v === 'string') add('code42sessionid', v, inc);
      }
      for (const l of inc.labels) if (l.type.toLowerCase() === 'code42sessionid') add('code42sessionid', l.value, inc);
    }
    return stored;
  };

  internals.search = async (body: unknown, answer: Answer): Promise<void> => {
    const lookup = exactLookup(body);
    if (!lookup) return scan(body, answer);
    catchUp();
    // Creation order, as the scan returns them.
    const hits = [...(byKey.get(lookup.key) ?? [])].sort((a, b) => a.numericId - b.numericId);
    const size = Math.min(Math.max(lookup.size, 0), MAX_SEARCH_SIZE);
    const page = Math.max(lookup.page, 0);
    const data = hits.slice(page * size, page * size + size).map(wire);
    return answer(200, { total: hits.length, data });
  };
  return true;
}

/** The simulator's stored incidents without copying them (read only); a copy when the internals differ. */
export function storedIncidents(sim: XsoarSimulator): readonly StoredIncident[] {
  const stored = (sim as unknown as Partial<SimInternals>).stored;
  return Array.isArray(stored) ? stored : sim.incidents();
}
