/**
 * Argument parsing shared by the operator commands: `node:util` parseArgs (strict, so a typo'd flag is an
 * error rather than silently ignored) and the usage error that makes `matview` exit 2.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Bad command-line usage: `matview` prints the message and the usage text and exits 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Where a command writes its report (stdout in the CLI, an array in tests). */
export type Print = (line: string) => void;

/** Process exit codes of the operator commands. */
export const ExitCode = {
  /** Done; for `verify`: the store matches its rows. */
  Ok: 0,
  /** Failed; for `verify`: at least one user differs (each is named). */
  Failed: 1,
  /** Bad usage (unknown flag, missing argument). */
  Usage: 2,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export function parse<T extends NonNullable<ParseArgsConfig['options']>>(
  command: string,
  args: readonly string[],
  options: T,
  positionals: number,
) {
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], options, allowPositionals: positionals > 0, strict: true });
  } catch (e) {
    throw new UsageError(`matview ${command}: ${(e as Error).message}`);
  }
  if (parsed.positionals.length !== positionals) {
    throw new UsageError(
      `matview ${command}: expected ${positionals} argument(s), got ${parsed.positionals.length}`,
    );
  }
  return parsed;
}

/** A duration flag in milliseconds. */
export function millis(command: string, flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0)
    throw new UsageError(
      `matview ${command}: --${flag} must be a positive integer (milliseconds), got "${value}"`,
    );
  return n;
}
