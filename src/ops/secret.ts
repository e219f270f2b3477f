/**
 * A configuration value that must never be printed: a SASL password, a TLS private key, an OAuth token
 * command that may embed a client secret. Every way a value usually leaks (string interpolation, JSON,
 * pino's serializers, `util.inspect`, a frozen config dumped by a test) shows `<redacted>`; only
 * `reveal()`, called where the value is handed to the Kafka client, returns it.
 */
import { inspect } from 'node:util';

const REDACTED = '<redacted>';

export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  /** The value itself: only for the client that needs it, never for a log, an error or a response. */
  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return `Secret(${REDACTED})`;
  }
}
