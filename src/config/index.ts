export { loadConfig, describeConfig, schemaEntries, ConfigError, type Config, type LoadConfigOptions } from './load-config.js';
export { parseDuration, formatDuration } from './duration.js';
export { parseRate } from './formats.js';
