/**
 * URLs as they may be shown: a user name and password written into a URL (https://user:pw@host) are
 * replaced by `***`, everything else kept, so logs, `check` and `config --effective` can still name the
 * server without leaking what the URL carries.
 */
export function maskUrlCredentials(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    // Not parseable: hide anything that looks like userinfo rather than echo it.
    return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1***@');
  }
  if (u.username) u.username = '***';
  if (u.password) u.password = '***';
  // URL.toString adds a trailing slash to a bare origin; keep the operator's spelling otherwise.
  const shown = u.toString();
  return url.endsWith('/') || !shown.endsWith('/') || u.pathname !== '/' ? shown : shown.slice(0, -1);
}
