/**
 * Summary of a V8 `.cpuprofile` (what `node --cpu-prof` writes): self time per function and per area
 * (the project's own code, each npm package, Node internals, GC).
 *
 * Also runnable on its own: `npx tsx test/bench/cpuprofile.ts <file.cpuprofile> [top]`.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface FunctionTime {
  function: string;
  /** Shortened file and 1-based line, e.g. `dist/pipeline/poller.js:120` or `node_modules/bullmq/…`. */
  location: string;
  area: string;
  selfMs: number;
  /** Share of the profile's busy (non-idle) time. */
  selfPct: number;
  /** The JavaScript function (not native, not Node internals when possible) that most of this time was called from. */
  caller: string;
}

export interface InclusiveTime {
  function: string;
  location: string;
  /** Time with this function anywhere on the stack. */
  totalMs: number;
  totalPct: number;
}

export interface AreaTime {
  area: string;
  selfMs: number;
  selfPct: number;
}

export interface ProfileSummary {
  file: string;
  durationMs: number;
  /** Sampled time not spent idle. */
  busyMs: number;
  samples: number;
  top: FunctionTime[];
  areas: AreaTime[];
  /** The project's own functions (dist/ = src/) by inclusive time. */
  projectInclusive: InclusiveTime[];
}

const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));

function shortUrl(url: string): string {
  let u = url.startsWith('file://') ? decodeURIComponent(url.slice('file://'.length)) : url;
  if (u.startsWith(PROJECT_ROOT)) u = u.slice(PROJECT_ROOT.length);
  const nm = u.lastIndexOf('node_modules/');
  if (nm >= 0) u = u.slice(nm);
  return u;
}

function areaOf(frame: CallFrame): string {
  const name = frame.functionName;
  if (frame.url === '') {
    if (name === '(garbage collector)') return '(garbage collector)';
    if (name === '(idle)') return '(idle)';
    if (name === '(program)') return '(program)';
    if (name === '(root)') return '(root)';
    return 'native / V8 builtins';
  }
  const u = shortUrl(frame.url);
  if (u.startsWith('node:')) return 'node internals';
  const nm = /^node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u);
  if (nm) return `npm: ${nm[1]}`;
  if (u.startsWith('dist/')) return 'project (dist/ = src/)';
  return 'other';
}

export function summarizeProfile(file: string, topN = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const n of profile.nodes) byId.set(n.id, n);

  // Self time per node: each sample owns the interval up to the next sample (as DevTools counts it);
  // without timing data, hitCount × the mean interval.
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  const totalUs = profile.endTime - profile.startTime;
  if (samples.length > 0 && deltas.length === samples.length) {
    const mean = totalUs / samples.length;
    for (let i = 0; i < samples.length; i++) {
      const id = samples[i] as number;
      const next = deltas[i + 1];
      const dt = next !== undefined && next >= 0 ? next : mean;
      selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
    }
  } else {
    const hits = profile.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0) || 1;
    for (const n of profile.nodes) selfUs.set(n.id, ((n.hitCount ?? 0) * totalUs) / hits);
  }

  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const keyOf = (f: CallFrame): string => `${f.functionName}|${f.url}|${f.lineNumber}|${f.columnNumber}`;
  const label = (f: CallFrame): string => `${f.functionName || '(anonymous)'} ${f.url === '' ? '(native)' : `${shortUrl(f.url)}:${f.lineNumber + 1}`}`;
  /** Nearest ancestor that is JavaScript outside Node's internals (else any JavaScript, else the parent). */
  const callerOf = (id: number): string => {
    let fallback: string | undefined;
    for (let p = parent.get(id); p !== undefined; p = parent.get(p)) {
      const f = byId.get(p)?.callFrame;
      if (!f || f.url === '') continue;
      if (!shortUrl(f.url).startsWith('node:')) return label(f);
      fallback ??= label(f);
    }
    return fallback ?? '(none)';
  };

  const fnTimes = new Map<string, { frame: CallFrame; us: number; callers: Map<string, number> }>();
  const inclusive = new Map<string, { frame: CallFrame; us: number }>();
  const areaTimes = new Map<string, number>();
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node || us <= 0) continue;
    const frame = node.callFrame;
    const area = areaOf(frame);
    if (area === '(idle)') {
      idleUs += us;
      continue;
    }
    areaTimes.set(area, (areaTimes.get(area) ?? 0) + us);
    const key = keyOf(frame);
    let entry = fnTimes.get(key);
    if (!entry) fnTimes.set(key, (entry = { frame, us: 0, callers: new Map() }));
    entry.us += us;
    const caller = callerOf(id);
    entry.callers.set(caller, (entry.callers.get(caller) ?? 0) + us);
    // Inclusive time of the project's functions: every distinct one on this node's stack.
    const seen = new Set<string>();
    for (let p: number | undefined = id; p !== undefined; p = parent.get(p)) {
      const f = byId.get(p)?.callFrame;
      if (!f || !shortUrl(f.url).startsWith('dist/')) continue;
      const k = keyOf(f);
      if (seen.has(k)) continue;
      seen.add(k);
      const inc = inclusive.get(k);
      if (inc) inc.us += us;
      else inclusive.set(k, { frame: f, us });
    }
  }
  const sampledUs = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const busyUs = Math.max(1, sampledUs - idleUs);
  const pct = (us: number): number => Math.round((us / busyUs) * 1000) / 10;

  const top = [...fnTimes.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, topN)
    .map(({ frame, us, callers }) => ({
      function: frame.functionName || '(anonymous)',
      location: frame.url === '' ? '(native)' : `${shortUrl(frame.url)}:${frame.lineNumber + 1}`,
      area: areaOf(frame),
      selfMs: Math.round(us / 100) / 10,
      selfPct: pct(us),
      caller: [...callers.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '(none)',
    }));
  const areas = [...areaTimes.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([area, us]) => ({ area, selfMs: Math.round(us / 100) / 10, selfPct: pct(us) }));
  const projectInclusive = [...inclusive.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, topN)
    .map(({ frame, us }) => ({
      function: frame.functionName || '(anonymous)',
      location: `${shortUrl(frame.url)}:${frame.lineNumber + 1}`,
      totalMs: Math.round(us / 100) / 10,
      totalPct: pct(us),
    }));
  return {
    file,
    durationMs: Math.round(totalUs / 1000),
    busyMs: Math.round(busyUs / 1000),
    samples: samples.length,
    top,
    areas,
    projectInclusive,
  };
}

export function profileMarkdown(s: ProfileSummary): string {
  const lines: string[] = [];
  lines.push(`Profile ${s.file}: ${s.durationMs} ms recorded, ${s.busyMs} ms busy (not idle), ${s.samples} samples.`);
  lines.push('');
  lines.push('| # | self ms | % busy | function | file:line | area | mostly called from |');
  lines.push('|---|---:|---:|---|---|---|---|');
  s.top.forEach((f, i) => lines.push(`| ${i + 1} | ${f.selfMs} | ${f.selfPct} | \`${f.function}\` | ${f.location} | ${f.area} | ${f.caller} |`));
  lines.push('');
  lines.push('| area | self ms | % busy |');
  lines.push('|---|---:|---:|');
  for (const a of s.areas.slice(0, 15)) lines.push(`| ${a.area} | ${a.selfMs} | ${a.selfPct} |`);
  if (s.projectInclusive.length > 0) {
    lines.push('');
    lines.push('| project function (dist/ = src/) | total ms (incl. callees) | % busy |');
    lines.push('|---|---:|---:|');
    for (const f of s.projectInclusive) lines.push(`| \`${f.function}\` ${f.location} | ${f.totalMs} | ${f.totalPct} |`);
  }
  return lines.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: tsx test/bench/cpuprofile.ts <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  process.stdout.write(`${profileMarkdown(summarizeProfile(file, Number(process.argv[3] ?? 15)))}\n`);
}
