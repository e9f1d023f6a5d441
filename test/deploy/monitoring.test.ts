/**
 * The alert rules and the Grafana dashboard in deploy/ against the daemon they watch: every PromQL
 * expression parses with Prometheus's own grammar (@prometheus-io/lezer-promql), every metric it names
 * is in /metrics of a running daemon, and the dashboard type-checks against Grafana's schema
 * (@grafana/schema's Dashboard, with TypeScript's excess-property checks).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parser } from '@prometheus-io/lezer-promql';
import ts from 'typescript';
import { parse as parseYaml } from 'yaml';
import { generateTenant } from '../sims/code42/index.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon-process.js';
import { freePort } from '../helpers/ports.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RULES = join(ROOT, 'deploy/prometheus/code42-xsoar-forwarder.rules.yml');
const DASHBOARD = join(ROOT, 'deploy/grafana/code42-xsoar-forwarder.dashboard.json');
/** Series Prometheus makes itself for every target, not the daemon. */
const PROMETHEUS_OWN = new Set(['up']);

interface ParsedExpr {
  errors: string[];
  metrics: string[];
}

/** Parses one PromQL expression; lists the syntax errors and the metric name of every vector selector. */
function parsePromQL(expr: string): ParsedExpr {
  const errors: string[] = [];
  const metrics: string[] = [];
  parser.parse(expr).iterate({
    enter(node) {
      if (node.type.isError) errors.push(`syntax error at ${node.from}: ${JSON.stringify(expr.slice(Math.max(0, node.from - 10), node.to + 10))}`);
      if (node.name === 'VectorSelector') {
        const name = node.node.getChild('Identifier');
        if (name) metrics.push(expr.slice(name.from, name.to));
        else errors.push(`a selector without a metric name: ${JSON.stringify(expr.slice(node.from, node.to))}`);
      }
    },
  });
  return { errors, metrics };
}

/** Grafana's variables replaced by what they expand to, so the query is plain PromQL. */
function expandGrafanaVariables(expr: string): string {
  return expr.replace(/\$__rate_interval|\$__interval|\$__range/g, '5m').replace(/\$\{?(\w+)\}?/g, (_m, name: string) => `__${name}__`);
}

/** Every series name /metrics can carry: the TYPE lines, with a histogram's and a summary's suffixes. */
function exportedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = m as unknown as [string, string, string];
    names.add(name);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
    if (type === 'summary') for (const s of ['_sum', '_count']) names.add(name + s);
  }
  return names;
}

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

interface DashboardPanel {
  title?: string;
  type?: string;
  targets?: Array<{ expr?: string }>;
  panels?: DashboardPanel[];
}

function dashboardQueries(): Array<{ where: string; expr: string }> {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels?: DashboardPanel[] };
  const out: Array<{ where: string; expr: string }> = [];
  const walk = (panels: DashboardPanel[] | undefined): void => {
    for (const p of panels ?? []) {
      for (const t of p.targets ?? []) if (typeof t.expr === 'string') out.push({ where: `panel "${p.title}"`, expr: t.expr });
      walk(p.panels);
    }
  };
  walk(dashboard.panels);
  return out;
}

/** TypeScript's verdict on `<json> satisfies Dashboard` (a virtual file inside the repository, so imports resolve). */
function schemaErrors(json: string): string[] {
  const file = join(ROOT, 'test/deploy/__dashboard-schema-check__.ts');
  const source = `import type { Dashboard } from '@grafana/schema';\nexport const dashboard = (${json}) satisfies Dashboard;\n`;
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, version, onError, create) => (name === file ? ts.createSourceFile(name, source, version) : getSourceFile(name, version, onError, create));
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === file || fileExists(name);
  const readFile = host.readFile.bind(host);
  host.readFile = (name) => (name === file ? source : readFile(name));
  const program = ts.createProgram([file], options, host);
  return ts
    .getPreEmitDiagnostics(program)
    .filter((d) => d.file?.fileName === file || d.file === undefined)
    .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
}

describe('alert rules and dashboard (deploy/)', () => {
  let stack: Stack | undefined;
  let daemon: DaemonProcess | undefined;
  let exported = new Set<string>();

  before(async () => {
    stack = await startStack({ name: 'monitoring' });
    const now = Date.now();
    stack.code42.loadTenant(generateTenant({ sessions: 5, seed: 5, beginFrom: now - 20 * 60_000, beginTo: now, stateWeights: { OPEN: 1 } }));
    const port = await freePort();
    daemon = startDaemon({ ...stack.env, HTTP_PORT: String(port) });
    const text = await waitFor(
      async () => {
        const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5_000) }).catch(() => undefined);
        const body = res?.ok ? await res.text() : '';
        return /^code42_forwarder_delivery_delay_seconds_count [1-9]/m.test(body) ? body : undefined;
      },
      { timeoutMs: 30_000, what: 'a forwarded session in /metrics' },
    );
    exported = exportedNames(text);
  });
  after(async () => {
    await daemon?.stop('SIGKILL');
    await stack?.close();
  });

  it('the daemon exports build_info, readiness, the delivery delay and sync_refused_total', () => {
    for (const name of ['code42_forwarder_build_info', 'code42_forwarder_ready', 'code42_forwarder_delivery_delay_seconds_bucket', 'code42_forwarder_sync_refused_total']) {
      assert.ok(exported.has(name), `${name} not in /metrics`);
    }
  });

  it('every alert rule parses, names only exported metrics, and says what to do', () => {
    const doc = parseYaml(readFileSync(RULES, 'utf8')) as { groups: Array<{ name: string; rules: Rule[] }> };
    const rules = doc.groups.flatMap((g) => g.rules);
    assert.ok(rules.length >= 7, `${rules.length} rules`);
    const alerts = new Set(rules.map((r) => r.alert));
    for (const wanted of ['Down', 'NotReady', 'CircuitOpen', 'FailedSetGrowing', 'CheckpointLag', 'SyncRefused', 'RedisFull']) {
      assert.ok(alerts.has(`Code42Forwarder${wanted}`), `no alert Code42Forwarder${wanted}`);
    }
    for (const rule of rules) {
      const { errors, metrics } = parsePromQL(rule.expr);
      assert.deepEqual(errors, [], `${rule.alert}: ${rule.expr}`);
      assert.ok(metrics.length > 0, `${rule.alert} names no metric`);
      for (const m of metrics) assert.ok(exported.has(m) || PROMETHEUS_OWN.has(m), `${rule.alert}: ${m} is not exported by the daemon`);
      assert.ok(rule.labels?.severity, `${rule.alert}: no severity label`);
      assert.ok(rule.annotations?.summary && rule.annotations.description, `${rule.alert}: no summary or description`);
      if (rule.for !== undefined) assert.match(rule.for, /^\d+[smh]$/, `${rule.alert}: for`);
    }
  });

  it('every dashboard query parses and names only exported metrics', () => {
    const queries = dashboardQueries();
    assert.ok(queries.length >= 15, `${queries.length} queries`);
    for (const q of queries) {
      const expr = expandGrafanaVariables(q.expr);
      const { errors, metrics } = parsePromQL(expr);
      assert.deepEqual(errors, [], `${q.where}: ${q.expr}`);
      assert.ok(metrics.length > 0, `${q.where} names no metric`);
      for (const m of metrics) assert.ok(exported.has(m), `${q.where}: ${m} is not exported by the daemon`);
    }
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { templating?: { list?: Array<{ query?: unknown }> } };
    for (const v of dashboard.templating?.list ?? []) {
      const m = typeof v.query === 'string' ? /^label_values\((\w+),/.exec(v.query) : null;
      if (m) assert.ok(exported.has(m[1] as string), `variable query names ${m[1]}`);
    }
  });

  it('the dashboard satisfies Grafana\'s Dashboard schema, and the check would catch a broken one', () => {
    const text = readFileSync(DASHBOARD, 'utf8');
    assert.deepEqual(schemaErrors(text), []);
    const broken = JSON.parse(text) as { panels: Array<Record<string, unknown>>; graphTooltip?: unknown };
    broken.panels[1] = { ...broken.panels[1], gridPos: { x: 0, y: 0 }, tilte: 'typo' };
    broken.graphTooltip = 7;
    const errors = schemaErrors(JSON.stringify(broken));
    assert.ok(errors.length >= 2, errors.join('\n'));
  });
});

