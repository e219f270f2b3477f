/**
 * Subscription execution shared across watchers (issue 7, fan-out). graphql-js `subscribe` executes the
 * whole selection once per event per subscription: 10,000 watchers of a hot user meant 10,000 identical
 * executions of the same document against the same change. Here the event stream is created exactly as
 * graphql-js does (`createSourceEventStream`), but each event's result is remembered per (event object,
 * document, operation, variables that matter) and handed to every subscription asking for the same thing.
 *
 * Why the result depends on nothing else:
 * - the hub hands the SAME change object to every watcher of a user for one commit, and the same list (or
 *   totals) object to every state subscription reading that ranking and limit at one commit sequence
 *   (src/live/hub.ts); none of them ever mutates;
 * - only root fields listed in {@link SHAREABLE_ROOT_FIELDS} are shared: their resolvers return the event
 *   itself (api/schema/subscription-resolver.ts, dashboard-resolver.ts; `totalsChanged` maps the one
 *   non-object event, null, to a constant), so their arguments (`id`, `ids`, `by`, `limit`) do not affect
 *   the result given the event;
 * - every field below them is a plain property read (User, UserChange, ViewVersion, Totals: no context, no
 *   loader);
 * - variables used anywhere else (a directive's `if: $x`) are part of the key.
 * Results live as long as the change object does (a WeakMap), i.e. until every watcher has sent it.
 */
import type { EventDataWriter } from './fast-path/compile.js';
import {
  Kind,
  createSourceEventStream,
  execute,
  getOperationAST,
  visit,
  type ASTNode,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
} from 'graphql';

/** Root subscription fields whose resolver returns the event unchanged, whatever its arguments. */
export const SHAREABLE_ROOT_FIELDS: ReadonlySet<string> = new Set([
  'userChanged',
  'usersChanged',
  'topUsersChanged',
  'totalsChanged',
]);

/** graphql-js `subscribe`'s signature, as graphql-ws' `subscribe` option takes it. */
export type Subscribe = (args: ExecutionArgs) => Promise<AsyncIterable<ExecutionResult> | ExecutionResult>;

type Result = ExecutionResult | Promise<ExecutionResult>;

interface DocumentInfo {
  /** Small number standing for the document object in result keys. */
  readonly id: number;
  /** Per operation name: undefined when its results cannot be shared, else whether variables are in the key. */
  readonly operations: Map<string, { readonly variablesMatter: boolean } | undefined>;
  /** Per operation name: its compiled event writer, or undefined (graphql-js executes each event). */
  readonly compiled: Map<string, EventDataWriter | undefined>;
}

/**
 * Compiles an operation's events to JSON (api/fast-path/compile.ts `compileSubscriptionData`), or
 * undefined.
 */
export type CompileEvents = (
  document: DocumentNode,
  operationName: string | null | undefined,
) => EventDataWriter | undefined;

/**
 * A result whose JSON was written by a compiled plan rather than by JSON.stringify of an execution result:
 * `json` is the bytes graphql-js' result (with its extensions) would serialize to. `data` and `toJSON()` read
 * it back when asked; graphql-ws' path only sends it (api/ws-frames.ts takes `json` as it is).
 */
export class PrerenderedResult implements ExecutionResult {
  readonly json: string;
  /** As given (a graphql-js result has none unless added: `withExtensions`). */
  declare readonly extensions?: Record<string, unknown>;
  constructor(data: string, extensions: Record<string, unknown> | undefined) {
    this.json =
      extensions === undefined
        ? `{"data":${data}}`
        : `{"data":${data},"extensions":${JSON.stringify(extensions)}}`;
    if (extensions !== undefined)
      Object.defineProperty(this, 'extensions', { value: extensions, enumerable: true });
  }
  get data(): Record<string, unknown> | null {
    return this.toJSON().data ?? null;
  }
  toJSON(): ExecutionResult {
    return JSON.parse(this.json) as ExecutionResult;
  }
}

/**
 * Returns a drop-in for graphql-js `subscribe` that executes each event once per distinct (document,
 * operation, relevant variables). Documents are compared by identity: the WebSocket layer caches parsed
 * documents by query text, so every client sending the same text shares one DocumentNode. `extensionsOf`
 * gives each event's result its `extensions` (computed once per result, shared like it).
 */
export function createSharedSubscribe(
  extensionsOf?: (event: unknown) => Record<string, unknown>,
  compile?: CompileEvents,
): Subscribe {
  const documents = new WeakMap<DocumentNode, DocumentInfo>();
  const results = new WeakMap<object, Map<string, Result>>();
  let nextDocumentId = 0;

  const infoOf = (document: DocumentNode): DocumentInfo => {
    let info = documents.get(document);
    if (info === undefined)
      documents.set(document, (info = { id: nextDocumentId++, operations: new Map(), compiled: new Map() }));
    return info;
  };
  const shareKey = (args: ExecutionArgs): string | undefined => {
    const info = infoOf(args.document);
    const name = args.operationName ?? '';
    let shape = info.operations.get(name);
    if (!info.operations.has(name))
      info.operations.set(name, (shape = analyse(args.document, args.operationName)));
    if (shape === undefined) return undefined;
    const head = `${info.id}\u0000${name}`;
    return shape.variablesMatter ? `${head}\u0000${JSON.stringify(args.variableValues ?? null)}` : head;
  };
  const compiledFor = (args: ExecutionArgs): EventDataWriter | undefined => {
    if (compile === undefined) return undefined;
    const info = infoOf(args.document);
    const name = args.operationName ?? '';
    if (!info.compiled.has(name)) info.compiled.set(name, compile(args.document, args.operationName));
    return info.compiled.get(name);
  };

  return async (args) => {
    const stream = await createSourceEventStream(args);
    if (!isAsyncIterable(stream)) return stream;
    const executeEvent =
      extensionsOf === undefined
        ? (event: unknown): Result => execute({ ...args, rootValue: event })
        : (event: unknown): Result => {
            const extensions = extensionsOf(event);
            const result = execute({ ...args, rootValue: event });
            return isPromise(result)
              ? result.then((r) => withExtensions(r, extensions))
              : withExtensions(result, extensions);
          };
    // A compiled plan writes the event's JSON directly; an event it cannot write exactly is executed.
    const compiled = compiledFor(args);
    const run =
      compiled === undefined
        ? executeEvent
        : (event: unknown): Result => {
            const data = compiled(event);
            return data === undefined
              ? executeEvent(event)
              : new PrerenderedResult(data, extensionsOf?.(event));
          };
    const key = shareKey(args);
    if (key === undefined) return mapEvents(stream, run);
    return mapEvents(stream, (event) => {
      if (typeof event !== 'object' || event === null) return run(event);
      let byKey = results.get(event);
      if (byKey === undefined) results.set(event, (byKey = new Map()));
      let result = byKey.get(key);
      if (result === undefined) byKey.set(key, (result = run(event)));
      return result;
    });
  };
}

/**
 * Whether an operation's results may be shared, and whether its variables must be part of the key: any
 * variable used outside the root field's own arguments (e.g. `@include(if: $x)` in the selection) does.
 */
function analyse(
  document: DocumentNode,
  operationName: string | null | undefined,
): { readonly variablesMatter: boolean } | undefined {
  const operation = getOperationAST(document, operationName);
  if (operation?.operation !== 'subscription') return undefined;
  const roots = operation.selectionSet.selections;
  // One plain root field (validation guarantees one field; a fragment spread at the root is not shared).
  const root = roots.length === 1 ? roots[0] : undefined;
  if (root?.kind !== Kind.FIELD || !SHAREABLE_ROOT_FIELDS.has(root.name.value)) return undefined;
  const rootArguments = new Set<ASTNode>(root.arguments ?? []);
  let variablesMatter = false;
  const visitor = {
    Argument: (node: ASTNode) => (rootArguments.has(node) ? false : undefined),
    Variable: () => {
      variablesMatter = true;
    },
    VariableDefinition: () => false,
  };
  visit(operation, visitor);
  for (const definition of document.definitions)
    if (definition.kind === Kind.FRAGMENT_DEFINITION) visit(definition, visitor);
  return { variablesMatter };
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });

/** graphql-js `mapAsyncIterator`: maps each event; a mapping failure closes the source and rethrows. */
function mapEvents(
  source: AsyncIterable<unknown>,
  map: (event: unknown) => Result,
): AsyncIterableIterator<ExecutionResult> {
  const iterator = source[Symbol.asyncIterator]();
  const close = async (): Promise<IteratorReturnResult<undefined>> => {
    await iterator.return?.();
    return DONE;
  };
  const settle = (value: ExecutionResult): IteratorYieldResult<ExecutionResult> => ({ value, done: false });
  const fail = async (error: unknown): Promise<never> => {
    await close().catch(() => undefined);
    throw error;
  };
  const onStep = (
    step: IteratorResult<unknown>,
  ): IteratorResult<ExecutionResult> | Promise<IteratorResult<ExecutionResult>> => {
    if (step.done === true) return DONE;
    const result = map(step.value);
    return isPromise(result) ? result.then(settle) : settle(result);
  };
  return {
    // One `.then` per event rather than an async function with two awaits: fewer promises per watcher.
    next() {
      return iterator.next().then(onStep).catch(fail);
    },
    return: close,
    throw: close,
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

/** `result` with `extensions` added to its own (graphql-js results have none unless a resolver set them). */
export function withExtensions(
  result: ExecutionResult,
  extensions: Record<string, unknown>,
): ExecutionResult {
  return { ...result, extensions: { ...result.extensions, ...extensions } };
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}
