/** Structured JSON logs (pino): one line per lifecycle event, nothing per record at info level. */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { service: 'matview', ...bindings }, timestamp: pino.stdTimeFunctions.isoTime });
}

/** A logger that drops everything: for tests and pure helpers. */
export const silentLogger: Logger = pino({ level: 'silent' });
