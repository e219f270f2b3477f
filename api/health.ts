/**
 * Health and metrics endpoints for orchestrators and Prometheus (CONTRACT.md §3): `/health/live` answers
 * whether the process should be restarted, `/health/ready` whether it should receive traffic (503 until
 * the view caught up with the end offsets seen at start), `/metrics` the registry in text format.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FeedMonitor } from './feed-monitor.js';
import type { Logger } from '../src/ops/logger.js';
import type { Metrics } from '../src/ops/metrics.js';
import { ApiErrorCode } from './codes.js';
import { APPLICATION_JSON } from './http/negotiate.js';
import { send, sendError } from './http/respond.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

// Probes must never be cached by a proxy between the orchestrator and us.
const NO_STORE = ['cache-control', 'no-store'];

/** `GET /health/live`: 200 while the feed loop is alive, else 503 with the reason. */
export function createLiveRoute(feed: FeedMonitor): Handler {
  return (_req, res) => {
    if (feed.live()) send(res, 200, APPLICATION_JSON, '{"status":"live"}', NO_STORE);
    else sendError(res, 503, ApiErrorCode.NotLive, feed.reason() ?? 'The feed is not running.', NO_STORE);
  };
}

/** `GET /health/ready`: 503 with the reason until the feed is ready, then 200. */
export function createReadyRoute(feed: FeedMonitor): Handler {
  return (_req, res) => {
    if (feed.ready()) send(res, 200, APPLICATION_JSON, '{"status":"ready"}', NO_STORE);
    else
      sendError(
        res,
        503,
        ApiErrorCode.NotReady,
        feed.reason() ?? 'The view has not caught up yet.',
        NO_STORE,
      );
  };
}

/** `GET /metrics`: Prometheus text exposition format from this instance's registry. */
export function createMetricsRoute(metrics: Metrics, logger: Logger): Handler {
  return (_req, res) => {
    metrics.registry.metrics().then(
      (text) => send(res, 200, metrics.registry.contentType, text),
      (error: unknown) => {
        logger.error({ err: error }, 'collecting metrics failed');
        sendError(res, 500, ApiErrorCode.InternalServerError, 'Unexpected error.');
      },
    );
  };
}
