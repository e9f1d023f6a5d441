/** Keys that could reach an object's prototype when a parsed value is later copied or merged. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
/** Non-enumerable mark left on an object whose forbidden keys were dropped (never serialized). */
const DROPPED = Symbol('droppedForbiddenKeys');

type Marked = { [DROPPED]?: string[] };

/**
 * JSON.parse for text from another process. Forbidden keys are dropped at the door; the object that
 * held one is marked so that `findForbiddenKey` can tell the caller where it was.
 */
export function parseUntrustedJson(text: string): unknown {
  return JSON.parse(text, function (this: unknown, key: string, value: unknown) {
    if (!FORBIDDEN_KEYS.has(key)) return value;
    const holder = this as Marked;
    const list = holder[DROPPED] ?? [];
    if (!holder[DROPPED]) Object.defineProperty(holder, DROPPED, { value: list, enumerable: false });
    list.push(key);
    return undefined;
  });
}

/** Path of the first forbidden key that was dropped from `value` (parsed by parseUntrustedJson), or null. */
export function findForbiddenKey(value: unknown, path = ''): string | null {
  if (!value || typeof value !== 'object') return null;
  const dropped = (value as Marked)[DROPPED];
  if (dropped && dropped.length > 0) return `${path ? `${path}.` : ''}${dropped[0]}`;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findForbiddenKey(value[i], `${path}[${i}]`);
      if (found) return found;
    }
    return null;
  }
  for (const [key, child] of Object.entries(value)) {
    const found = findForbiddenKey(child, path ? `${path}.${key}` : key);
    if (found) return found;
  }
  return null;
}
