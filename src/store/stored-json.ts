/**
 * Reads back a JSON record the daemon stored in Redis. `accept` checks the fields it needs and shapes
 * the result; anything absent, not JSON, not an object or not accepted is undefined (the caller then
 * acts as if nothing was stored).
 */
export function readStoredJson<T>(raw: string | null | undefined, accept: (value: Partial<T>) => T | undefined): T | undefined {
  if (!raw) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return undefined;
  }
  return value !== null && typeof value === 'object' ? accept(value as Partial<T>) : undefined;
}
