/**
 * A small matcher for the subset of the XSOAR incident query language that the simulator understands.
 *
 * Supported syntax (keywords are case-insensitive, field names too):
 *   field:value            unquoted value, `*` is a wildcard (`name:*laptop*`)
 *   field:"quoted value"   quoted value, backslash escapes `\"` and `\\`
 *   field:>=value          comparison on numbers and dates (also `>`, `<`, `<=`)
 *   "free text"            bare quoted (or unquoted) word: substring of name, a label value, or rawJSON
 *   a and b, a or b        `and` binds tighter than `or`; adjacent terms are joined with `and`
 *   not a, -a              negation
 *   ( ... )                grouping
 *
 * Fields: id, name, type, rawType, details, status, severity, created, modified, occurred, dbotMirrorId (only when
 * stored), sourceBrand, sourceInstance, owner, playbookId, investigationId, labels.type, labels.value,
 * labels.<labelType>, <labelType> (a label of that type exists with that value), and custom fields by cliName.
 * Unsearchable custom fields (code42alertid, code42alertstate by default) match nothing.
 */

export interface SearchableLabel {
  type: string;
  value: string;
}

/** The incident shape the matcher reads. */
export interface SearchableIncident {
  id: string;
  name: string;
  type: string;
  rawType?: string;
  status: number;
  severity: number;
  created: string;
  modified: string;
  occurred: string;
  dbotMirrorId?: string;
  labels: SearchableLabel[];
  CustomFields: Record<string, unknown>;
  rawJSON: string;
  details?: string;
  sourceBrand?: string;
  sourceInstance?: string;
  owner?: string;
  playbookId?: string;
  investigationId?: string;
}

export type CompareOp = ':' | '>' | '>=' | '<' | '<=';

export type QueryNode =
  | { kind: 'all' }
  | { kind: 'and'; left: QueryNode; right: QueryNode }
  | { kind: 'or'; left: QueryNode; right: QueryNode }
  | { kind: 'not'; operand: QueryNode }
  | { kind: 'term'; field: string | null; op: CompareOp; value: string; quoted: boolean };

/** Custom fields that the stock Code42 pack defines with `unsearchable: true`. */
export const DEFAULT_UNSEARCHABLE_FIELDS: readonly string[] = ['code42alertid', 'code42alertstate'];

export class QuerySyntaxError extends Error {
  readonly code = 'QUERY_SYNTAX';
  constructor(message: string, readonly query: string, readonly position: number) {
    super(`${message} at position ${position} in query ${JSON.stringify(query)}`);
    this.name = 'QuerySyntaxError';
  }
}

type Token =
  | { t: 'lparen'; pos: number }
  | { t: 'rparen'; pos: number }
  | { t: 'and'; pos: number }
  | { t: 'or'; pos: number }
  | { t: 'not'; pos: number }
  | { t: 'term'; pos: number; field: string | null; op: CompareOp; value: string; quoted: boolean };

function isSpace(ch: string | undefined): boolean {
  return ch !== undefined && /\s/.test(ch);
}

function readQuoted(q: string, start: number): { value: string; end: number } {
  // q[start] === '"'
  let i = start + 1;
  let out = '';
  while (i < q.length) {
    const ch = q[i];
    if (ch === '\\' && i + 1 < q.length) {
      out += q[i + 1];
      i += 2;
      continue;
    }
    if (ch === '"') return { value: out, end: i + 1 };
    out += ch;
    i += 1;
  }
  throw new QuerySyntaxError('unterminated quoted string', q, start);
}

function tokenize(q: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < q.length) {
    const ch = q[i];
    if (isSpace(ch)) {
      i += 1;
      continue;
    }
    if (ch === '(') {
      tokens.push({ t: 'lparen', pos: i });
      i += 1;
      continue;
    }
    if (ch === ')') {
      tokens.push({ t: 'rparen', pos: i });
      i += 1;
      continue;
    }
    if (ch === '-' && i + 1 < q.length && !isSpace(q[i + 1])) {
      tokens.push({ t: 'not', pos: i });
      i += 1;
      continue;
    }
    if (ch === '"') {
      const { value, end } = readQuoted(q, i);
      tokens.push({ t: 'term', pos: i, field: null, op: ':', value, quoted: true });
      i = end;
      continue;
    }
    // A word: either a keyword, a bare free-text word, or `field:value`.
    const start = i;
    while (i < q.length && !isSpace(q[i]) && q[i] !== '(' && q[i] !== ')' && q[i] !== ':' && q[i] !== '"') i += 1;
    const word = q.slice(start, i);
    if (q[i] === ':') {
      if (word === '') throw new QuerySyntaxError('missing field name before ":"', q, start);
      i += 1;
      let op: CompareOp = ':';
      if (q.startsWith('>=', i)) {
        op = '>=';
        i += 2;
      } else if (q.startsWith('<=', i)) {
        op = '<=';
        i += 2;
      } else if (q[i] === '>') {
        op = '>';
        i += 1;
      } else if (q[i] === '<') {
        op = '<';
        i += 1;
      }
      if (q[i] === '"') {
        const { value, end } = readQuoted(q, i);
        tokens.push({ t: 'term', pos: start, field: word, op, value, quoted: true });
        i = end;
      } else {
        const vStart = i;
        while (i < q.length && !isSpace(q[i]) && q[i] !== '(' && q[i] !== ')') i += 1;
        const value = q.slice(vStart, i);
        if (value === '') throw new QuerySyntaxError(`missing value for field "${word}"`, q, start);
        tokens.push({ t: 'term', pos: start, field: word, op, value, quoted: false });
      }
      continue;
    }
    if (word === '') throw new QuerySyntaxError(`unexpected character ${JSON.stringify(q[i])}`, q, i);
    const lower = word.toLowerCase();
    if (lower === 'and' || word === '&&') tokens.push({ t: 'and', pos: start });
    else if (lower === 'or' || word === '||') tokens.push({ t: 'or', pos: start });
    else if (lower === 'not') tokens.push({ t: 'not', pos: start });
    else tokens.push({ t: 'term', pos: start, field: null, op: ':', value: word, quoted: false });
  }
  return tokens;
}

/** Parses a query; an empty or blank query matches every incident. Throws QuerySyntaxError. */
export function parseQuery(query: string): QueryNode {
  const tokens = tokenize(query);
  if (tokens.length === 0) return { kind: 'all' };
  let pos = 0;
  const peek = (): Token | undefined => tokens[pos];
  const where = (): number => peek()?.pos ?? query.length;

  const parseOr = (): QueryNode => {
    let left = parseAnd();
    while (peek()?.t === 'or') {
      pos += 1;
      left = { kind: 'or', left, right: parseAnd() };
    }
    return left;
  };
  const startsOperand = (tok: Token | undefined): boolean =>
    tok !== undefined && (tok.t === 'term' || tok.t === 'lparen' || tok.t === 'not');
  const parseAnd = (): QueryNode => {
    let left = parseUnary();
    for (;;) {
      const tok = peek();
      if (tok?.t === 'and') {
        pos += 1;
        left = { kind: 'and', left, right: parseUnary() };
      } else if (startsOperand(tok)) {
        left = { kind: 'and', left, right: parseUnary() };
      } else {
        return left;
      }
    }
  };
  const parseUnary = (): QueryNode => {
    const tok = peek();
    if (tok?.t === 'not') {
      pos += 1;
      return { kind: 'not', operand: parseUnary() };
    }
    return parsePrimary();
  };
  const parsePrimary = (): QueryNode => {
    const tok = peek();
    if (tok === undefined) throw new QuerySyntaxError('unexpected end of query', query, query.length);
    if (tok.t === 'lparen') {
      pos += 1;
      const inner = parseOr();
      if (peek()?.t !== 'rparen') throw new QuerySyntaxError('missing ")"', query, where());
      pos += 1;
      return inner;
    }
    if (tok.t === 'term') {
      pos += 1;
      return { kind: 'term', field: tok.field, op: tok.op, value: tok.value, quoted: tok.quoted };
    }
    throw new QuerySyntaxError(`unexpected "${tok.t}"`, query, tok.pos);
  };

  const node = parseOr();
  if (pos < tokens.length) throw new QuerySyntaxError('unexpected token', query, where());
  return node;
}

export interface MatchOptions {
  /** Custom field cliNames that are not searchable (queries on them match nothing). */
  unsearchable?: Iterable<string>;
  /**
   * Only fields a real server is known to index: system fields, custom fields, `labels.type` and `labels.value`.
   * A label type used as a field, `labels.<type>` and free text match nothing. @defaultValue false
   */
  strict?: boolean;
}

/** True when `incident` satisfies `node`. */
export function matchesQuery(node: QueryNode, incident: SearchableIncident, opts: MatchOptions = {}): boolean {
  const unsearchable = new Set([...(opts.unsearchable ?? DEFAULT_UNSEARCHABLE_FIELDS)].map((f) => f.toLowerCase()));
  const evaluate = (n: QueryNode): boolean => {
    switch (n.kind) {
      case 'all':
        return true;
      case 'and':
        return evaluate(n.left) && evaluate(n.right);
      case 'or':
        return evaluate(n.left) || evaluate(n.right);
      case 'not':
        return !evaluate(n.operand);
      case 'term':
        return matchTerm(n, incident, unsearchable, opts.strict ?? false);
    }
  };
  return evaluate(node);
}

/** Parses and matches in one go. */
export function queryMatches(query: string, incident: SearchableIncident, opts: MatchOptions = {}): boolean {
  return matchesQuery(parseQuery(query), incident, opts);
}

// ---------------------------------------------------------------------------------------------------------------

type TermNode = Extract<QueryNode, { kind: 'term' }>;

const STATUS_NAMES: Record<string, number> = {
  pending: 0,
  new: 0,
  active: 1,
  inprogress: 1,
  closed: 2,
  done: 2,
  archive: 3,
  archived: 3,
  acknowledged: 3,
};

const SEVERITY_NAMES: Record<string, number> = {
  unknown: 0,
  info: 0.5,
  informational: 0.5,
  low: 1,
  medium: 2,
  moderate: 2,
  high: 3,
  critical: 4,
};

function globToRegExp(glob: string): RegExp {
  const escaped = glob
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${escaped}$`, 'is');
}

/** Keyword semantics: whole-value, case-insensitive; `*` wildcards in unquoted values. */
function keywordMatches(actual: string, term: TermNode): boolean {
  if (!term.quoted && term.value.includes('*')) return globToRegExp(term.value).test(actual);
  return actual.toLowerCase() === term.value.toLowerCase();
}

function tokens(text: string): string[] {
  return text.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter((t) => t !== '');
}

/** Text semantics (name, details): the value's words appear consecutively in the field's words. */
function textMatches(actual: string, term: TermNode): boolean {
  if (!term.quoted && term.value.includes('*')) {
    const re = globToRegExp(term.value);
    return re.test(actual) || tokens(actual).some((t) => re.test(t));
  }
  const hay = tokens(actual);
  const needle = tokens(term.value);
  if (needle.length === 0) return actual.trim() === term.value.trim();
  for (let i = 0; i + needle.length <= hay.length; i += 1) {
    if (needle.every((w, j) => hay[i + j] === w)) return true;
  }
  return false;
}

function compareNumbers(actual: number, op: CompareOp, expected: number): boolean {
  switch (op) {
    case ':':
      return actual === expected;
    case '>':
      return actual > expected;
    case '>=':
      return actual >= expected;
    case '<':
      return actual < expected;
    case '<=':
      return actual <= expected;
  }
}

function parseNumberish(value: string, names: Record<string, number>): number | undefined {
  const named = names[value.toLowerCase()];
  if (named !== undefined) return named;
  if (value.trim() === '') return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}

function matchNumber(actual: number, term: TermNode, names: Record<string, number> = {}): boolean {
  const expected = parseNumberish(term.value, names);
  return expected !== undefined && compareNumbers(actual, term.op, expected);
}

function matchDate(actual: string, term: TermNode): boolean {
  const a = Date.parse(actual);
  const e = Date.parse(term.value);
  if (Number.isNaN(a) || Number.isNaN(e)) return false;
  return compareNumbers(a, term.op, e);
}

function matchString(actual: string | undefined, term: TermNode, text = false): boolean {
  if (actual === undefined) return false;
  if (term.op !== ':') return false;
  return text ? textMatches(actual, term) : keywordMatches(actual, term);
}

function matchScalar(actual: unknown, term: TermNode): boolean {
  if (actual === null || actual === undefined) return false;
  if (typeof actual === 'number') return matchNumber(actual, term);
  if (typeof actual === 'boolean') return term.op === ':' && term.value.toLowerCase() === String(actual);
  if (typeof actual === 'string') {
    if (term.op !== ':') return matchDate(actual, term);
    return keywordMatches(actual, term);
  }
  return false;
}

function matchCustomValue(actual: unknown, term: TermNode): boolean {
  if (Array.isArray(actual)) {
    return actual.some((item) => {
      if (item !== null && typeof item === 'object' && !Array.isArray(item)) {
        return Object.values(item as Record<string, unknown>).some((cell) => matchScalar(cell, term));
      }
      return matchScalar(item, term);
    });
  }
  return matchScalar(actual, term);
}

function freeText(incident: SearchableIncident, term: TermNode): boolean {
  const needle = term.value.replace(/\*/g, '').toLowerCase();
  if (needle === '') return true;
  const contains = (s: string | undefined): boolean => s !== undefined && s.toLowerCase().includes(needle);
  return contains(incident.name) || incident.labels.some((l) => contains(l.value)) || contains(incident.rawJSON);
}

function matchTerm(term: TermNode, incident: SearchableIncident, unsearchable: Set<string>, strict = false): boolean {
  if (term.field === null) return !strict && freeText(incident, term);
  const field = term.field.toLowerCase();
  switch (field) {
    case 'id':
    case 'numericid':
      if (term.op !== ':') return matchNumber(Number(incident.id), term);
      return keywordMatches(incident.id, term);
    case 'name':
      return matchString(incident.name, term, true);
    case 'details':
      return matchString(incident.details, term, true);
    case 'type':
      return matchString(incident.type, term);
    case 'rawtype':
      return matchString(incident.rawType ?? incident.type, term);
    case 'dbotmirrorid':
      return incident.dbotMirrorId !== undefined && incident.dbotMirrorId !== '' && matchString(incident.dbotMirrorId, term);
    case 'sourcebrand':
      return matchString(incident.sourceBrand, term);
    case 'sourceinstance':
      return matchString(incident.sourceInstance, term);
    case 'owner':
      return matchString(incident.owner, term);
    case 'playbookid':
      return matchString(incident.playbookId, term);
    case 'investigationid':
      return matchString(incident.investigationId, term);
    case 'status':
      return matchNumber(incident.status, term, STATUS_NAMES);
    case 'severity':
      return matchNumber(incident.severity, term, SEVERITY_NAMES);
    case 'created':
    case 'modified':
    case 'occurred':
      return matchDate(incident[field], term);
    case 'labels':
    case 'labels.value':
      return incident.labels.some((l) => matchString(l.value, term));
    case 'labels.type':
      return incident.labels.some((l) => matchString(l.type, term));
    default:
      break;
  }
  if (unsearchable.has(field)) return false;
  if (strict) {
    // Custom fields only; anything else is a field this server does not know.
    for (const [key, value] of Object.entries(incident.CustomFields)) {
      if (key.toLowerCase() === field && matchCustomValue(value, term)) return true;
    }
    return false;
  }
  if (field.startsWith('labels.')) {
    const labelType = field.slice('labels.'.length);
    return incident.labels.some((l) => l.type.toLowerCase() === labelType && matchString(l.value, term));
  }
  for (const [key, value] of Object.entries(incident.CustomFields)) {
    if (key.toLowerCase() === field && matchCustomValue(value, term)) return true;
  }
  return incident.labels.some((l) => l.type.toLowerCase() === field && matchString(l.value, term));
}
