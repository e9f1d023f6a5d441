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

/**
 * Reads GET /v1/sessions/{id}/events as it arrives (`{"queryResult":{"fileEvents":[…],"totalCount":n,…}}`): the
 * first events are kept and validated, every further one is parsed, counted and dropped, so memory holds the kept
 * events and one event at a time whatever the size of the answer. Feed it chunks with `write`, then call `end`.
 */
export class EventsCollector {
  private readonly tokenizer = new Tokenizer();
  private readonly parser = new TokenParser({ paths: ['$.queryResult.fileEvents.*', '$.queryResult.totalCount'], keepStack: false });
  private readonly kept: FileEvent[] = [];
  private keptBytes = 0;
  private keeping = true;
  private counted = 0;
  private declaredTotal: number | null = null;
  private bytes = 0;
  private firstToken = true;
  private failure: Error | undefined;
  /** The answer's content type, for error messages (a proxy's page is not JSON). */
  contentType: string | undefined;

  constructor(
    private readonly keep: EventsKeep,
    private readonly what: string,
  ) {
    this.tokenizer.onToken = (token) => {
      if (this.firstToken) {
        this.firstToken = false;
        if (token.token !== TokenType.LEFT_BRACE) throw new Code42ResponseError(`${this.what}: the answer is not a JSON object${this.typeNote()}`, { field: '(root)' });
      }
      this.parser.write(token);
    };
    this.tokenizer.onError = (err) => this.fail(err);
    this.parser.onError = (err) => this.fail(err);
    this.parser.onValue = ({ value, key, parent }) => this.take(value, key, parent);
    // The tokenizer ends the parser at the end of the document; nothing else to do then.
    this.tokenizer.onEnd = () => undefined;
  }

  /** Bytes read so far. */
  get bytesRead(): number {
    return this.bytes;
  }

  write(chunk: Uint8Array): void {
    this.bytes += chunk.byteLength;
    this.tokenizer.write(chunk);
    if (this.failure) throw this.failure;
  }

  /**
   * What was read. `complete` false: the answer was cut short on purpose (over the size cap); what was counted so
   * far is returned without checking that the document closed.
   */
  end(complete = true): StreamedEvents {
    if (complete) {
      if (this.firstToken) throw new Code42ResponseError(`${this.what}: the answer is empty`, { field: '(root)' });
      if (!this.parser.isEnded) throw new Code42ResponseError(`${this.what}: the answer ends in the middle of the JSON document`, { field: '(root)' });
    }
    return { events: this.kept, counted: this.counted, declaredTotal: this.declaredTotal, bytes: this.bytes };
  }

  private fail(err: Error): void {
    this.failure ??= err instanceof Code42ResponseError ? err : new Code42ResponseError(`${this.what}: the answer is not JSON${this.typeNote()} (${err.message})`, { cause: err });
  }

  private typeNote(): string {
    return ` (content-type ${this.contentType ?? 'none'})`;
  }

  private take(value: unknown, key: unknown, parent: unknown): void {
    if (key === 'totalCount') {
      if (value === null) return;
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
        throw new Code42ResponseError(`${this.what}: field queryResult.totalCount: expected a non-negative integer`, { field: 'queryResult.totalCount' });
      }
      this.declaredTotal = value;
      return;
    }
    if (!Array.isArray(parent)) {
      throw new Code42ResponseError(`${this.what}: field queryResult.fileEvents: expected an array`, { field: 'queryResult.fileEvents' });
    }
    const index = this.counted;
    this.counted += 1;
    if (!this.keeping) return;
    if (this.kept.length >= this.keep.maxEvents) {
      this.keeping = false;
      return;
    }
    const field = `queryResult.fileEvents[${index}]`;
    const forbidden = forbiddenKeyIn(value, field);
    if (forbidden) throw new Code42ResponseError(`${this.what}: field ${forbidden}: forbidden key (possible prototype pollution)`, { field: forbidden });
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
