// Regenerates the configuration table in docs/configuration.md from the schema (`config --markdown`).
// Run after changing src/config/schema.ts: npm run build && node scripts/update-readme-config.mjs
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

const START = '<!-- config-table:start -->';
const END = '<!-- config-table:end -->';
const table = execFileSync(process.execPath, ['dist/main.js', 'config', '--markdown'], { encoding: 'utf8' });
const readme = readFileSync('docs/configuration.md', 'utf8');
const from = readme.indexOf(START);
const to = readme.indexOf(END);
if (from < 0 || to < from) throw new Error(`docs/configuration.md lacks the ${START} … ${END} markers`);
writeFileSync('docs/configuration.md', `${readme.slice(0, from + START.length)}\n${table}${readme.slice(to)}`);
console.log('docs/configuration.md configuration table updated');
