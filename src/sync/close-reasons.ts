/**
 * How a close on one side is said on the other. Both maps are configuration
 * (STATE_SYNC_CLOSE_REASONS, STATE_SYNC_CLOSE_STATES); these functions only apply them.
 */

/** Incydr states that mean "closed". */
export function isClosedState(state: string): boolean {
  return state.startsWith('CLOSED');
}

/** XSOAR close reason → Incydr state: the reason's entry (case-insensitive), else `*`, else CLOSED. */
export function stateForCloseReason(reason: string, map: Readonly<Record<string, string>>): string {
  const wanted = reason.trim().toLowerCase();
  for (const [k, v] of Object.entries(map)) if (k !== '*' && k.trim().toLowerCase() === wanted) return v;
  return map['*'] ?? 'CLOSED';
}

/** Incydr closed state → XSOAR close reason; "Other" for a closed state the map does not name. */
export function closeReasonForState(state: string, map: Readonly<Record<string, string>>): string {
  return map[state] ?? 'Other';
}
