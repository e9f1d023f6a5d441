/** What the HTTP clients report about every request they make (metrics listen to this). */
export interface RequestRecord {
  upstream: 'code42' | 'xsoar';
  /** A short, bounded name such as `sessions.list` or `incident.create`; never an id. */
  endpoint: string;
  /** HTTP status, or `error` when no response arrived (timeout, reset, refused). */
  status: number | 'error';
  durationMs: number;
}

export type RequestObserver = (record: RequestRecord) => void;
