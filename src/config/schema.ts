/**
 * The configuration schema: every key, its environment variable, default and doc.
 * Key names and env names are a contract with operators' files: add freely, rename nothing.
 */
export const schema = {
  code42: {
    apiUrl: {
      doc: 'Code42 API gateway base URL, e.g. https://api.us.code42.com',
      format: 'http-url',
      default: null as string | null,
      env: 'CODE42_API_URL',
    },
    consoleUrl: {
      doc: 'Code42 console URL used for alert links in incidents; derived from the API URL (api. -> console.) when empty',
      format: 'optional-http-url',
      default: null as string | null,
      env: 'CODE42_CONSOLE_URL',
    },
    clientId: {
      doc: 'Code42 API client ID (key-...)',
      format: 'required-string',
      default: null as string | null,
      env: 'CODE42_CLIENT_ID',
    },
    clientSecret: {
      doc: 'Code42 API client secret',
      format: 'required-string',
      default: null as string | null,
      env: 'CODE42_CLIENT_SECRET',
      sensitive: true,
    },
    severities: {
      doc: 'Alert severities to forward: comma list of critical, high, moderate, low',
      format: 'severity-list',
      default: ['critical', 'high', 'moderate', 'low'] as string[],
      env: 'ALERT_SEVERITIES',
    },
    states: {
      doc: 'Session states to forward (the latest state of the session): comma list; names Code42 adds later (upper-snake) are accepted too',
      format: 'state-list',
      default: ['OPEN', 'OPEN_NEW_DATA'] as string[],
      env: 'ALERT_STATES',
    },
    rateLimit: {
      doc: 'Most Code42 requests this deployment makes, across all replicas (Incydr allows about 120/min)',
      format: 'rate',
      default: 120 as number | string,
      env: 'CODE42_RATE_LIMIT',
    },
    timeout: {
      doc: 'Time limit of one Code42 request',
      format: 'positive-duration',
      default: 60_000 as number | string,
      env: 'CODE42_TIMEOUT',
    },
    maxResponseSize: {
      doc: 'Largest Code42 response body accepted (e.g. 16MB, 512KB); a larger one is refused with an error instead of filling memory',
      format: 'size',
      default: 16_777_216 as number | string,
      env: 'CODE42_MAX_RESPONSE_SIZE',
    },
    caFile: {
      doc: 'PEM file with the CA certificate(s) that sign the Code42 endpoint (private CA or TLS-inspecting proxy)',
      format: 'optional-string',
      default: null as string | null,
      env: 'CODE42_CA_FILE',
    },
  },
  poll: {
    interval: {
      doc: 'Time between two polls of Code42',
      format: 'positive-duration',
      default: 30_000 as number | string,
      env: 'POLL_INTERVAL',
    },
    firstFetch: {
      doc: 'What the very first start takes from what Code42 already shows: sessions visible then that began longer ago than this are not forwarded (one that becomes visible later is, up to DEEP_LOOKBACK)',
      format: 'duration',
      default: 86_400_000 as number | string,
      env: 'FIRST_FETCH',
    },
    lookback: {
      doc: "Sessions that become visible up to this long after their latest activity are caught by the recent sweep, run every LOOKBACK/8 (every LOOKBACK while Code42's counts find them first)",
      format: 'duration',
      default: 7_200_000 as number | string,
      env: 'LOOKBACK',
    },
    deepLookback: {
      doc: "Sessions that become visible up to this long after they began are still forwarded (found by Code42's counts within minutes, and by the sweeps)",
      format: 'positive-duration',
      default: 604_800_000 as number | string,
      env: 'DEEP_LOOKBACK',
    },
    sweepInterval: {
      doc: "The whole DEEP_LOOKBACK window is re-read once per this interval (once per DEEP_LOOKBACK while Code42's counts find late sessions and changes first), in slices spread over it (see Performance for the cost)",
      format: 'positive-duration',
      default: 28_800_000 as number | string,
      env: 'SWEEP_INTERVAL',
    },
    countProbeInterval: {
      doc: "How often Code42's counts of sessions outside ALERT_STATES and inside ALERT_SEVERITIES are checked (one call each): a close in the console or an escalation without activity arrives within about this long",
      format: 'positive-duration',
      default: 240_000 as number | string,
      env: 'COUNT_PROBE_INTERVAL',
    },
  },
  redis: {
    url: {
      doc: 'Redis URL: redis://[:password@]host:6379[/db], rediss:// for TLS, or redis+sentinel://host1:26379,host2:26379/<master>[/db] for Sentinel; a password in it is treated as a secret',
      format: 'redis-url',
      default: 'redis://127.0.0.1:6379',
      env: 'REDIS_URL',
      sensitive: true,
    },
    password: {
      doc: 'Redis password, for a REDIS_URL without one (e.g. from a Kubernetes Secret); a password in the URL wins',
      format: 'optional-string',
      default: null as string | null,
      env: 'REDIS_PASSWORD',
      sensitive: true,
    },
    prefix: {
      doc: 'Prefix of every Redis key of this deployment',
      format: 'required-string',
      default: 'c42x',
      env: 'QUEUE_PREFIX',
    },
  },
  log: {
    level: {
      doc: 'Log level',
      format: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
      default: 'info',
      env: 'LOG_LEVEL',
    },
  },
  xsoar: {
    url: {
      doc: 'XSOAR 6 server URL, or the XSOAR 8 API URL (https://api-...)',
      format: 'http-url',
      default: null as string | null,
      env: 'XSOAR_URL',
    },
    apiKey: {
      doc: 'XSOAR API key',
      format: 'required-string',
      default: null as string | null,
      env: 'XSOAR_API_KEY',
      sensitive: true,
    },
    apiKeyId: {
      doc: 'XSOAR 8 API key ID; when set, requests go to /xsoar/public/v1 with the x-xdr-auth-id header',
      format: 'optional-string',
      default: null as string | null,
      env: 'XSOAR_API_KEY_ID',
    },
    authType: {
      doc: 'XSOAR 8 key type: standard, or advanced (a nonce and timestamp hashed with the key on every request)',
      format: ['standard', 'advanced'],
      default: 'standard',
      env: 'XSOAR_AUTH_TYPE',
    },
    incidentType: {
      doc: 'Incident type of the incidents created',
      format: 'required-string',
      default: 'Code42 Security Alert',
      env: 'XSOAR_INCIDENT_TYPE',
    },
    playbookId: {
      doc: 'Playbook to attach to each incident; the incident type default when empty',
      format: 'optional-string',
      default: null as string | null,
      env: 'XSOAR_PLAYBOOK_ID',
    },
    createInvestigation: {
      doc: 'Start the investigation (and its playbook) when the incident is created',
      format: 'strict-boolean',
      default: true as boolean | string,
      env: 'XSOAR_CREATE_INVESTIGATION',
    },
    caFile: {
      doc: 'PEM file with the CA certificate(s) that sign the XSOAR server (on-prem XSOAR uses a self-signed one by default)',
      format: 'optional-string',
      default: null as string | null,
      env: 'XSOAR_CA_FILE',
    },
    tlsInsecure: {
      doc: 'Skip TLS certificate verification towards XSOAR only (opt-in, logged as a warning)',
      format: 'strict-boolean',
      default: false as boolean | string,
      env: 'XSOAR_TLS_INSECURE',
    },
    searchSettle: {
      doc: "How long XSOAR's search may lag a create: after a create whose outcome is unknown (timeout, lost answer, 5xx, crash), or one accepted without an incident id, XSOAR is searched for this long before the incident counts as not created",
      format: 'duration',
      default: 10_000 as number | string,
      env: 'XSOAR_SEARCH_SETTLE',
    },
    maxResponseSize: {
      doc: 'Largest XSOAR response body accepted (e.g. 16MB)',
      format: 'size',
      default: 16_777_216 as number | string,
      env: 'XSOAR_MAX_RESPONSE_SIZE',
    },
    timeout: {
      doc: 'Time limit of one XSOAR request',
      format: 'positive-duration',
      default: 30_000 as number | string,
      env: 'XSOAR_TIMEOUT',
    },
    sourceBrand: {
      doc: 'sourceBrand of the incidents created; the stock pack\'s "Close Related XSOAR And Incydr Incidents" job finds incidents by sourceBrand:Code42',
      format: 'required-string',
      default: 'Code42',
      env: 'XSOAR_SOURCE_BRAND',
    },
    maxBody: {
      doc: 'Largest create request body (e.g. 6MB); file events beyond it are left out of the incident and counted in it',
      format: 'size',
      default: 6_291_456 as number | string,
      env: 'XSOAR_MAX_BODY',
    },
  },
  enrich: {
    includeFiles: {
      doc: 'Fetch the file events of each session and put them in the incident',
      format: 'strict-boolean',
      default: true as boolean | string,
      env: 'INCLUDE_FILES',
    },
    maxFileEvents: {
      doc: 'Most file-event rows per incident; the rest are counted in the incident, never silently cut',
      format: 'positive-int',
      default: 1000 as number | string,
      env: 'MAX_FILE_EVENTS',
    },
    cacheTtl: {
      doc: 'How long actor and rule names are cached',
      format: 'positive-duration',
      default: 3_600_000 as number | string,
      env: 'ENRICH_CACHE_TTL',
    },
  },
  worker: {
    concurrency: {
      doc: 'Sessions forwarded in parallel by one process',
      format: 'positive-int',
      default: 8 as number | string,
      env: 'WORKER_CONCURRENCY',
    },
    attempts: {
      doc: 'Attempts per session before it stays in the failed set (exponential backoff with jitter between them)',
      format: 'positive-int',
      default: 10 as number | string,
      env: 'WORKER_ATTEMPTS',
    },
    backoff: {
      doc: 'Delay before the second attempt; it doubles with each further attempt',
      format: 'positive-duration',
      default: 5_000 as number | string,
      env: 'WORKER_BACKOFF',
    },
    lockDuration: {
      doc: 'How long a worker holds a job without renewing its lock; a crashed process\'s jobs (and the poll) are taken over after about this long',
      format: 'positive-duration',
      default: 30_000 as number | string,
      env: 'WORKER_LOCK_DURATION',
    },
    keepCompleted: {
      doc: 'How long completed forward jobs are kept (failed jobs are kept until retried or removed)',
      format: 'duration',
      default: 604_800_000 as number | string,
      env: 'KEEP_COMPLETED',
    },
  },
  proxy: {
    https: {
      doc: 'HTTP(S) proxy for both upstreams, e.g. http://proxy:3128 (https_proxy is read too)',
      format: 'optional-http-url',
      default: null as string | null,
      env: 'HTTPS_PROXY',
      sensitive: true,
    },
    noProxy: {
      doc: 'Comma list of hosts or domain suffixes that bypass the proxy (no_proxy is read too)',
      format: 'optional-string',
      default: null as string | null,
      env: 'NO_PROXY',
    },
  },
  http: {
    port: {
      doc: 'Port of the ops HTTP server (/livez, /readyz, /metrics)',
      format: 'port',
      default: 8080 as number | string,
      env: 'HTTP_PORT',
    },
    host: {
      doc: 'Address the ops HTTP server listens on',
      format: 'required-string',
      default: '0.0.0.0',
      env: 'HTTP_HOST',
    },
  },
  upstream: {
    failureThreshold: {
      doc: 'Consecutive transient failures of XSOAR or Code42 (unreachable, 5xx, timeouts) that count as an outage: the queue then pauses without spending attempts and probes the upstream until it answers (kept below WORKER_ATTEMPTS)',
      format: 'positive-int',
      default: 5 as number | string,
      env: 'UPSTREAM_FAILURE_THRESHOLD',
    },
    probeInterval: {
      doc: 'During an outage of an upstream or a full Redis: delay before the first probe; it doubles after each failed probe',
      format: 'positive-duration',
      default: 1_000 as number | string,
      env: 'UPSTREAM_PROBE_INTERVAL',
    },
    probeMax: {
      doc: 'Longest delay between two probes of an upstream that is down (or of a full Redis)',
      format: 'positive-duration',
      default: 30_000 as number | string,
      env: 'UPSTREAM_PROBE_MAX',
    },
    code42Retries: {
      doc: 'Retries of one Code42 GET (5xx, 429, network errors) with backoff, inside a forward attempt or a poll, before it counts as a failure',
      format: 'nonneg-int',
      default: 4 as number | string,
      env: 'CODE42_RETRIES',
    },
  },
  sync: {
    trackUpdates: {
      doc: 'Push changes of a forwarded session (new events, higher severity, new rules, new state) to its incident',
      format: 'strict-boolean',
      default: true as boolean | string,
      env: 'TRACK_UPDATES',
    },
    stateSync: {
      doc: 'Closing both ways: both, to-code42 (XSOAR close -> Incydr state), to-xsoar (Incydr close -> XSOAR close) or off',
      format: ['both', 'to-code42', 'to-xsoar', 'off'],
      default: 'both',
      env: 'STATE_SYNC',
    },
    interval: {
      doc: 'How often XSOAR is asked for incidents closed since the last look',
      format: 'positive-duration',
      default: 60_000 as number | string,
      env: 'STATE_SYNC_INTERVAL',
    },
    closeReasonStates: {
      doc: 'XSOAR close reason -> Incydr session state, comma list of reason=STATE; * is any other reason',
      format: 'close-reason-map',
      default: 'False Positive=CLOSED_FP,Resolved=CLOSED_TP,*=CLOSED',
      env: 'STATE_SYNC_CLOSE_REASONS',
    },
    stateCloseReasons: {
      doc: 'Incydr closed state -> XSOAR close reason, comma list of STATE=reason',
      format: 'state-close-map',
      default: 'CLOSED_FP=False Positive,CLOSED_TP=Resolved,CLOSED_TP_BENIGN=Resolved,CLOSED=Other',
      env: 'STATE_SYNC_CLOSE_STATES',
    },
    reopenOnNewData: {
      doc: 'Reopen a closed incident when its session goes to OPEN_NEW_DATA (any other change to a closed incident only adds a note)',
      format: 'strict-boolean',
      default: true as boolean | string,
      env: 'REOPEN_ON_NEW_DATA',
    },
  },
};
