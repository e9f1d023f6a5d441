/**
 * A small kustomize renderer for the features docker/k8s uses, and only those: `resources` (files and
 * directories), `components` (kind Component with `resources`), `namespace`, `labels` (pairs with
 * includeSelectors: false, metadata only) and `images` (newName/newTag). Any other field is refused, so
 * the bundle cannot grow a feature this renderer would silently ignore. (No kustomize binary is
 * obtainable here: Debian's kubectl 1.20 embeds a kustomize without components, and PyPI is out of reach.)
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

export type Obj = Record<string, unknown>;

export interface K8sObject extends Obj {
  apiVersion: string;
  kind: string;
  metadata: Obj & { name: string; namespace?: string; labels?: Record<string, string> };
}

const KUSTOMIZATION_FIELDS = new Set(['apiVersion', 'kind', 'namespace', 'labels', 'resources', 'components', 'images']);
const COMPONENT_FIELDS = new Set(['apiVersion', 'kind', 'resources']);
/** Kinds without a namespace among the ones used. */
const CLUSTER_SCOPED = new Set(['Namespace']);

function yamlDocs(file: string): Obj[] {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => d.toJS() as unknown)
    .filter((d): d is Obj => d !== null && typeof d === 'object');
}

function readKustomization(dir: string, kind: 'Kustomization' | 'Component'): Obj {
  const [k] = yamlDocs(join(dir, 'kustomization.yaml'));
  assert.ok(k, `${dir}/kustomization.yaml is empty`);
  assert.equal(k.kind, kind, `${dir}: expected a ${kind}`);
  const allowed = kind === 'Component' ? COMPONENT_FIELDS : KUSTOMIZATION_FIELDS;
  for (const key of Object.keys(k)) assert.ok(allowed.has(key), `${dir}: field ${key} is not supported by the test renderer`);
  return k;
}

function list(value: unknown): string[] {
  return Array.isArray(value) ? value.map(String) : [];
}

function loadResources(dir: string, resources: string[]): K8sObject[] {
  const out: K8sObject[] = [];
  for (const r of resources) {
    const path = resolve(dir, r);
    if (statSync(path).isDirectory()) out.push(...render(path));
    else for (const doc of yamlDocs(path)) out.push(doc as K8sObject);
  }
  return out;
}

function podTemplateContainers(o: K8sObject): Obj[] {
  const spec = o.spec as Obj | undefined;
  const podSpec = (spec?.template as Obj | undefined)?.spec as Obj | undefined;
  return [...((podSpec?.containers as Obj[] | undefined) ?? []), ...((podSpec?.initContainers as Obj[] | undefined) ?? [])];
}

/** Renders the kustomization in `dir` like `kubectl kustomize dir`, for the supported fields. */
export function render(dir: string): K8sObject[] {
  const k = readKustomization(dir, 'Kustomization');
  const objects = loadResources(dir, list(k.resources));
  for (const c of list(k.components)) {
    const componentDir = resolve(dir, c);
    objects.push(...loadResources(componentDir, list(readKustomization(componentDir, 'Component').resources)));
  }
  if (typeof k.namespace === 'string') {
    for (const o of objects) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
  }
  for (const entry of (Array.isArray(k.labels) ? k.labels : []) as Obj[]) {
    assert.equal(entry.includeSelectors, false, 'only labels with includeSelectors: false are supported');
    for (const o of objects) o.metadata.labels = { ...(o.metadata.labels ?? {}), ...(entry.pairs as Record<string, string>) };
  }
  for (const image of (Array.isArray(k.images) ? k.images : []) as Obj[]) {
    for (const o of objects) {
      for (const container of podTemplateContainers(o)) {
        const [name, tag] = String(container.image).split(':') as [string, string | undefined];
        if (name !== image.name) continue;
        container.image = `${typeof image.newName === 'string' ? image.newName : name}:${typeof image.newTag === 'string' ? image.newTag : tag}`;
      }
    }
  }
  const ids = objects.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`);
  assert.equal(new Set(ids).size, ids.length, `duplicate objects: ${ids.join(', ')}`);
  return objects;
}
