/** The shape of one readiness check, shared by /readyz and the parts that contribute a check to it. */
export interface CheckResult {
  ok: boolean;
  detail: string;
  /**
   * A condition of the whole deployment (an upstream down, Redis full) that the daemon waits out by
   * itself: reported here, but it does not make the pod unready (see docs/operations.md on readiness).
   */
  degraded?: boolean;
  /** When the condition began (ISO time), for degraded checks. */
  since?: string;
}

/** A check contributed by a part of the daemon (the sync's refused writes, say): reported as `name`. */
export interface ReadinessSource {
  name: string;
  check(now: number): Promise<CheckResult>;
}

