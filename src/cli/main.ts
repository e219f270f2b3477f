/**
 * The `matview` command. Every subcommand validates its configuration first and fails with one
 * readable line (no stack trace) on bad input.
 */
import 'reflect-metadata';
import { isMatviewError } from '../errors.js';
import { loadConfig } from '../ops/config.js';
import { createLogger } from '../ops/logger.js';
import { startServer } from '../ops/runtime.js';
import { runDemo } from './demo.js';

const USAGE = `Usage: matview <command>

Commands:
  serve          consume the changelog topics and serve the view (what \`npm start\` runs)
  demo [--kafka] write demo users/tweets/follows/likes traffic (to KAFKA_BROKERS with --kafka)
  print-schema   print the GraphQL SDL (schema/schema.graphql)

Configuration is read from the environment; see README.md "Configuration".`;

async function serve(): Promise<void> {
  const config = loadConfig();
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
      return runDemo(loadConfig(), rest);
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
      process.exit(2);
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  // Expected failures (bad config, unusable data dir) get one line; anything else is a bug: show it.
  if (isMatviewError(e)) console.error(`matview: ${e.message}`);
  else console.error('matview: unexpected error', e);
  process.exit(1);
});
