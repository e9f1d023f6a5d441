export { IncydrClient, SESSIONS_PAGE_SIZE, type IncydrClientOptions, type SessionQuery, type SessionPage, type SessionEvents } from './incydr-client.js';
export { TokenProvider } from './token-provider.js';
export { RequestBudget, budgetWindow } from './request-budget.js';
export { Code42AuthError, Code42TlsError, Code42ResponseError, Code42RequestError } from './errors.js';
export {
  SessionSchema,
  parseOrThrow,
  latestState,
  currentSeverity,
  type Session,
  type FileEvent,
  type Actor,
  type Rule,
} from './schemas.js';
export * from './vocabulary.js';
