/** A JSON value as XSOAR stores it in a grid cell. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/**
 * A grid row of an incident field: lowercase alphanumeric column keys. The `code42fileevents` rows carry the
 * nested V2 event (objects kept) beside the flat V1 columns, as the stock mapper and playbook read them.
 */
export type GridRow = Record<string, JsonValue>;

/** The body of POST /incident as this daemon sends it (swagger `CreateIncidentRequest`). */
export interface IncidentRequest {
  name: string;
  type: string;
  /** XSOAR scale: 0 unknown, 0.5 info, 1 low, 2 medium, 3 high, 4 critical. */
  severity: number;
  /** RFC 3339. */
  occurred: string;
  details: string;
  /** The session and its enrichments, JSON-encoded as a string. */
  rawJSON: string;
  labels: Array<{ type: string; value: string }>;
  /** Keyed by field cliName. */
  CustomFields: Record<string, string | number | GridRow[]>;
  dbotMirrorId: string;
  /** Shown as the incident's source; the stock "Close Related" job finds Code42 incidents by it. */
  sourceBrand: string;
  createInvestigation: boolean;
  playbookId?: string;
}
