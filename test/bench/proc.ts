/**
 * CPU time and resident memory of processes, read from /proc (Linux): utime + stime of
 * /proc/<pid>/stat (clock ticks) and VmRSS of /proc/<pid>/status. A sampler reads every watched
 * process every ~250 ms and keeps the series, so peaks and CPU over any window can be read back.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

function clockTicks(): number {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
}

/** Clock ticks per second of utime/stime (`getconf CLK_TCK`, 100 when unknown). */
export const CLK_TCK = clockTicks();

export interface ProcReading {
  /** user + system CPU time so far, ms. */
  cpuMs: number;
  rssBytes: number;
}

/** One reading of `pid`; undefined once the process is gone. */
export function readProc(pid: number): ProcReading | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: count fields after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return { cpuMs: ((utime + stime) * 1000) / CLK_TCK, rssBytes: rss ? Number(rss[1]) * 1024 : 0 };
  } catch {
    return undefined;
  }
}

/** The bench process itself (it hosts both simulators). */
export function readSelf(): ProcReading {
  const u = process.cpuUsage();
  return { cpuMs: (u.user + u.system) / 1000, rssBytes: process.memoryUsage.rss() };
}

export interface Sample {
  /** Epoch ms. */
  t: number;
  cpuMs: number;
  rssBytes: number;
}

interface Watched {
  read: () => ProcReading | undefined;
  series: Sample[];
  peakRssBytes: number;
  gone: boolean;
}

export interface ProcSummary {
  samples: number;
  peakRssBytes: number;
  /** CPU ms between the first and the last sample. */
  cpuMs: number;
  firstAt: number;
  lastAt: number;
}

export class ProcSampler {
  private readonly watched = new Map<string, Watched>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly intervalMs = 250) {}

  /** Starts sampling `pid` (or the bench process itself with pid 'self') under `label`. */
  watch(label: string, pid: number | 'self'): void {
    const read = pid === 'self' ? readSelf : () => readProc(pid);
    const w: Watched = { read, series: [], peakRssBytes: 0, gone: false };
    this.watched.set(label, w);
    this.sampleOne(w);
  }

  labels(): string[] {
    return [...this.watched.keys()];
  }

  start(): void {
    this.timer ??= setInterval(() => this.sampleAll(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.sampleAll();
  }

  /** Takes a sample of every watched process now (e.g. right when a drain ends). */
  sampleAll(): void {
    for (const w of this.watched.values()) this.sampleOne(w);
  }

  private sampleOne(w: Watched): void {
    if (w.gone) return;
    const r = w.read();
    if (!r) {
      w.gone = true;
      return;
    }
    w.series.push({ t: Date.now(), cpuMs: r.cpuMs, rssBytes: r.rssBytes });
    if (r.rssBytes > w.peakRssBytes) w.peakRssBytes = r.rssBytes;
  }

  series(label: string): Sample[] {
    return this.watched.get(label)?.series ?? [];
  }

  /** CPU time (ms) at `t`, linearly interpolated between samples (clamped to the first/last one). */
  cpuAt(label: string, t: number): number {
    const s = this.series(label);
    if (s.length === 0) return 0;
    const first = s[0] as Sample;
    const last = s[s.length - 1] as Sample;
    if (t <= first.t) return first.cpuMs;
    if (t >= last.t) return last.cpuMs;
    let lo = 0;
    let hi = s.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if ((s[mid] as Sample).t <= t) lo = mid;
      else hi = mid;
    }
    const a = s[lo] as Sample;
    const b = s[hi] as Sample;
    return b.t === a.t ? b.cpuMs : a.cpuMs + ((b.cpuMs - a.cpuMs) * (t - a.t)) / (b.t - a.t);
  }

  /** CPU ms used by `label` between two instants. */
  cpuBetween(label: string, from: number, to: number): number {
    return Math.max(0, this.cpuAt(label, to) - this.cpuAt(label, from));
  }

  /** Highest RSS seen between two instants (all samples when not given). */
  peakRss(label: string, from = -Infinity, to = Infinity): number {
    let peak = 0;
    for (const s of this.series(label)) if (s.t >= from && s.t <= to && s.rssBytes > peak) peak = s.rssBytes;
    return peak;
  }

  summary(label: string): ProcSummary {
    const s = this.series(label);
    const first = s[0];
    const last = s[s.length - 1];
    return {
      samples: s.length,
      peakRssBytes: this.watched.get(label)?.peakRssBytes ?? 0,
      cpuMs: first && last ? last.cpuMs - first.cpuMs : 0,
      firstAt: first?.t ?? 0,
      lastAt: last?.t ?? 0,
    };
  }

  /** The series thinned to about one sample per `everyMs` (for the results file). */
  thinned(label: string, everyMs = 1000): Array<[t: number, cpuMs: number, rssMB: number]> {
    const out: Array<[number, number, number]> = [];
    let next = -Infinity;
    for (const s of this.series(label)) {
      if (s.t < next) continue;
      out.push([s.t, Math.round(s.cpuMs), Math.round((s.rssBytes / 1048576) * 10) / 10]);
      next = s.t + everyMs;
    }
    return out;
  }
}
