/**
 * WebSocket close codes a client of `/graphql` can see, one documented place (graphql-ws `CloseCode` in
 * `src/common.ts`, the protocol's PROTOCOL.md, and RFC 6455 §7.4.1 for the 1xxx ones). Clients branch on
 * these numbers, so they are never renumbered; tests pin each one.
 */
import { CloseCode } from 'graphql-ws';

/** Close codes used on the subscription socket, with why the server sends each. */
export const LiveCloseCode = {
  /** RFC 6455: the server is shutting down (graphql-ws `useServer` dispose); reconnect elsewhere or later. */
  GoingAway: 1001,
  /** RFC 6455: a frame was larger than `WS_MAX_PAYLOAD_BYTES` (enforced by `ws` before graphql-ws sees it). */
  MessageTooBig: 1009,
  /** A frame is not a valid graphql-transport-ws message (not JSON, unknown type, bad shape). */
  BadRequest: CloseCode.BadRequest,
  /** `subscribe` arrived before the server acknowledged `connection_init`. */
  Unauthorized: CloseCode.Unauthorized,
  /** `connection_init` was refused: `WS_AUTH_TOKENS` is set and the bearer token is missing or unknown. */
  Forbidden: CloseCode.Forbidden,
  /** The client did not ask for the `graphql-transport-ws` subprotocol. */
  SubprotocolNotAcceptable: CloseCode.SubprotocolNotAcceptable,
  /** No `connection_init` within `WS_INIT_TIMEOUT_MS` of opening the socket. */
  ConnectionInitialisationTimeout: CloseCode.ConnectionInitialisationTimeout,
  /** A `subscribe` reused the id of an operation still running on this connection. */
  SubscriberAlreadyExists: CloseCode.SubscriberAlreadyExists,
  /** A second `connection_init` on the same connection. */
  TooManyInitialisationRequests: CloseCode.TooManyInitialisationRequests,
  /** Something failed on the server; the reason is generic outside development mode. */
  InternalServerError: CloseCode.InternalServerError,
  /**
   * The peer did not answer a ping within `WS_KEEPALIVE_MS` (gone, or reading so slowly that the ping waited
   * behind that much data). The reason says to resubscribe with `after` (the last event's `version.sequence`):
   * nothing is lost. graphql-ws clients reconnect on it.
   */
  KeepAliveTimeout: 4410,
} as const;

/** One of the close codes above. */
export type LiveCloseCode = (typeof LiveCloseCode)[keyof typeof LiveCloseCode];
