/**
 * Environment variables that look like this daemon's settings but are none of them (a misspelt
 * `ALERT_SEVERITY=critical` would otherwise be ignored and every severity forwarded). `run` warns
 * about each at start; `check` fails on them.
 */
import { distance } from 'fastest-levenshtein';
import { schemaEntries } from './load-config.js';

/** Read by the daemon although not schema keys. */
const ALSO_READ = ['FORWARDER_CONFIG', 'https_proxy', 'no_proxy'];

/** Prefixes only this daemon's settings use: any other variable with one is a typo or a leftover. */
const OWN_PREFIXES = ['CODE42_', 'XSOAR_', 'ALERT_', 'POLL_', 'WORKER_', 'ENRICH_', 'QUEUE_', 'REDIS_', 'FORWARDER_'];

/** Common variables that sit close to a setting's name but mean something else (to other programs). */
const FOREIGN = new Set(['HTTP_PROXY', 'ALL_PROXY', 'NODE_ENV', 'NODE_OPTIONS', 'HOSTNAME']);

/** Kubernetes service links: `<SERVICE>_SERVICE_HOST`, `<SERVICE>_PORT_6379_TCP_ADDR` and so on. */
const SERVICE_LINK = /_(?:SERVICE_HOST|SERVICE_PORT(?:_[A-Z0-9_]+)?|PORT(?:_\d+_(?:TCP|UDP|SCTP)(?:_(?:PROTO|PORT|ADDR))?)?)$/;

export interface UnknownEnvVariable {
  name: string;
  /** The closest real setting, when one is close enough to be what was meant. */
  suggestion?: string;
}

function knownNames(): string[] {
  return schemaEntries()
    .map(([, node]) => node.env)
    .filter((e): e is string => typeof e === 'string');
}

/** A setting whose name holds every word of `name` (CODE42_SECRET → CODE42_CLIENT_SECRET), when only one does. */
function containing(name: string, known: string[]): string | undefined {
  const words = name.split('_').filter((w) => w !== '');
  const hits = known.filter((k) => {
    const have = k.split('_');
    return words.every((w) => have.includes(w));
  });
  return hits.length === 1 ? hits[0] : undefined;
}

/** The unknown variables in `env` that look like settings, each with the closest real name. */
export function unknownEnvVariables(env: Record<string, string | undefined>): UnknownEnvVariable[] {
  const known = knownNames();
  const exact = new Set([...known, ...ALSO_READ]);
  const out: UnknownEnvVariable[] = [];
  for (const name of Object.keys(env).sort()) {
    if (env[name] === undefined || exact.has(name)) continue;
    const upper = name.toUpperCase();
    if (FOREIGN.has(upper) || SERVICE_LINK.test(upper)) continue;
    let best: { name: string; d: number } | undefined;
    for (const candidate of known) {
      const d = distance(upper, candidate);
      if (!best || d < best.d) best = { name: candidate, d };
    }
    const ownPrefix = OWN_PREFIXES.some((p) => upper.startsWith(p));
    // Without one of our prefixes, only a near miss (a typo, wrong case) counts as ours.
    const nearMiss = best !== undefined && (best.d === 0 || (upper.length >= 6 && best.d <= 2));
    if (!ownPrefix && !nearMiss) continue;
    const close = best !== undefined && best.d <= Math.max(2, Math.ceil(upper.length / 3)) ? best.name : undefined;
    // Every word of the name in one setting's name is a stronger sign than a small edit distance.
    const suggestion = containing(upper, known) ?? close;
    out.push({ name, ...(suggestion ? { suggestion } : {}) });
  }
  return out;
}

/** One line per variable: "ALERT_SEVERITY is not a setting of this daemon; did you mean ALERT_SEVERITIES?" */
export function describeUnknownEnv(v: UnknownEnvVariable): string {
  const hint = v.suggestion ? `did you mean ${v.suggestion}?` : "see 'code42-xsoar-forwarder config' for the settings";
  return `${v.name} is not a setting of this daemon and is ignored; ${hint}`;
}
