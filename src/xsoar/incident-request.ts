/** A grid row of an incident field: lowercase alphanumeric column keys, scalar cells. */
export type GridRow = Record<string, string | number | boolean>;

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
  createInvestigation: boolean;
  playbookId?: string;
}
