/**
 * `config --effective`: every setting's value in force (secrets masked) and where it came from:
 * the schema default, the JSON file (FORWARDER_CONFIG) or the environment.
 */
import { readFileSync } from 'node:fs';
import { describeConfig, loadConfig, schemaEntries } from './load-config.js';

export type ConfigSource = 'default' | 'file' | 'env';

export interface EffectiveSetting {
  key: string;
  env: string;
  /** As loaded (durations in ms, rates per minute), secrets replaced by `[REDACTED]`. */
  value: unknown;
  source: ConfigSource;
}

/** Env names whose lower-case spelling the loader also reads. */
const LOWER_CASE_ALIASES = new Set(['HTTPS_PROXY', 'NO_PROXY']);

function fileHas(file: unknown, key: string): boolean {
  let node: unknown = file;
  for (const part of key.split('.')) {
    if (!node || typeof node !== 'object' || !Object.hasOwn(node, part)) return false;
    node = (node as Record<string, unknown>)[part];
  }
  return true;
}

/** Loads the configuration (throws ConfigError like `run` would) and says where each value came from. */
export function effectiveConfig(env: Record<string, string | undefined>): EffectiveSetting[] {
  const config = loadConfig({ env });
  const shown = describeConfig(config) as Record<string, Record<string, unknown>>;
  // loadConfig has already read and validated it; read again only to know which keys it set.
  const path = env.FORWARDER_CONFIG;
  const file: unknown = path ? JSON.parse(readFileSync(path, 'utf8')) : undefined;
  return schemaEntries().map(([key, node]) => {
    const name = node.env ?? '';
    const [section, leaf] = key.split('.') as [string, string];
    const inEnv = name !== '' && (env[name] !== undefined || (LOWER_CASE_ALIASES.has(name) && env[name.toLowerCase()] !== undefined));
    const source: ConfigSource = inEnv ? 'env' : fileHas(file, key) ? 'file' : 'default';
    return { key, env: name, value: shown[section]?.[leaf], source };
  });
}
