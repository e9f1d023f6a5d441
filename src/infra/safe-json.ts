/** Keys that could reach an object's prototype when a parsed value is later copied or merged. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
/** Non-enumerable mark on an object whose forbidden keys were dropped (never serialized). */
const DROPPED = Symbol('droppedForbiddenKeys');
/** Non-enumerable mark on every object above one that lost a key, so the search walks only there. */
const BELOW = Symbol('droppedBelow');

type Marked = { [DROPPED]?: string[]; [BELOW]?: true };

/** A key spelled like a forbidden one, or any \u escape (which could spell one). */
const MAYBE_FORBIDDEN = /"(?:__proto__|constructor|prototype)"\s*:|\\u/;

function mark(target: object, symbol: typeof DROPPED | typeof BELOW, value: string[] | true): void {
  Object.defineProperty(target, symbol, { value, enumerable: false });
}

/**
 * JSON.parse for text from another process. Forbidden keys are dropped at the door; the object that
 * held one is marked so that `findForbiddenKey` can tell the caller where it was.
 */
export function parseUntrustedJson(text: string): unknown {
  // The reviver costs a call per value; skip it when no key can be forbidden (nor hide behind an escape).
  if (!MAYBE_FORBIDDEN.test(text)) return JSON.parse(text);
  return JSON.parse(text, function (this: unknown, key: string, value: unknown) {
    const holder = this as Marked;
    if (FORBIDDEN_KEYS.has(key)) {
      const list = holder[DROPPED] ?? [];
      if (!holder[DROPPED]) mark(holder, DROPPED, list);
      list.push(key);
      return undefined;
    }
    // The reviver runs children first: pass the mark up to the holder of a marked child.
    if (value && typeof value === 'object' && ((value as Marked)[DROPPED] || (value as Marked)[BELOW]) && !holder[BELOW]) {
      mark(holder, BELOW, true);
    }
    return value;
  });
}

/** Path of the first forbidden key that was dropped from `value` (parsed by parseUntrustedJson), or null. */
export function findForbiddenKey(value: unknown, path = ''): string | null {
  if (!value || typeof value !== 'object') return null;
  const marked = value as Marked;
  const dropped = marked[DROPPED];
  if (dropped && dropped.length > 0) return `${path ? `${path}.` : ''}${dropped[0]}`;
  if (!marked[BELOW]) return null;
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
