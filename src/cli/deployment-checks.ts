/**
 * Checks of the deployment that both `check` (as OK/WARN/FAIL lines) and `run` (as log lines at start)
 * make: whether XSOAR has the incident type every create names, and what the very first start will do.
 */
import type { Config } from '../config/load-config.js';
import { formatDuration } from '../config/duration.js';
import { ForwarderError } from '../infra/errors.js';
import { withTimeout } from '../infra/timeout.js';
import type { XsoarClient } from '../xsoar/xsoar-client.js';

export interface CheckLine {
  level: 'ok' | 'fail' | 'warn';
  name: string;
  detail: string;
  /** The warning is XSOAR refusing our credentials (or its certificate): said elsewhere already at run time. */
  credentialsRefused?: boolean;
}

/** Names and ids of XSOAR's incident types, as `GET /incidenttype` lists them. */
function typeNames(types: unknown): string[] {
  if (!Array.isArray(types)) return [];
  return types
    .flatMap((t) => (t && typeof t === 'object' ? [(t as { name?: unknown }).name, (t as { id?: unknown }).id] : []))
    .filter((n): n is string => typeof n === 'string');
}

/**
 * XSOAR_INCIDENT_TYPE against the server's incident types. A missing type fails: XSOAR would accept every
 * create and file it Unclassified, without the layout or the playbook. A key that may not list the types
 * only warns (the type may well be there).
 */
export async function checkIncidentType(xsoar: Pick<XsoarClient, 'probe'>, config: Config, timeoutMs: number): Promise<CheckLine> {
  const type = config.xsoar.incidentType;
  let types: unknown;
  try {
    types = await withTimeout(xsoar.probe('incidenttypes'), timeoutMs, `XSOAR incident types: no answer within ${timeoutMs / 1000} s`);
  } catch (err) {
    const refused = err instanceof ForwarderError && err.facts.nature === 'credentials';
    return { level: 'warn', name: 'xsoar incident type', detail: `could not list incident types to check "${type}": ${(err as Error).message}`, ...(refused ? { credentialsRefused: true } : {}) };
  }
  const names = typeNames(types);
  if (names.includes(type)) return { level: 'ok', name: 'xsoar incident type', detail: `${type} exists` };
  const near = names.find((n) => n.toLowerCase() === type.toLowerCase());
  return {
    level: 'fail',
    name: 'xsoar incident type',
    detail:
      `XSOAR has no incident type "${type}" (XSOAR_INCIDENT_TYPE)${near ? `; it has "${near}" (the name is case-sensitive)` : ''}: ` +
      'every incident would be created Unclassified, without the Code42 layout and playbook. Install the Code42 content pack or fix the setting',
  };
}

/**
 * What the first start of a deployment (no checkpoint in Redis yet) will do: forward every session since
 * FIRST_FETCH at once, each starting the incident type's playbook when XSOAR_CREATE_INVESTIGATION is on.
 * `matching` is how many sessions one page of the filter showed (undefined when not known).
 */
export function firstStartNotice(config: Config, matching: number | undefined): CheckLine | undefined {
  const window = formatDuration(config.poll.firstFetch);
  const count = matching === undefined ? 'every session' : `${matching} session(s)`;
  if (!config.xsoar.createInvestigation) {
    return { level: 'ok', name: 'first start', detail: `the first run will forward ${count} since FIRST_FETCH (${window}); no playbook runs (XSOAR_CREATE_INVESTIGATION=false)` };
  }
  const playbook = config.xsoar.playbookId ? `playbook ${config.xsoar.playbookId}` : "the incident type's playbook (stock pack: e-mail, Jira and EDR steps)";
  return {
    level: 'warn',
    name: 'first start',
    detail:
      `the first run will forward ${count} since FIRST_FETCH (${window}) and start ${playbook} on each (XSOAR_CREATE_INVESTIGATION=true). ` +
      'To begin quietly, set FIRST_FETCH=1h for the first start, or XSOAR_CREATE_INVESTIGATION=false, or XSOAR_PLAYBOOK_ID to a playbook agreed with the XSOAR admin',
  };
}
