import type { FileEvent } from '../code42/schemas.js';
import type { GridRow, JsonValue } from './incident-request.js';

type Json = Record<string, unknown>;

function obj(value: unknown): Json {
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Json) : {};
}

function str(value: unknown): string | undefined {
  if (typeof value === 'string') return value.trim() === '' ? undefined : value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
}

function list(value: unknown, pick?: (item: Json) => unknown): string | undefined {
  if (!Array.isArray(value)) return str(value);
  const items = value.map((v) => str(pick ? pick(obj(v)) : v)).filter((v): v is string => v !== undefined);
  return items.length > 0 ? items.join(', ') : undefined;
}

/**
 * A key as XSOAR's ConvertKeysToTableFieldFormat transformer makes it (the stock mapper applies it to each
 * file event): lower-cased, every character that is not a letter or a digit removed (`@timestamp` → `timestamp`).
 */
export function tableFieldKey(key: string): string {
  return key.replace(/[^\p{L}\p{N}]/gu, '').toLowerCase();
}

/** The device's host name, only when the event happened on a device (a cloud service's name is no host). */
function hostName(e: Json, source: Json): string | undefined {
  const ev = obj(e.event);
  const onDevice = str(source.category)?.toLowerCase() === 'device' || str(ev.observer)?.toLowerCase() === 'endpoint';
  return onDevice ? str(source.name) : undefined;
}

/**
 * One row of the stock pack's `code42fileevents` grid from a v2 file event, in both shapes its consumers read:
 * the event as the stock mapper stores it (top-level keys converted by ConvertKeysToTableFieldFormat, nested
 * objects kept: `row.file.name`, `row.event.id`), plus the V1 flat columns filled from it (`filename`,
 * `filepath`, `exposure`, `oshostname` …) for the grid and the playbook's e-mail and CrowdStrike steps.
 */
export function fileEventRow(event: FileEvent): GridRow {
  const e = event as Json;
  const ev = obj(e.event);
  const file = obj(e.file);
  const hash = obj(file.hash);
  const user = obj(e.user);
  const source = obj(e.source);
  const destination = obj(e.destination);
  const process = obj(e.process);
  const media = Object.keys(obj(destination.removableMedia)).some((k) => str(obj(destination.removableMedia)[k]))
    ? obj(destination.removableMedia)
    : obj(source.removableMedia);
  const shareTypes = Array.isArray(ev.shareType) ? ev.shareType : [];

  const cells: Record<string, string | number | boolean | undefined> = {
    eventid: str(ev.id),
    eventtimestamp: str(e['@timestamp']),
    eventtype: str(ev.action),
    exposure: str(destination.category) ?? str(ev.vector),
    filename: str(file.name),
    // A cloud file has no directory; where it lives is its URL (what the V1 column held for cloud events).
    filepath: str(file.directory) ?? str(file.url),
    filesize: typeof file.sizeInBytes === 'number' ? file.sizeInBytes : undefined,
    filecategory: str(file.category),
    md5checksum: str(hash.md5),
    sha256checksum: str(hash.sha256),
    deviceusername: str(user.email),
    actor: str(user.email),
    oshostname: hostName(e, source),
    privateipaddresses: list(source.privateIp),
    publicipaddress: str(source.ip),
    removablemediavendor: str(media.vendor),
    removablemediamedianame: str(media.mediaName) ?? str(media.name),
    removablemediaserialnumber: str(media.serialNumber),
    shared: shareTypes.length > 0 ? 'true' : undefined,
    sharedwith: list(obj(destination.user).email),
    url: str(file.url),
    processname: str(process.executable),
    windowtitle: list(destination.tabs, (t) => t.title),
    taburl: list(destination.tabs, (t) => t.url),
    emailsubject: str(obj(destination.email).subject),
    emailsender: str(obj(source.email).sender),
    emailrecipients: list(obj(destination.email).recipients),
    destinationname: str(destination.name),
    riskscore: typeof obj(e.risk).score === 'number' ? (obj(e.risk).score as number) : undefined,
    riskseverity: str(obj(e.risk).severity),
  };
  const row: GridRow = {};
  for (const [key, value] of Object.entries(e)) {
    const column = tableFieldKey(key);
    if (column !== '' && value !== undefined) row[column] = value as JsonValue;
  }
  for (const [key, value] of Object.entries(cells)) if (value !== undefined) row[key] = value;
  return row;
}
