/**
 * Every read of GET /v1/sessions is bounded: a server that ignores `page_number` and omits `totalCount`
 * would otherwise hand out full pages forever and one poll would spend the whole request budget.
 */

/** Hard ceiling of pages one listing read takes in one poll, whatever else is known (100,000 sessions). */
export const MAX_LISTING_PAGES = 2_000;

/**
 * The most pages a read of a listing may take: what `totalCount` says plus one (a session inserted while
 * paging), or, without it, what the daemon knows of the window plus some room; never above
 * `MAX_LISTING_PAGES`.
 */
export function listingPageCap(p: { totalCount: number | undefined; knownInWindow: number; pageSize: number; room?: number }): number {
  const room = p.room ?? 10;
  const fromCount = p.totalCount !== undefined ? Math.ceil(p.totalCount / p.pageSize) + 1 : Math.ceil(p.knownInWindow / p.pageSize) + room;
  return Math.max(1, Math.min(MAX_LISTING_PAGES, fromCount));
}

/** Why a listing read stopped before its end. */
export type ListingTroubleKind = 'repeats' | 'page_cap';

export interface ListingTrouble {
  /** Which read: recent, sweep_recent, sweep_deep, count_read, import. */
  listing: string;
  kind: ListingTroubleKind;
  /** Page number at which the read stopped. */
  page: number;
  detail: string;
}

/**
 * A full page holding exactly the ids of the page before it: the server does not page (it ignores
 * `page_number`). A listing whose pages shift by a few items (sessions inserted at the top while paging)
 * repeats some ids, never all of a full page.
 */
export function repeatsPreviousPage(previous: readonly string[] | undefined, current: readonly string[], pageSize: number): boolean {
  if (!previous || current.length < pageSize || previous.length !== current.length) return false;
  const before = new Set(previous);
  return current.every((id) => before.has(id));
}

export function describeTrouble(t: Omit<ListingTrouble, 'detail'>): string {
  return t.kind === 'repeats'
    ? `GET /v1/sessions (${t.listing}) does not end: page ${t.page} holds the same sessions as page ${t.page - 1} (the server ignores page_number?); the read stops there`
    : `GET /v1/sessions (${t.listing}) does not end: still full pages at page ${t.page}, past what totalCount or the window allows; the read stops there`;
}
