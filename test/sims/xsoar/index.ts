export { XsoarSimulator, normalizeRfc3339 } from './xsoar-simulator.js';
export { CreateHold } from './create-hold.js';
export type {
  CreateIncidentBody,
  StoredIncident,
  XsoarFaults,
  XsoarLabel,
  XsoarRequestRecord,
  XsoarSimulatorOptions,
  XsoarStats,
  XsoarWriteEndpoint,
} from './xsoar-simulator.js';
export {
  DEFAULT_UNSEARCHABLE_FIELDS,
  QuerySyntaxError,
  matchesQuery,
  parseQuery,
  queryMatches,
} from './query.js';
export type { CompareOp, MatchOptions, QueryNode, SearchableIncident, SearchableLabel } from './query.js';
export { IncidentLifecycle, type LifecycleModes, type WarRoomEntry } from './lifecycle.js';
