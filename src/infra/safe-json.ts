/**
 * JSON.parse for text from another process. Keys that could reach an object's prototype when the
 * value is later copied or merged (`__proto__`, `constructor`, `prototype`) are dropped at the door.
 */
export function parseUntrustedJson(text: string): unknown {
  return JSON.parse(text, (key, value: unknown) => (key === '__proto__' || key === 'constructor' || key === 'prototype' ? undefined : value));
}
