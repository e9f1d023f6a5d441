/**
 * Wire types of the Code42 Incydr gateway as the simulator serves them, and a seeded generator of whole tenants
 * (actors, alert rules, sessions with alerts, and the v2 file events behind each session).
 *
 * Shapes follow the public fixtures: session = demisto/content session_response.json plus the newer incydr fields
 * (`actorName`, `type`, `triggeredAlerts[].ruleName`, `states[].stateV2`); file event = incydr TEST_EVENT_1.
 * Everything drawn here comes from mulberry32, so the same options give the same tenant byte for byte.
 */
import { mulberry32 } from '../http-kit.js';
import { SESSION_SHAPES, millisecondEventTimes, type SessionShape } from './shapes.js';

// ---------------------------------------------------------------------------------------------------------------
// Vocabulary

export const SESSION_STATES = [
  'OPEN',
  'IN_PROGRESS',
  'CLOSED',
  'CLOSED_TP',
  'CLOSED_TP_BENIGN',
  'CLOSED_FP',
  'OPEN_NEW_DATA',
] as const;

/** Session state as the Sessions API spells it (`state` query values and `states[].state`). */
export type State = (typeof SESSION_STATES)[number];
export type SessionState = State;

/** v2 file event `risk.severity` names, indexed by the session severity integer 0..4. */
export const RISK_SEVERITY_NAMES = ['NO_RISK_INDICATED', 'LOW', 'MODERATE', 'HIGH', 'CRITICAL'] as const;
export type RiskSeverityName = (typeof RISK_SEVERITY_NAMES)[number];

// ---------------------------------------------------------------------------------------------------------------
// Wire types

export interface WireNote {
  id: string;
  content: string;
  sourceTimestamp: number;
  userId: string | null;
}

export interface WireRiskIndicator {
  id: string;
  name: string;
  weight: number;
  eventCount: number;
}

export interface WireScore {
  score: number;
  /** 0 no risk, 1 low, 2 moderate, 3 high, 4 critical. */
  severity: number;
  sourceTimestamp: number;
}

export interface WireStateEntry {
  // `string & {}` keeps completion for the known states while tolerating values the API may add later.
  state: State | (string & {});
  stateV2?: State | (string & {});
  sourceTimestamp: number;
  userId: string | null;
}

export interface WireTriggeredAlert {
  alertId: string;
  ruleId: string;
  lessonId: string | null;
  /** Present on newer tenants only. */
  ruleName?: string;
}

/** One element of `items[]` of `GET /v1/sessions`, or the body of `GET /v1/sessions/{id}`. Times are epoch ms. */
export interface WireSession {
  sessionId: string;
  tenantId: string;
  actorId: string;
  /** Present on newer tenants only. */
  actorName?: string;
  beginTime: number;
  endTime: number;
  firstObserved: number;
  lastUpdated: number;
  noRiskEvents: number;
  lowEvents: number;
  moderateEvents: number;
  highEvents: number;
  criticalEvents: number;
  notes: WireNote[];
  riskIndicators: WireRiskIndicator[];
  /** History; the session severity is the MAX of these, the latest entry may be lower. */
  scores: WireScore[];
  triggeredAlerts: WireTriggeredAlert[];
  /** History; the current state is the entry with the latest sourceTimestamp. */
  states: WireStateEntry[];
  exfiltrationSummary: string;
  contextSummary: string;
  contentInspectionResults: { detectedOnAlerts: string[] } | null;
  type: string;
  userId: string;
}

/** What `Code42Simulator.addSession` accepts: any part of a wire session; the simulator fills the rest. */
export type SessionInput = Partial<WireSession>;

export interface FileEventRemovableMedia {
  vendor: string | null;
  name: string | null;
  serialNumber: string | null;
  capacity: number | null;
  busType: string | null;
  mediaName: string | null;
  volumeName: string[];
  partitionId: string[];
  [key: string]: unknown;
}

export interface FileEventTab {
  title: string | null;
  url: string | null;
  titleError?: string | null;
  urlError?: string | null;
  [key: string]: unknown;
}

/** A v2 file event (`fileEvents[]` element). Typed for the fields the project reads; tolerant of everything else. */
export interface FileEventV2 {
  '@timestamp': string;
  event: {
    id: string;
    inserted: string;
    ingested?: string;
    action: string;
    observer: string;
    shareType: string[];
    vector?: string | null;
    detectorDisplayName?: string | null;
    relatedEvents?: unknown[];
    [key: string]: unknown;
  };
  user: {
    email: string;
    id: string;
    deviceUid: string | null;
    [key: string]: unknown;
  };
  file: {
    name: string;
    directory: string | null;
    category: string;
    mimeTypeByBytes?: string | null;
    categoryByBytes?: string | null;
    mimeTypeByExtension?: string | null;
    categoryByExtension?: string | null;
    sizeInBytes: number;
    owner: string | null;
    created: string | null;
    modified: string | null;
    hash: {
      md5: string | null;
      sha256: string | null;
      md5Error?: string | null;
      sha256Error?: string | null;
      [key: string]: unknown;
    };
    id: string | null;
    url: string | null;
    directoryId?: string[];
    cloudDriveId?: string | null;
    classifications?: unknown[];
    [key: string]: unknown;
  };
  report?: Record<string, unknown>;
  source: {
    category: string | null;
    name: string | null;
    domain?: string | null;
    ip?: string | null;
    privateIp?: string[];
    operatingSystem?: string | null;
    email?: { sender: string | null; from: string | null; [key: string]: unknown };
    removableMedia?: FileEventRemovableMedia;
    tabs?: FileEventTab[];
    domains?: string[];
    user?: { email: string[]; [key: string]: unknown };
    [key: string]: unknown;
  };
  destination: {
    category: string | null;
    name: string | null;
    user?: { email: string[]; [key: string]: unknown };
    ip?: string | null;
    privateIp?: string[];
    operatingSystem?: string | null;
    printJobName?: string | null;
    printerName?: string | null;
    printedFilesBackupPath?: string | null;
    removableMedia?: FileEventRemovableMedia;
    email?: { recipients: string[] | null; subject: string | null; [key: string]: unknown };
    tabs?: FileEventTab[];
    accountName?: string | null;
    accountType?: string | null;
    domains?: string[];
    [key: string]: unknown;
  };
  process: { executable: string | null; owner: string | null; [key: string]: unknown };
  risk: {
    score: number;
    severity: RiskSeverityName | (string & {});
    indicators: Array<{ name: string; weight: number; id?: string; [key: string]: unknown }>;
    trusted: boolean;
    trustReason: string | null;
    untrustedValues?: Record<string, string[]>;
    [key: string]: unknown;
  };
  git?: Record<string, unknown>;
  [key: string]: unknown;
}

/** `GET /v1/actors/actor/id/{id}`. */
export interface WireActor {
  active: boolean;
  actorId: string;
  alternateNames: string[];
  country: string | null;
  department: string | null;
  division: string | null;
  employeeType: string | null;
  endDate: string | null;
  firstName: string | null;
  inScope: boolean;
  lastName: string | null;
  locality: string | null;
  managerActorId: string | null;
  /** The actor's primary username, an e-mail address. */
  name: string;
  notes: string | null;
  parentActorId: string | null;
  region: string | null;
  startDate: string | null;
  title: string | null;
}

/** `GET /v2/alert-rules/{id}`. */
export interface WireRule {
  id: string;
  name: string;
  description: string;
  severity: string;
  isEnabled: boolean;
  source: string;
  notifications: Record<string, unknown>;
  vectors: Record<string, unknown>;
  filters: Record<string, unknown>;
  createdAt: string;
  createdBy: string;
  modifiedAt: string;
  modifiedBy: string;
  isSystemRule: boolean;
}

export interface GeneratedTenant {
  actors: WireActor[];
  /** Live rules only (what `GET /v2/alert-rules/{id}` finds). */
  rules: WireRule[];
  /** Rules referenced by sessions' triggeredAlerts that no longer exist (404). Not in `rules`. */
  deletedRuleIds: string[];
  /** `shapes`: how the API serves that session (see shapes.ts); `session` and `events` stay tidy. */
  sessions: Array<{ session: WireSession; events: FileEventV2[]; visibleAt?: number; shapes?: SessionShape[] }>;
}

export interface TenantOptions {
  /** How many sessions. */
  sessions: number;
  /** @defaultValue 1 */
  seed?: number;
  /** Actor pool size. @defaultValue 25 */
  actors?: number;
  /** Rules in total, deleted ones included. @defaultValue 8 */
  rules?: number;
  /** How many of `rules` are referenced by sessions but deleted (answer 404). @defaultValue 0 */
  deletedRules?: number;
  /** Put `actorName` on sessions and `ruleName` on triggeredAlerts (newer tenants). @defaultValue false */
  withNames?: boolean;
  /** beginTime range, epoch ms. @defaultValue the 6 hours before Date.now() */
  beginFrom?: number;
  beginTo?: number;
  /** Weights of the session's max severity 0..4. @defaultValue [0, 25, 30, 30, 15] */
  severityWeights?: [number, number, number, number, number];
  /** Weights of the session's current state. @defaultValue mostly OPEN, some OPEN_NEW_DATA, IN_PROGRESS, CLOSED_TP */
  stateWeights?: Partial<Record<State, number>>;
  /** Number of file events behind session `index`. @defaultValue 0..5 */
  eventsPerSession?: (index: number, rnd: () => number) => number;
  /** Triggered alerts per session, each with its own rule. @defaultValue [1, 2] */
  alertsPerSession?: [min: number, max: number];
  /** Fraction of sessions indexed late: they get `visibleAt = beginTime + lateByMs`. @defaultValue 0 */
  lateFraction?: number;
  /** @defaultValue 600_000 (10 minutes) */
  lateByMs?: number;
  /** sessionId prefix. @defaultValue 'sess' */
  idPrefix?: string;
  /** tenantId written on sessions. @defaultValue 'sim-tenant-0001' (the simulator's default) */
  tenantId?: string;
  /**
   * Fraction of sessions served in one of the tolerated shapes of shapes.ts (stateV2 only, a null state time,
   * equal state times, a null ruleId, a numeric-string beginTime, epoch-ms event times). None of them changes
   * the incident the session must become. @defaultValue 0.1
   */
  toleratedShapes?: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Seeded helpers

type Rnd = () => number;

function int(rnd: Rnd, min: number, max: number): number {
  return min + Math.floor(rnd() * (max - min + 1));
}

function pick<T>(rnd: Rnd, list: readonly T[]): T {
  const value = list[Math.floor(rnd() * list.length)];
  if (value === undefined) throw new Error('pick from an empty list');
  return value;
}

function hex(rnd: Rnd, length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += Math.floor(rnd() * 16).toString(16);
  return out;
}

function digits(rnd: Rnd, length: number): string {
  let out = String(int(rnd, 1, 9));
  for (let i = 1; i < length; i++) out += String(Math.floor(rnd() * 10));
  return out;
}

function uuid(rnd: Rnd): string {
  return `${hex(rnd, 8)}-${hex(rnd, 4)}-4${hex(rnd, 3)}-${pick(rnd, ['8', '9', 'a', 'b'])}${hex(rnd, 3)}-${hex(rnd, 12)}`;
}

function weighted<T>(rnd: Rnd, entries: ReadonlyArray<readonly [T, number]>): T {
  const total = entries.reduce((sum, [, w]) => sum + Math.max(0, w), 0);
  if (!(total > 0)) throw new Error('weights must contain a positive value');
  let x = rnd() * total;
  for (const [value, w] of entries) {
    if (w <= 0) continue;
    x -= w;
    if (x < 0) return value;
  }
  // Floating point leftovers: the last positive entry.
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = entries[i];
    if (entry && entry[1] > 0) return entry[0];
  }
  throw new Error('unreachable');
}

/** A child PRNG whose seed is drawn from `rnd`, so sub-streams stay stable when sibling options change. */
function fork(rnd: Rnd): Rnd {
  return mulberry32(Math.floor(rnd() * 4294967296));
}

/** ISO time with microseconds, like the gateway's `createdAt`/`event.inserted` values. */
function isoMicros(rnd: Rnd, ms: number): string {
  return new Date(ms).toISOString().replace('Z', `${String(int(rnd, 0, 999)).padStart(3, '0')}Z`);
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function isoDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** Score ranges per severity level (Incydr: low 1-3, moderate 4-6, high 7-9, critical 10+). */
function scoreFor(rnd: Rnd, severity: number): number {
  switch (severity) {
    case 0:
      return 0;
    case 1:
      return int(rnd, 1, 3);
    case 2:
      return int(rnd, 4, 6);
    case 3:
      return int(rnd, 7, 9);
    default:
      return int(rnd, 10, 20);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// File events

interface FileKind {
  category: string;
  word: string; // as it appears in exfiltrationSummary
  names: readonly string[];
  ext: readonly string[];
  mime: string;
  indicator: string;
}

const FILE_KINDS: readonly FileKind[] = [
  {
    category: 'Document',
    word: 'document',
    names: ['Q3 board update', 'customer contract', 'roadmap 2025', 'offer letter', 'security policy'],
    ext: ['docx'],
    mime: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
    indicator: 'Document',
  },
  {
    category: 'Spreadsheet',
    word: 'spreadsheet',
    names: ['pipeline forecast', 'salary bands', 'customer list', 'budget FY25', 'pricing model'],
    ext: ['xlsx', 'csv'],
    mime: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
    indicator: 'Spreadsheet',
  },
  {
    category: 'Presentation',
    word: 'presentation',
    names: ['investor deck', 'product strategy', 'sales kickoff', 'architecture review'],
    ext: ['pptx'],
    mime: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
    indicator: 'Presentation',
  },
  {
    category: 'SourceCode',
    word: 'source code',
    names: ['billing_service', 'auth_client', 'ranking_model', 'ingest_worker', 'pricing_engine'],
    ext: ['py', 'ts', 'java', 'go'],
    mime: 'text/plain',
    indicator: 'Source code',
  },
  {
    category: 'Archive',
    word: 'archive',
    names: ['project-backup', 'exports', 'designs-final', 'customer-data'],
    ext: ['zip', '7z'],
    mime: 'application/zip',
    indicator: 'Zip',
  },
  {
    category: 'Pdf',
    word: 'PDF',
    names: ['signed NDA', 'patent draft', 'audit report', 'due diligence'],
    ext: ['pdf'],
    mime: 'application/pdf',
    indicator: 'PDF',
  },
  {
    category: 'Image',
    word: 'image',
    names: ['whiteboard', 'prototype screenshot', 'schematic', 'badge photo'],
    ext: ['png', 'jpg'],
    mime: 'image/png',
    indicator: 'Image',
  },
];

interface Vector {
  key: string;
  observer: string;
  action: string;
  /** Event comes from a device agent (source is the laptop) rather than a cloud connector. */
  endpoint: boolean;
  /** Tail of exfiltrationSummary: "<n> <kind> file(s) <phrase>". */
  phrase: string;
  indicator: string;
  indicatorWeight: number;
  shareType: string[];
  destination: (rnd: Rnd, email: string) => Partial<FileEventV2['destination']>;
  source?: Partial<FileEventV2['source']>;
  processExecutable?: string | null;
  /** Same process on macOS. */
  macExecutable?: string;
}

const PERSONAL_MAIL = ['gmail.com', 'yahoo.com', 'outlook.com', 'proton.me', 'icloud.com'];

function personalAddress(rnd: Rnd, email: string): string {
  const local = email.split('@')[0] ?? 'someone';
  return `${local.replace('.', '')}${int(rnd, 1, 99)}@${pick(rnd, PERSONAL_MAIL)}`;
}

const BROWSER = 'C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe';
const CHROME = 'C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe';
const MAC_EDGE = '/Applications/Microsoft Edge.app/Contents/MacOS/Microsoft Edge';
const MAC_CHROME = '/Applications/Google Chrome.app/Contents/MacOS/Google Chrome';

const VECTORS: readonly Vector[] = [
  {
    key: 'dropbox-upload',
    observer: 'Endpoint',
    action: 'application-read',
    endpoint: true,
    phrase: 'uploaded to personal Dropbox via browser',
    indicator: 'Dropbox upload',
    indicatorWeight: 5,
    shareType: [],
    processExecutable: BROWSER,
    macExecutable: MAC_EDGE,
    destination: () => ({
      category: 'Cloud Storage',
      name: 'Dropbox',
      domains: ['dropbox.com'],
      tabs: [{ title: 'Files - Dropbox - Microsoft Edge', url: 'https://www.dropbox.com/home', titleError: null, urlError: null }],
    }),
  },
  {
    key: 'wetransfer',
    observer: 'Endpoint',
    action: 'application-read',
    endpoint: true,
    phrase: 'uploaded to wetransfer.com via Chrome',
    indicator: 'File sharing upload',
    indicatorWeight: 5,
    shareType: [],
    processExecutable: CHROME,
    macExecutable: MAC_CHROME,
    destination: () => ({
      category: 'File Sharing',
      name: 'WeTransfer',
      domains: ['wetransfer.com'],
      tabs: [{ title: 'WeTransfer - Send Large Files', url: 'https://wetransfer.com/', titleError: null, urlError: null }],
    }),
  },
  {
    key: 'genai-upload',
    observer: 'Endpoint',
    action: 'application-read',
    endpoint: true,
    phrase: 'uploaded to ChatGPT',
    indicator: 'AI tool upload',
    indicatorWeight: 6,
    shareType: [],
    processExecutable: CHROME,
    macExecutable: MAC_CHROME,
    destination: () => ({
      category: 'AI Tools',
      name: 'ChatGPT',
      domains: ['chatgpt.com'],
      tabs: [{ title: 'ChatGPT', url: 'https://chatgpt.com/', titleError: null, urlError: null }],
    }),
  },
  {
    key: 'removable-media',
    observer: 'Endpoint',
    action: 'removable-media-created',
    endpoint: true,
    phrase: 'copied to removable media (SanDisk Cruzer Blade)',
    indicator: 'Removable media',
    indicatorWeight: 5,
    shareType: [],
    processExecutable: 'C:\\Windows\\explorer.exe',
    macExecutable: '/System/Library/CoreServices/Finder.app/Contents/MacOS/Finder',
    destination: (rnd) => ({
      category: 'Removable Media',
      name: 'SanDisk Cruzer Blade',
      removableMedia: {
        vendor: 'SanDisk',
        name: 'Cruzer Blade',
        serialNumber: hex(rnd, 16).toUpperCase(),
        capacity: 32_008_830_976,
        busType: 'USB',
        mediaName: 'SanDisk Cruzer Blade USB Device',
        volumeName: ['USB DRIVE'],
        partitionId: [uuid(rnd).toUpperCase()],
      },
    }),
  },
  {
    key: 'box-link',
    observer: 'Box',
    action: 'file-shared',
    endpoint: false,
    phrase: 'shared via link from corporate Box',
    indicator: 'Public link share',
    indicatorWeight: 4,
    shareType: ['SharedViaLink'],
    source: { category: 'Cloud Storage', name: 'Box' },
    destination: () => ({ category: 'Cloud Storage', name: 'Box', domains: [] }),
  },
  {
    key: 'gdrive-public',
    observer: 'GoogleDrive',
    action: 'file-shared',
    endpoint: false,
    phrase: 'shared publicly from corporate Google Drive',
    indicator: 'Public share',
    indicatorWeight: 6,
    shareType: ['Public'],
    source: { category: 'Cloud Storage', name: 'Google Drive' },
    destination: () => ({ category: 'Cloud Storage', name: 'Google Drive', domains: [] }),
  },
  {
    key: 'onedrive-external',
    observer: 'Office365',
    action: 'file-shared',
    endpoint: false,
    phrase: 'shared with an external user from corporate OneDrive',
    indicator: 'External share',
    indicatorWeight: 4,
    shareType: ['SharedToDomain'],
    source: { category: 'Cloud Storage', name: 'OneDrive' },
    destination: (rnd, email) => ({
      category: 'Cloud Storage',
      name: 'OneDrive',
      user: { email: [personalAddress(rnd, email)] },
      domains: [],
    }),
  },
  {
    key: 'gmail-personal',
    observer: 'Gmail',
    action: 'file-emailed',
    endpoint: false,
    phrase: 'emailed to a personal address from corporate Gmail',
    indicator: 'Personal webmail',
    indicatorWeight: 5,
    shareType: [],
    source: { category: 'Email', name: 'Gmail' },
    destination: (rnd, email) => ({
      category: 'Email',
      name: 'Gmail',
      email: { recipients: [personalAddress(rnd, email)], subject: pick(rnd, ['fwd: docs', 'for later', 'backup', 'stuff']) },
      domains: [],
    }),
  },
  {
    key: 'git-push',
    observer: 'Endpoint',
    action: 'application-read',
    endpoint: true,
    phrase: 'pushed to an untrusted Git repository',
    indicator: 'Git push to untrusted repository',
    indicatorWeight: 7,
    shareType: [],
    processExecutable: 'C:\\Program Files\\Git\\mingw64\\bin\\git.exe',
    macExecutable: '/usr/bin/git',
    destination: () => ({ category: 'Source Code Repository', name: 'GitHub', domains: ['github.com'] }),
  },
  {
    key: 'print',
    observer: 'Endpoint',
    action: 'file-printed',
    endpoint: true,
    phrase: 'printed to HP LaserJet (home office)',
    indicator: 'Printed',
    indicatorWeight: 2,
    shareType: [],
    processExecutable: 'C:\\Windows\\System32\\spoolsv.exe',
    macExecutable: '/usr/sbin/cupsd',
    destination: (rnd) => ({
      category: 'Printer',
      name: 'HP LaserJet M404',
      printerName: 'HP LaserJet M404 (Home)',
      printJobName: `job-${digits(rnd, 4)}`,
    }),
  },
  {
    key: 'salesforce-report',
    observer: 'Salesforce',
    action: 'file-downloaded',
    endpoint: false,
    phrase: 'downloaded from Salesforce',
    indicator: 'Salesforce report download',
    indicatorWeight: 4,
    shareType: [],
    source: { category: 'Business Tools', name: 'Salesforce', domains: ['salesforce.com'] },
    destination: () => ({ category: 'Device', name: null }),
  },
  {
    key: 'icloud-sync',
    observer: 'Endpoint',
    action: 'sync-app-modified',
    endpoint: true,
    phrase: 'synced to personal iCloud Drive',
    indicator: 'Personal cloud storage',
    indicatorWeight: 5,
    shareType: [],
    processExecutable: 'C:\\Program Files\\Common Files\\Apple\\Internet Services\\iCloudDrive.exe',
    macExecutable: '/System/Library/PrivateFrameworks/CloudDocsDaemon.framework/Versions/A/Support/bird',
    destination: () => ({ category: 'Cloud Storage', name: 'iCloud', domains: ['icloud.com'] }),
  },
];

const CONTEXT_INDICATORS: ReadonlyArray<readonly [string, number]> = [
  ['First use of destination', 3],
  ['File mismatch', 9],
  ['Remote', 0],
  ['Off hours', 1],
  ['Departing', 3],
];

function emptyRemovableMedia(): FileEventRemovableMedia {
  return {
    vendor: null,
    name: null,
    serialNumber: null,
    capacity: null,
    busType: null,
    mediaName: null,
    volumeName: [],
    partitionId: [],
  };
}

interface EventContext {
  vector: Vector;
  kind: FileKind;
  at: number;
  email: string;
  userId: string;
  deviceUid: string;
  hostname: string;
  os: string;
  severity: number;
  tenantId: string;
  owner: string;
}

function buildFileEvent(rnd: Rnd, ctx: EventContext): FileEventV2 {
  const { vector, kind } = ctx;
  const ext = pick(rnd, kind.ext);
  const base = pick(rnd, kind.names);
  const fileName = `${base}${rnd() < 0.4 ? ` (${int(rnd, 1, 9)})` : ''}.${ext}`;
  const ingested = ctx.at + int(rnd, 2_000, 180_000);
  const inserted = ingested + (rnd() < 0.1 ? int(rnd, 600_000, 3_000_000) : int(rnd, 1_000, 30_000));
  const created = ctx.at - int(rnd, 60_000, 200 * 86_400_000);
  const modified = Math.min(ctx.at, created + int(rnd, 0, 30 * 86_400_000));
  const score = scoreFor(rnd, ctx.severity);

  const indicators: FileEventV2['risk']['indicators'] = [];
  if (ctx.severity > 0) {
    indicators.push({ name: vector.indicator, weight: vector.indicatorWeight });
    for (const [name, weight] of CONTEXT_INDICATORS) if (rnd() < 0.3) indicators.push({ name, weight });
    indicators.push({ name: kind.indicator, weight: 0 });
  }

  const eventId = vector.endpoint
    ? `0_${ctx.tenantId}_${ctx.deviceUid}_${digits(rnd, 19)}_${int(rnd, 1, 9999)}`
    : `${uuid(rnd)}_${ctx.tenantId}`;
  const destination: FileEventV2['destination'] = {
    category: null,
    name: null,
    user: { email: [] },
    ip: null,
    privateIp: [],
    operatingSystem: null,
    printJobName: null,
    printerName: null,
    printedFilesBackupPath: null,
    removableMedia: emptyRemovableMedia(),
    email: { recipients: null, subject: null },
    tabs: [],
    accountName: null,
    accountType: null,
    domains: [],
    ...vector.destination(rnd, ctx.email),
  };
  const publicIp = `203.0.113.${int(rnd, 1, 254)}`;
  const privateIp = `192.168.${int(rnd, 0, 20)}.${int(rnd, 2, 254)}`;
  const source: FileEventV2['source'] = vector.endpoint
    ? {
        category: 'Device',
        name: ctx.hostname,
        domain: privateIp,
        ip: publicIp,
        privateIp: [privateIp, '127.0.0.1'],
        operatingSystem: ctx.os,
        email: { sender: null, from: null },
        removableMedia: emptyRemovableMedia(),
        tabs: [],
        domains: [],
        user: { email: [ctx.email] },
      }
    : {
        category: null,
        name: null,
        domain: null,
        ip: null,
        privateIp: [],
        operatingSystem: null,
        email: { sender: vector.observer === 'Gmail' ? ctx.email : null, from: vector.observer === 'Gmail' ? ctx.email : null },
        removableMedia: emptyRemovableMedia(),
        tabs: [],
        domains: [],
        user: { email: [ctx.email] },
        ...vector.source,
      };
  const windows = ctx.os.startsWith('Windows');
  const login = (ctx.email.split('@')[0] ?? 'user').replace(/[^a-z0-9.]/gi, '');
  const directory = vector.endpoint
    ? windows
      ? `C:/Users/${ctx.owner}/${pick(rnd, ['Documents', 'Downloads', 'Desktop', 'source/repos'])}/`
      : `/Users/${login}/${pick(rnd, ['Documents', 'Downloads', 'Desktop', 'src'])}/`
    : null;

  return {
    '@timestamp': iso(ctx.at),
    event: {
      id: eventId,
      inserted: isoMicros(rnd, inserted),
      action: vector.action,
      observer: vector.observer,
      shareType: [...vector.shareType],
      ingested: iso(ingested),
      relatedEvents: [],
    },
    user: {
      email: ctx.email,
      id: ctx.userId,
      deviceUid: vector.endpoint ? ctx.deviceUid : null,
    },
    file: {
      name: fileName,
      directory,
      category: kind.category,
      mimeTypeByBytes: kind.mime,
      categoryByBytes: kind.category,
      mimeTypeByExtension: kind.mime,
      categoryByExtension: kind.category,
      sizeInBytes: int(rnd, 1_024, 80_000_000),
      owner: vector.endpoint ? ctx.owner : ctx.email,
      created: iso(created),
      modified: iso(modified),
      hash: { md5: hex(rnd, 32), sha256: hex(rnd, 64), md5Error: null, sha256Error: null },
      id: vector.endpoint ? null : hex(rnd, 24),
      url: vector.endpoint ? null : `https://${vector.observer.toLowerCase()}.example.com/file/${hex(rnd, 12)}`,
      directoryId: [],
      cloudDriveId: null,
      classifications: [],
    },
    report: { id: null, name: null, description: null, headers: [], count: null, type: null },
    source,
    destination,
    process: {
      executable: vector.endpoint ? ((windows ? vector.processExecutable : vector.macExecutable) ?? null) : null,
      owner: vector.endpoint ? (windows ? ctx.owner : login) : null,
    },
    risk: {
      score,
      severity: RISK_SEVERITY_NAMES[Math.min(4, Math.max(0, ctx.severity))] ?? 'NO_RISK_INDICATED',
      indicators,
      trusted: false,
      trustReason: null,
      untrustedValues: {
        accountNames: [],
        domains: [...(destination.domains ?? [])],
        gitRepositoryUris: vector.key === 'git-push' ? [`github.com/${ctx.owner.toLowerCase().replace(/\s+/g, '')}/scratch`] : [],
        slackWorkspaces: [],
        urlPaths: [],
      },
    },
  };
}

/** Deep partial used by `makeFileEvent` overrides (arrays are replaced, not merged). */
export type DeepPartial<T> = {
  [K in keyof T]?: T[K] extends readonly unknown[] ? T[K] : T[K] extends object ? DeepPartial<T[K]> : T[K];
};

export type FileEventOverrides = DeepPartial<FileEventV2>;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function deepMerge(target: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  for (const key of Object.keys(patch)) {
    if (key === '__proto__' || key === 'constructor' || key === 'prototype') continue;
    const value = patch[key];
    if (value === undefined) continue;
    const current = target[key];
    if (isPlainObject(value) && isPlainObject(current)) deepMerge(current, value);
    else target[key] = value;
  }
  return target;
}

/**
 * One realistic v2 file event (a random vector: browser upload, USB, cloud share, webmail, git push, print...).
 * `overrides` is deep-merged over it; when it sets `@timestamp`, the other times (ingested, inserted, file
 * created/modified) are placed around that instant.
 */
export function makeFileEvent(rnd: () => number, overrides: FileEventOverrides = {}): FileEventV2 {
  const requested = overrides['@timestamp'] === undefined ? Number.NaN : Date.parse(overrides['@timestamp']);
  const at = Number.isFinite(requested) ? requested : Date.UTC(2024, 8, 11, 19, 26, 0) + int(rnd, 0, 86_400_000);
  const first = pick(rnd, FIRST_NAMES);
  const last = pick(rnd, LAST_NAMES);
  const event = buildFileEvent(rnd, {
    vector: pick(rnd, VECTORS),
    kind: pick(rnd, FILE_KINDS),
    at,
    email: `${first}.${last}@example.com`,
    userId: digits(rnd, 19),
    deviceUid: digits(rnd, 19),
    hostname: `${first.toUpperCase()}-LT${int(rnd, 10, 99)}`,
    os: pick(rnd, OPERATING_SYSTEMS),
    severity: int(rnd, 1, 4),
    tenantId: uuid(rnd),
    owner: `${capitalize(first)} ${capitalize(last)}`,
  });
  return deepMerge(event as unknown as Record<string, unknown>, overrides as Record<string, unknown>) as unknown as FileEventV2;
}

// ---------------------------------------------------------------------------------------------------------------
// Actors and rules

const FIRST_NAMES = [
  'jane', 'john', 'maria', 'wei', 'aisha', 'lucas', 'emma', 'noah', 'sofia', 'liam',
  'olivia', 'mateo', 'yuki', 'omar', 'chloe', 'arjun', 'zoe', 'ivan', 'fatima', 'leo',
] as const;
const LAST_NAMES = [
  'doe', 'smith', 'garcia', 'chen', 'khan', 'silva', 'muller', 'rossi', 'nguyen', 'kowalski',
  'okafor', 'tanaka', 'haddad', 'martin', 'novak', 'patel', 'larsen', 'dubois', 'costa', 'brown',
] as const;
const ORG: ReadonlyArray<readonly [division: string, department: string, titles: readonly string[]]> = [
  ['engineering', 'product', ['software engineer', 'staff engineer', 'engineering manager']],
  ['engineering', 'platform', ['site reliability engineer', 'platform engineer']],
  ['sales', 'field sales', ['account executive', 'sales engineer', 'regional sales director']],
  ['finance', 'accounting', ['accountant', 'financial analyst', 'controller']],
  ['legal', 'compliance', ['counsel', 'compliance analyst']],
  ['marketing', 'growth', ['marketing manager', 'content strategist']],
  ['operations', 'it', ['it administrator', 'helpdesk analyst']],
];
const PLACES: ReadonlyArray<readonly [country: string, region: string, locality: string]> = [
  ['usa', 'midwest', 'minneapolis'],
  ['usa', 'west', 'san francisco'],
  ['usa', 'northeast', 'boston'],
  ['gbr', 'england', 'london'],
  ['irl', 'leinster', 'dublin'],
  ['deu', 'bavaria', 'munich'],
  ['ind', 'karnataka', 'bengaluru'],
];
const OPERATING_SYSTEMS = ['Windows 10', 'Windows 11', 'Mac OS X 14.5', 'Mac OS X 13.6'] as const;

const RULE_NAMES = [
  'Suspicious File Mismatch Rule',
  'Departing Employee Exfiltration',
  'Removable Media Copy',
  'Public Link Share From Corporate Cloud',
  'Personal Webmail Attachment',
  'Source Code Push To Untrusted Repository',
  'High Risk Employee Archive Upload',
  'Salesforce Report Download',
  'Generative AI Upload',
  'Off Hours Bulk Printing',
] as const;

function capitalize(word: string): string {
  return word.length === 0 ? word : `${word[0]?.toUpperCase() ?? ''}${word.slice(1)}`;
}

interface ActorExtras {
  userId: string;
  deviceUid: string;
  hostname: string;
  os: string;
  owner: string;
}

function generateActors(rnd: Rnd, count: number, now: number): { actors: WireActor[]; extras: ActorExtras[] } {
  const actors: WireActor[] = [];
  const extras: ActorExtras[] = [];
  const usedIds = new Set<string>();
  const usedNames = new Set<string>();
  for (let i = 0; i < count; i++) {
    let actorId = digits(rnd, 19);
    while (usedIds.has(actorId)) actorId = digits(rnd, 19);
    usedIds.add(actorId);
    const first = pick(rnd, FIRST_NAMES);
    const last = pick(rnd, LAST_NAMES);
    let name = `${first}.${last}@example.com`;
    for (let n = 2; usedNames.has(name); n++) name = `${first}.${last}${n}@example.com`;
    usedNames.add(name);
    const [division, department, titles] = pick(rnd, ORG);
    const [country, region, locality] = pick(rnd, PLACES);
    const departing = rnd() < 0.15;
    const contractor = rnd() < 0.2;
    const prior = actors.length > 0 && rnd() < 0.8 ? pick(rnd, actors) : undefined;
    actors.push({
      active: rnd() < 0.95,
      actorId,
      alternateNames: rnd() < 0.3 ? [`${first[0] ?? 'x'}${last}@corp.example.com`] : [],
      country,
      department,
      division,
      employeeType: contractor ? 'contractor' : 'full-time',
      endDate: departing ? isoDate(now + int(rnd, 1, 30) * 86_400_000) : null,
      firstName: first,
      inScope: true,
      lastName: last,
      locality,
      managerActorId: prior ? prior.actorId : null,
      name,
      notes: departing ? 'Resignation submitted; on departing employees watchlist.' : null,
      parentActorId: null,
      region,
      startDate: rnd() < 0.8 ? isoDate(now - int(rnd, 60, 3_000) * 86_400_000) : null,
      title: pick(rnd, titles),
    });
    extras.push({
      userId: digits(rnd, 19),
      deviceUid: digits(rnd, 19),
      hostname: `${first.toUpperCase()}-${pick(rnd, ['LT', 'MBP', 'WS'])}${int(rnd, 10, 99)}`,
      os: pick(rnd, OPERATING_SYSTEMS),
      owner: `${capitalize(first)} ${capitalize(last)}`,
    });
  }
  return { actors, extras };
}

function generateRules(rnd: Rnd, count: number, now: number): WireRule[] {
  const rules: WireRule[] = [];
  for (let i = 0; i < count; i++) {
    const base = RULE_NAMES[i % RULE_NAMES.length] ?? 'Rule';
    const name = i < RULE_NAMES.length ? base : `${base} ${Math.floor(i / RULE_NAMES.length) + 1}`;
    const created = now - int(rnd, 30, 700) * 86_400_000 - int(rnd, 0, 86_399_999);
    const modified = created + int(rnd, 0, 20) * 86_400_000;
    const author = `${pick(rnd, FIRST_NAMES)}.admin@example.com`;
    rules.push({
      id: uuid(rnd),
      name,
      description: `Alerts when ${name.toLowerCase()} activity is detected.`,
      severity: '',
      isEnabled: rnd() < 0.9,
      source: '',
      notifications: {
        isEnabled: true,
        contacts: [{ isEnabled: true, type: 'EMAIL', address: 'security-team@example.com' }],
      },
      vectors: {
        cloudSharing: { box: { publicViaLink: true }, googleDrive: { publicViaLink: true } },
        removableMedia: { isEnabled: rnd() < 0.5 },
        webBrowser: { isEnabled: true },
      },
      filters: {
        fileCategories: { isEnabled: true, categories: [pick(rnd, FILE_KINDS).category] },
        watchlists: { isEnabled: rnd() < 0.5, watchlistIds: [uuid(rnd)] },
      },
      createdAt: isoMicros(rnd, created),
      createdBy: author,
      modifiedAt: isoMicros(rnd, modified),
      modifiedBy: author,
      isSystemRule: false,
    });
  }
  return rules;
}

// ---------------------------------------------------------------------------------------------------------------
// Sessions

const DEFAULT_STATE_WEIGHTS: Partial<Record<State, number>> = {
  OPEN: 70,
  OPEN_NEW_DATA: 10,
  IN_PROGRESS: 12,
  CLOSED_TP: 8,
};

const CONTEXT_SUMMARIES = [
  '',
  '',
  '',
  'Departing employee; activity within 30 days of end date.',
  'Actor is on the High Impact Employees watchlist.',
  'Activity occurred off hours while remote.',
  'First use of this destination by the actor.',
];

/** State that preceded `state` when a session has a two-entry history. */
function previousState(rnd: Rnd, state: State): State {
  if (state === 'OPEN_NEW_DATA') return pick(rnd, ['CLOSED_TP', 'CLOSED_FP', 'IN_PROGRESS'] as const);
  if (state === 'OPEN') return 'OPEN_NEW_DATA';
  if (state === 'IN_PROGRESS') return 'OPEN';
  return pick(rnd, ['OPEN', 'IN_PROGRESS'] as const);
}

/**
 * A whole tenant: actors, rules (some deleted but still referenced) and sessions with their file events.
 * Same options → identical output. With the default time range the output follows Date.now(); pass
 * `beginFrom`/`beginTo` for byte-identical repeats.
 */
export function generateTenant(opts: TenantOptions): GeneratedTenant {
  const seed = opts.seed ?? 1;
  const sessionCount = Math.max(0, Math.floor(opts.sessions));
  const actorCount = Math.max(1, Math.floor(opts.actors ?? 25));
  const ruleCount = Math.max(1, Math.floor(opts.rules ?? 8));
  const deletedCount = Math.min(ruleCount, Math.max(0, Math.floor(opts.deletedRules ?? 0)));
  const withNames = opts.withNames ?? false;
  const beginTo = opts.beginTo ?? Date.now();
  const beginFrom = opts.beginFrom ?? beginTo - 6 * 3_600_000;
  if (!(beginTo > beginFrom)) throw new Error('generateTenant: beginTo must be after beginFrom');
  const severityWeights = opts.severityWeights ?? [0, 25, 30, 30, 15];
  const stateEntries = Object.entries(opts.stateWeights ?? DEFAULT_STATE_WEIGHTS) as Array<[State, number]>;
  const [minAlerts, maxAlerts] = opts.alertsPerSession ?? [1, 2];
  const lateFraction = opts.lateFraction ?? 0;
  const lateByMs = opts.lateByMs ?? 600_000;
  const idPrefix = opts.idPrefix ?? 'sess';
  const tenantId = opts.tenantId ?? 'sim-tenant-0001';
  const eventsPerSession = opts.eventsPerSession ?? ((_i: number, r: Rnd) => int(r, 0, 5));

  // Independent streams: changing the session count does not change actors or rules, and so on.
  const master = mulberry32(seed);
  const actorRnd = fork(master);
  const ruleRnd = fork(master);
  const sessionRnd = fork(master);
  const lateRnd = fork(master);
  // Forked last so that adding it left every other stream (and so every earlier tenant) unchanged.
  const shapeRnd = fork(master);
  const shapedFraction = opts.toleratedShapes ?? 0.1;

  const { actors, extras } = generateActors(actorRnd, actorCount, beginTo);
  const allRules = generateRules(ruleRnd, ruleCount, beginFrom);
  const deletedRules = allRules.slice(ruleCount - deletedCount);
  const liveRules = allRules.slice(0, ruleCount - deletedCount);

  const sessions: GeneratedTenant['sessions'] = [];
  for (let i = 0; i < sessionCount; i++) {
    const rnd = fork(sessionRnd);
    const eventRnd = fork(rnd);
    const actorIndex = Math.floor(rnd() * actors.length);
    const actor = actors[actorIndex];
    const extra = extras[actorIndex];
    if (!actor || !extra) throw new Error('actor pool out of range');

    const beginTime = beginFrom + Math.floor(rnd() * (beginTo - beginFrom));
    const endTime = beginTime + int(rnd, 1_000, 30 * 60_000);
    const firstObserved = endTime + int(rnd, 30_000, 15 * 60_000);
    const maxSeverity = weighted(rnd, severityWeights.map((w, s) => [s, w] as const));
    const state = weighted(rnd, stateEntries);
    const vector = pick(rnd, VECTORS);
    const kind = pick(rnd, FILE_KINDS);

    // Score history: one entry carries the max severity; the others are lower or equal.
    const scoreCount = int(rnd, 1, 3);
    const peakIndex = int(rnd, 0, scoreCount - 1);
    const scores: WireScore[] = [];
    let at = firstObserved;
    for (let s = 0; s < scoreCount; s++) {
      if (s > 0) at += int(rnd, 60_000, 45 * 60_000);
      const severity = s === peakIndex ? maxSeverity : int(rnd, Math.min(1, maxSeverity), maxSeverity);
      scores.push({ score: scoreFor(rnd, severity), severity, sourceTimestamp: at });
    }
    let lastUpdated = at;

    const states: WireStateEntry[] = [];
    const twoStates = state !== 'OPEN' ? rnd() < 0.6 : rnd() < 0.15;
    const analyst = `${digits(rnd, 19)}`;
    if (twoStates) {
      const prev = previousState(rnd, state);
      states.push({ state: prev, stateV2: prev, sourceTimestamp: firstObserved, userId: prev === 'OPEN' ? null : analyst });
      lastUpdated += int(rnd, 60_000, 120 * 60_000);
      states.push({ state, stateV2: state, sourceTimestamp: lastUpdated, userId: state === 'OPEN_NEW_DATA' ? null : analyst });
    } else {
      states.push({
        state,
        stateV2: state,
        sourceTimestamp: firstObserved,
        userId: state === 'OPEN' || state === 'OPEN_NEW_DATA' ? null : analyst,
      });
    }

    const alertCount = int(rnd, Math.max(0, minAlerts), Math.max(minAlerts, maxAlerts));
    const ruleIds = new Set<number>();
    const triggeredAlerts: WireTriggeredAlert[] = [];
    for (let a = 0; a < alertCount; a++) {
      let ruleIndex = Math.floor(rnd() * allRules.length);
      if (ruleIds.size < allRules.length) while (ruleIds.has(ruleIndex)) ruleIndex = (ruleIndex + 1) % allRules.length;
      ruleIds.add(ruleIndex);
      const rule = allRules[ruleIndex];
      if (!rule) throw new Error('rule out of range');
      const alert: WireTriggeredAlert = { alertId: uuid(rnd), ruleId: rule.id, lessonId: null };
      if (withNames) alert.ruleName = rule.name;
      triggeredAlerts.push(alert);
    }

    // File events: within [beginTime, endTime]; one carries the peak severity.
    const eventCount = Math.max(0, Math.floor(eventsPerSession(i, eventRnd)));
    const eventPeak = eventCount > 0 ? int(eventRnd, 0, eventCount - 1) : -1;
    const events: FileEventV2[] = [];
    const counters = [0, 0, 0, 0, 0];
    for (let e = 0; e < eventCount; e++) {
      const severity = e === eventPeak ? maxSeverity : int(eventRnd, 0, maxSeverity);
      counters[severity] = (counters[severity] ?? 0) + 1;
      events.push(
        buildFileEvent(eventRnd, {
          vector: eventRnd() < 0.85 ? vector : pick(eventRnd, VECTORS),
          kind: eventRnd() < 0.8 ? kind : pick(eventRnd, FILE_KINDS),
          at: beginTime + Math.floor(eventRnd() * (endTime - beginTime)),
          email: actor.name,
          userId: extra.userId,
          deviceUid: extra.deviceUid,
          hostname: extra.hostname,
          os: extra.os,
          severity,
          tenantId,
          owner: extra.owner,
        }),
      );
    }
    events.sort((x, y) => (x['@timestamp'] < y['@timestamp'] ? -1 : x['@timestamp'] > y['@timestamp'] ? 1 : 0));
    counters[0] = (counters[0] ?? 0) + int(rnd, 0, 6);

    const indicatorMap = new Map<string, WireRiskIndicator>();
    for (const ev of events) {
      for (const ind of ev.risk.indicators) {
        const id = ind.name;
        const existing = indicatorMap.get(id);
        if (existing) existing.eventCount += 1;
        else indicatorMap.set(id, { id, name: ind.name, weight: ind.weight, eventCount: 1 });
      }
    }
    if (indicatorMap.size === 0 && maxSeverity > 0) {
      const id = vector.indicator;
      indicatorMap.set(id, { id, name: vector.indicator, weight: vector.indicatorWeight, eventCount: int(rnd, 1, 4) });
    }

    const fileCount = eventCount > 0 ? eventCount : int(rnd, 1, 25);
    const piiRoll = rnd();
    const session: WireSession = {
      sessionId: `${idPrefix}-${String(i).padStart(6, '0')}-${hex(rnd, 8)}`,
      tenantId,
      actorId: actor.actorId,
      ...(withNames ? { actorName: actor.name } : {}),
      beginTime,
      endTime,
      firstObserved,
      lastUpdated,
      noRiskEvents: counters[0] ?? 0,
      lowEvents: counters[1] ?? 0,
      moderateEvents: counters[2] ?? 0,
      highEvents: counters[3] ?? 0,
      criticalEvents: counters[4] ?? 0,
      notes: [],
      riskIndicators: [...indicatorMap.values()],
      scores,
      triggeredAlerts,
      states,
      exfiltrationSummary: `${fileCount} ${kind.word} file(s) ${vector.phrase}`,
      contextSummary: pick(rnd, CONTEXT_SUMMARIES),
      contentInspectionResults: { detectedOnAlerts: piiRoll < 0.2 ? ['PII'] : piiRoll < 0.25 ? ['PII', 'PCI'] : [] },
      type: 'STANDARD',
      userId: extra.userId,
    };

    const entry: GeneratedTenant['sessions'][number] = { session, events };
    if (lateFraction > 0 && lateRnd() < lateFraction) entry.visibleAt = beginTime + lateByMs;
    if (shapedFraction > 0 && shapeRnd() < shapedFraction) {
      const shape = pick(shapeRnd, SESSION_SHAPES);
      entry.shapes = [shape];
      if (shape === 'epoch-ms-event-time') millisecondEventTimes(events);
    }
    sessions.push(entry);
  }

  return { actors, rules: liveRules, deletedRuleIds: deletedRules.map((r) => r.id), sessions };
}
