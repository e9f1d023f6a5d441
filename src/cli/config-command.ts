import { formatDuration } from '../config/duration.js';
import type { EffectiveSetting } from '../config/effective.js';
import { schemaEntries } from '../config/load-config.js';

/** Keys whose numbers are durations in ms / rates per minute, for printing defaults the way operators write them. */
function formatDefault(format: unknown, value: unknown): string {
  if (value === null || value === undefined) return '';
  if ((format === 'duration' || format === 'positive-duration') && typeof value === 'number') return formatDuration(value);
  if (format === 'rate' && typeof value === 'number') return `${value}/min`;
  if (format === 'size' && typeof value === 'number') {
    for (const [unit, size] of [['GB', 1024 ** 3], ['MB', 1024 ** 2], ['KB', 1024]] as const) if (value % size === 0) return `${value / size}${unit}`;
    return String(value);
  }
  if (Array.isArray(value)) return value.join(',');
  // Pair lists (close reason -> state) are shown the way they are written in the environment.
  if (typeof value === 'object') return Object.entries(value as Record<string, unknown>).map(([k, v]) => `${k}=${String(v)}`).join(',');
  return String(value);
}

function required(format: unknown, value: unknown): boolean {
  return value === null && (format === 'required-string' || format === 'http-url');
}

export interface ConfigRow {
  key: string;
  env: string;
  default: string;
  required: boolean;
  sensitive: boolean;
  doc: string;
}

/** Every config key, straight from the schema. */
export function configRows(): ConfigRow[] {
  return schemaEntries().map(([key, node]) => ({
    key,
    env: node.env ?? '',
    default: formatDefault(node.format, node.default),
    required: required(node.format, node.default),
    sensitive: node.sensitive === true,
    doc: node.doc ?? '',
  }));
}

/** The configuration table as Markdown (docs/configuration.md's table is this output). */
export function configMarkdown(): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|');
  const lines = ['| key | env | default | notes |', '|---|---|---|---|'];
  for (const r of configRows()) {
    const def = r.required ? '(required)' : r.default === '' ? 'none' : `\`${esc(r.default)}\``;
    const notes = `${esc(r.doc)}${r.sensitive ? ' (secret)' : ''}`;
    lines.push(`| ${r.key} | \`${r.env}\` | ${def} | ${notes} |`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * `config --effective`: one line per key with the value in force and its source (secrets masked), then
 * the configuration file read, if any.
 */
export function effectiveText(settings: EffectiveSetting[], configFile?: string): string {
  const formats = new Map(schemaEntries().map(([key, node]) => [key, node.format]));
  const rows = settings.map((s) => {
    const shown = s.value === null || s.value === undefined || s.value === '' ? '(none)' : formatDefault(formats.get(s.key), s.value);
    return [s.key, s.env, shown, s.source] as const;
  });
  const wKey = Math.max(3, ...rows.map((r) => r[0].length));
  const wEnv = Math.max(3, ...rows.map((r) => r[1].length));
  const wVal = Math.max(5, ...rows.map((r) => r[2].length));
  const line = (r: readonly [string, string, string, string]): string => `${r[0].padEnd(wKey)}  ${r[1].padEnd(wEnv)}  ${r[2].padEnd(wVal)}  ${r[3]}`.trimEnd();
  const file = configFile ? `file: ${configFile} (FORWARDER_CONFIG)` : 'file: none (FORWARDER_CONFIG is not set; defaults and the environment only)';
  return `${[line(['KEY', 'ENV', 'VALUE', 'SOURCE']), ...rows.map(line)].join('\n')}\n\n${file}\n`;
}

export function configText(): string {
  const rows = configRows();
  const out: string[] = [];
  for (const r of rows) {
    out.push(`${r.key}`);
    out.push(`  env:     ${r.env}`);
    out.push(`  default: ${r.required ? '(required)' : r.default || '(none)'}${r.sensitive ? '  [secret]' : ''}`);
    out.push(`  ${r.doc}`);
  }
  return `${out.join('\n')}\n`;
}
