import { Tokenizer, TokenParser, TokenType } from '@streamparser/json';
import { Code42ResponseError } from './errors.js';
import { FileEventSchema, parseOrThrow, type FileEvent } from './schemas.js';

/** How much of a session's file events to keep while the answer streams past. */
export interface EventsKeep {
  /** Most events kept (MAX_FILE_EVENTS); the rest are only counted. */
  maxEvents: number;
  /**
   * Most bytes of JSON kept: an event travels in the create body at least once as its own JSON, so events past
   * the body budget could never be shown. @defaultValue no limit
   */
  maxBytes?: number;
}

/** What a streamed events answer yielded. */
export interface StreamedEvents {
  /** The first events of the answer, validated, at most `maxEvents`. */
  events: FileEvent[];
  /** Events in the answer (read and counted, kept or not). */
  counted: number;
  /** The answer's own `totalCount`, when it had one. */
  declaredTotal: number | null;
  /** Bytes of the answer read. */
  bytes: number;
}

/** Keys that could reach an object's prototype when the value is later copied or merged. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function forbiddenKeyIn(value: unknown, path: string): string | null {
  if (!value || typeof value !== 'object') return null;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = forbiddenKeyIn(value[i], `${path}[${i}]`);
      if (found) return found;
    }
    return null;
  }
  // The parser defines "__proto__" as an own key (it never reaches the prototype); it is still refused.
  for (const key of Object.getOwnPropertyNames(value)) {
    if (FORBIDDEN_KEYS.has(key)) return `${path}.${key}`;
    const found = forbiddenKeyIn((value as Record<string, unknown>)[key], `${path}.${key}`);
    if (found) return found;
  }
  return null;
}

interface Frame {
  kind: 'object' | 'array';
  /** The key whose value comes next or is being read (objects). */
  key: string | undefined;
  /** An object waits for a key (after `{` or `,`). */
  expectKey: boolean;
}

const VALUE_START = new Set<TokenType>([TokenType.LEFT_BRACE, TokenType.LEFT_BRACKET, TokenType.STRING, TokenType.NUMBER, TokenType.TRUE, TokenType.FALSE, TokenType.NULL]);

/**
 * Reads GET /v1/sessions/{id}/events as it arrives (`{"queryResult":{"fileEvents":[…],"totalCount":n,…}}`): the
 * tokens are followed with a small stack of containers; the first events are built (a TokenParser each), checked
 * and kept, every further one is only counted as its tokens pass, so memory holds the kept events whatever the
 * size of the answer, and no object is built for an event that is not kept. Feed it chunks with `write`, then
 * call `end`.
 */
export class EventsCollector {
  // Strings gathered in a byte buffer rather than by concatenation (the library's advice for large input).
  private readonly tokenizer = new Tokenizer({ stringBufferSize: 64 * 1024 });
  private readonly frames: Frame[] = [];
  private readonly kept: FileEvent[] = [];
  private keptBytes = 0;
  private keeping = true;
  /** Builds the event being kept, while its tokens pass. */
  private event: TokenParser | undefined;
  private counted = 0;
  private declaredTotal: number | null = null;
  private bytes = 0;
  private started = false;
  private done = false;
  private failure: Error | undefined;
  /** The answer's content type, for error messages (a proxy's page is not JSON). */
  contentType: string | undefined;

  constructor(
    private readonly keep: EventsKeep,
    private readonly what: string,
  ) {
    this.tokenizer.onToken = ({ token, value }) => this.onToken(token, value);
    this.tokenizer.onError = (err) => this.fail(err);
  }

  /** Bytes read so far. */
  get bytesRead(): number {
    return this.bytes;
  }

  write(chunk: Uint8Array): void {
    if (this.failure) throw this.failure;
    this.bytes += chunk.byteLength;
    this.tokenizer.write(chunk);
    if (this.failure) throw this.failure;
  }

  /**
   * What was read. `complete` false: the answer was cut short on purpose (over the size cap); what was counted so
   * far is returned without checking that the document closed.
   */
  end(complete = true): StreamedEvents {
    if (this.failure) throw this.failure;
    if (complete) {
      if (!this.started) throw new Code42ResponseError(`${this.what}: the answer is empty`, { field: '(root)' });
      if (!this.done) throw new Code42ResponseError(`${this.what}: the answer ends in the middle of the JSON document`, { field: '(root)' });
    }
    return { events: this.kept, counted: this.counted, declaredTotal: this.declaredTotal, bytes: this.bytes };
  }

  private fail(err: Error): void {
    this.failure ??= err instanceof Code42ResponseError ? err : new Code42ResponseError(`${this.what}: the answer is not JSON${this.typeNote()} (${err.message})`, { cause: err });
  }

  private typeNote(): string {
    return ` (content-type ${this.contentType ?? 'none'})`;
  }

  private refuse(message: string, field: string): never {
    throw new Code42ResponseError(`${this.what}: ${message}`, { field });
  }

  private onToken(token: TokenType, value: unknown): void {
    if (this.done) this.refuse(`more data after the JSON document${this.typeNote()}`, '(root)');
    if (!this.started) {
      this.started = true;
      if (token !== TokenType.LEFT_BRACE) this.refuse(`the answer is not a JSON object${this.typeNote()}`, '(root)');
    }
    const top = this.frames[this.frames.length - 1];
    // An object's key: remember it, it names the value that follows.
    if (top?.kind === 'object' && top.expectKey && token === TokenType.STRING) {
      top.key = value as string;
      top.expectKey = false;
      this.event?.write({ token, value: value as string });
      return;
    }
    if (VALUE_START.has(token)) this.valueStarts(token, value);
    if (this.event) {
      this.event.write({ token, value: value as never });
      if (this.event.isEnded) this.event = undefined;
    }
    switch (token) {
      case TokenType.LEFT_BRACE:
        this.frames.push({ kind: 'object', key: undefined, expectKey: true });
        break;
      case TokenType.LEFT_BRACKET:
        this.frames.push({ kind: 'array', key: undefined, expectKey: false });
        break;
      case TokenType.RIGHT_BRACE:
      case TokenType.RIGHT_BRACKET:
        this.frames.pop();
        if (this.frames.length === 0) this.done = true;
        break;
      case TokenType.COMMA:
        if (top?.kind === 'object') top.expectKey = true;
        break;
      default:
        break;
    }
  }

  /** A value begins at the current position: an event, the total, or anything else (passed over). */
  private valueStarts(token: TokenType, value: unknown): void {
    const depth = this.frames.length;
    const [root, result, list] = this.frames;
    if (depth === 2 && root?.key === 'queryResult' && result?.kind === 'object') {
      if (result.key === 'totalCount') {
        if (token === TokenType.NULL) return;
        if (token !== TokenType.NUMBER || !Number.isInteger(value) || (value as number) < 0) {
          this.refuse('field queryResult.totalCount: expected a non-negative integer', 'queryResult.totalCount');
        }
        this.declaredTotal = value as number;
      } else if (result.key === 'fileEvents' && token !== TokenType.LEFT_BRACKET && token !== TokenType.NULL) {
        this.refuse('field queryResult.fileEvents: expected an array', 'queryResult.fileEvents');
      }
      return;
    }
    if (depth !== 3 || root?.key !== 'queryResult' || result?.kind !== 'object' || result.key !== 'fileEvents' || list?.kind !== 'array') return;
    const index = this.counted;
    this.counted += 1;
    if (!this.keeping) return;
    if (this.kept.length >= this.keep.maxEvents) {
      this.keeping = false;
      return;
    }
    const parser = new TokenParser({ paths: ['$'] });
    parser.onValue = ({ value: event }) => this.take(event, index);
    this.event = parser;
  }

  private take(value: unknown, index: number): void {
    const field = `queryResult.fileEvents[${index}]`;
    const forbidden = forbiddenKeyIn(value, field);
    if (forbidden) this.refuse(`field ${forbidden}: forbidden key (possible prototype pollution)`, forbidden);
    if (this.keep.maxBytes !== undefined) {
      this.keptBytes += JSON.stringify(value).length;
      if (this.keptBytes > this.keep.maxBytes) {
        this.keeping = false;
        return;
      }
    }
    this.kept.push(parseOrThrow(FileEventSchema, value, `${this.what}: ${field}`));
  }
}
