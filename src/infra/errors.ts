/**
 * Base class of every error this project throws on purpose. Each subclass has a stable `code`
 * that logs, metrics and the failed-job reasons use, and keeps the underlying `cause`.
 */
export class ForwarderError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = this.constructor.name;
    this.code = code;
  }
}
