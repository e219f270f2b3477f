/**
 * The `matview` command. Every subcommand validates its configuration first and fails with one
 * readable line (no stack trace) on bad input. Each command's module is imported when it runs: an operator
 * command does not load the server, the API and the Kafka client (scripts/build.mjs).
 */
import 'reflect-metadata';
import { isMatviewError } from '../errors.js';
import { loadConfig } from '../ops/config.js';
import { ExitCode, UsageError, type Print } from './args.js';

const USAGE = `Usage: matview <command>

Commands:
  serve                     consume the changelog topics and serve the view (what \`npm start\` runs)
  demo [--kafka]            write demo users/tweets/follows/likes traffic (to KAFKA_BROKERS with --kafka)
  rebuild [--wait] [--drain] [--timeout-ms N]
                            rebuild the view from the feed in a shadow, swapped in when caught up
                            (--drain: not ready meanwhile, so load balancers send reads elsewhere)
  verify [--shadow]         recompute every view from the stored rows; exit 1 naming each user that differs
  snapshot <file> [--force] write a consistent, compacted copy of the store and its offsets (safe while serving)
  restore <file> [--force]  start DATA_DIR from a snapshot; \`serve\` then resumes from its offsets
  topics create             create the missing dead-letter topics (<topic><DLQ_SUFFIX>) on KAFKA_BROKERS
  print-schema              print the GraphQL SDL (schema/schema.graphql)

Exit codes: 0 ok, 1 failure (verify: a view differs from its rows), 2 bad usage.
Configuration is read from the environment; see README.md "Configuration".`;

const print: Print = (line) => process.stdout.write(`${line}\n`);

/** Runs an operator command and sets the exit code without cutting stdout short (process.exit could). */
async function tool(
  run: (config: ReturnType<typeof loadConfig>, args: string[], out: Print) => Promise<ExitCode>,
  args: string[],
) {
  process.exitCode = await run(loadConfig(), args, print);
}

async function serve(): Promise<void> {
  const config = loadConfig();
  const [{ createLogger }, { startServer }] = await Promise.all([
    import('../ops/logger.js'),
    import('../wiring/runtime.js'),
  ]);
  const logger = createLogger(config.logLevel);
  const running = await startServer(config, logger);
  let stopping = false;
  const stop = (signal: string, code: number) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      logger.error({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown timed out, exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    force.unref();
    running.close().then(
      () => process.exit(code),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM', 0));
  process.on('SIGINT', () => stop('SIGINT', 0));
  void running.fatal.then(() => stop('feed-crash', 1));
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve();
    case 'demo':
      return (await import('./demo.js')).runDemo(loadConfig(), rest);
    case 'rebuild':
      return tool((await import('./rebuild.js')).runRebuild, rest);
    case 'verify':
      return tool((await import('./verify.js')).runVerify, rest);
    case 'snapshot':
      return tool((await import('./snapshot.js')).runSnapshot, rest);
    case 'restore':
      return tool((await import('./snapshot.js')).runRestore, rest);
    case 'topics':
      return tool((await import('./topics.js')).runTopics, rest);
    case 'print-schema': {
      const { printSchemaSdl } = await import('../../api/schema/print.js');
      process.stdout.write(printSchemaSdl());
      return;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return;
    default:
      console.error(`matview: unknown command "${command}"\n\n${USAGE}`);
      process.exit(ExitCode.Usage);
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  if (e instanceof UsageError) {
    console.error(`${e.message}\n\n${USAGE}`);
    process.exit(ExitCode.Usage);
  }
  // Expected failures (bad config, unusable data dir, port taken) get one line; anything else is a bug: show it.
  const listenProblem = describeListenError(e);
  if (isMatviewError(e)) console.error(`matview: ${e.message}`);
  else if (listenProblem !== undefined) console.error(`matview: ${listenProblem}`);
  else console.error('matview: unexpected error', e);
  process.exit(1);
});

/** The operator can fix these from configuration, so they get a sentence rather than a stack trace. */
function describeListenError(e: unknown): string | undefined {
  const err = e as NodeJS.ErrnoException & { address?: string; port?: number };
  if (err?.syscall !== 'listen') return undefined;
  const where = `${err.address ?? '?'}:${err.port ?? '?'}`;
  if (err.code === 'EADDRINUSE')
    return `cannot listen on ${where}: address already in use (set PORT to a free port)`;
  if (err.code === 'EACCES') return `cannot listen on ${where}: permission denied (use a PORT above 1023)`;
  if (err.code === 'EADDRNOTAVAIL') return `cannot listen on ${where}: address not available (check HOST)`;
  return `cannot listen on ${where}: ${err.code ?? err.message}`;
}
