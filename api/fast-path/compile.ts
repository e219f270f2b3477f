/**
 * Compiles a validated query over `user` / `users` into a function that reads the store synchronously and
 * writes the response JSON directly — the same bytes Apollo + graphql-js would send (GraphQL spec §6
 * "Execution": CollectFields merges fields by response key in document order; §7.1 serialized map order
 * follows it). Anything this compiler does not handle makes it return undefined, and at run time any value
 * that would produce a GraphQL error makes the plan return undefined: Apollo then answers, errors and all.
 *
 * Handled: one query operation; root fields `user`, `users`, `feedStatus`, `topUsers`, `totals`,
 * `__typename`; aliases; named and inline fragments (type conditions resolved like graphql-js
 * `doesFragmentConditionMatch`); id arguments as literals, variables (with defaults) or lists of those;
 * `topUsers` arguments as literals or variables (dashboard-args.ts); enum and list fields. Not handled:
 * directives anywhere, other root fields, ids that graphql-js would coerce from a variable (numbers, one id
 * for a list).
 *
 * `topUsers` and `totals` answer exactly what their resolvers answer because both call the same functions
 * (api/schema/dashboard-reads.ts): one O(limit) ranking read plus the users' views, or the stored totals
 * (zeros before the first row). A dashboard polling its leaderboards over HTTP is the read-heavy case this
 * path exists for, and Apollo's per-request cost would dwarf a 10-user read.
 */
import {
  Kind,
  isAbstractType,
  isEnumType,
  isInputType,
  isListType,
  isNonNullType,
  isObjectType,
  isScalarType,
  typeFromAST,
  valueFromAST,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  getOperationAST,
  type GraphQLObjectType,
  type GraphQLOutputType,
  type GraphQLSchema,
  type NamedTypeNode,
  type SelectionSetNode,
  type ValueNode,
} from 'graphql';
import type { FeedMonitor } from '../feed-monitor.js';
import type { ViewReader } from '../../src/store/types.js';
import { readTopUsers, totalsOrEmpty } from '../schema/dashboard-reads.js';
import { compileTopUsersArgs } from './dashboard-args.js';
import { isSpliceable, selectsRestFields } from './splice.js';
import {
  writeBoolean,
  writeDateTime,
  writeFloat,
  writeInt,
  writeString,
  type LeafWriter,
} from './serialize.js';

/** Variables of one request, as sent. */
export type Variables = Readonly<Record<string, unknown>>;

/** A compiled operation. */
export interface FastPlan {
  /** The operation's name, or undefined when anonymous. */
  readonly operationName: string | undefined;
  /**
   * The whole response body (`{"data":…}`, the extensions if any, and Apollo's trailing newline), or
   * undefined: ask Apollo.
   */
  run(variables: Variables | undefined): string | undefined;
}

/** Writes one value; handles null itself (nullable → `null`, non-null → give up). */
type ValueWriter = (value: unknown) => string | undefined;

/** What a value step's read returns when Apollo must answer (an argument graphql-js would reject). */
const GIVE_UP = Symbol('give up');

/**
 * Object types whose fields are all plain property reads (type-graphql default resolvers); `FeedStatus` is
 * `FeedMonitor.snapshot()` as is (api/schema/feed-status-resolver.ts).
 */
const FAST_TYPES: ReadonlySet<string> = new Set([
  'User',
  'UserChange',
  'ViewVersion',
  'SourcePosition',
  'FeedStatus',
  'PartitionStatus',
  'Totals',
]);

const LEAVES: Readonly<Record<string, LeafWriter>> = {
  String: writeString,
  ID: writeString,
  Int: writeInt,
  Float: writeFloat,
  Boolean: writeBoolean,
  DateTime: writeDateTime,
};

interface Context {
  readonly schema: GraphQLSchema;
  readonly fragments: ReadonlyMap<string, FragmentDefinitionNode>;
}

/**
 * Root subscription fields whose resolver returns the event unchanged, with an object or list event
 * (api/schema/subscription-resolver.ts, dashboard-resolver.ts). `totalsChanged` maps its event, so it is not
 * here.
 */
const EVENT_ROOT_FIELDS: ReadonlySet<string> = new Set(['userChanged', 'usersChanged', 'topUsersChanged']);

/**
 * One subscription event's `data` as JSON: the same bytes graphql-js' `execute` of the subscription's
 * selection over that event gives under `data` (JSON.stringify), or undefined: execute it.
 */
export type EventDataWriter = (event: unknown) => string | undefined;

/**
 * Compiles a validated subscription (`operationName` picks it as graphql-js does) whose one root field is
 * in {@link EVENT_ROOT_FIELDS} into an {@link EventDataWriter}, or returns undefined (directives, other root
 * fields, types whose fields are not plain reads). Each event of a dashboard's subscription otherwise runs
 * graphql-js' execute and then JSON.stringify: at 5k records/s over 1,000 subscriptions that was ~12 % of
 * the event loop (a CPU profile of the freshness bench).
 */
export function compileSubscriptionData(
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | null | undefined,
): EventDataWriter | undefined {
  const operation = getOperationAST(document, operationName);
  if (operation?.operation !== 'subscription') return undefined;
  if (operation.directives !== undefined && operation.directives.length > 0) return undefined;
  const subscriptionType = schema.getSubscriptionType();
  if (subscriptionType === null || subscriptionType === undefined) return undefined;
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const d of document.definitions)
    if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
  const ctx: Context = { schema, fragments };
  const grouped = collectFields(ctx, subscriptionType, [operation.selectionSet]);
  if (grouped === undefined || grouped.size !== 1) return undefined;
  const [key, nodes] = [...grouped][0]!;
  const name = nodes[0]!.name.value;
  const field = subscriptionType.getFields()[name];
  if (!EVENT_ROOT_FIELDS.has(name) || field === undefined) return undefined;
  const write = compileValue(ctx, field.type, nodes);
  if (write === undefined) return undefined;
  const prefix = `{${JSON.stringify(key)}:`;
  return (event) => {
    const value = write(event);
    return value === undefined ? undefined : `${prefix}${value}}`;
  };
}

/** Compiles `document` (already valid for `schema`) or returns undefined when it is not fast-path material. */
export function compileFastPlan(
  schema: GraphQLSchema,
  document: DocumentNode,
  reader: ViewReader,
  maxIds: number,
  feed?: Pick<FeedMonitor, 'snapshot'>,
  extensions?: () => string,
): FastPlan | undefined {
  const operations = document.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION);
  const operation = operations[0];
  if (operations.length !== 1 || operation === undefined || operation.operation !== 'query') return undefined;
  if (operation.directives !== undefined && operation.directives.length > 0) return undefined;
  const queryType = schema.getQueryType();
  const userType = schema.getType('User');
  if (queryType === null || queryType === undefined || !isObjectType(userType)) return undefined;

  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const d of document.definitions)
    if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
  const ctx: Context = { schema, fragments };

  const defaults = new Map<string, unknown>();
  for (const definition of operation.variableDefinitions ?? []) {
    if (definition.directives !== undefined && definition.directives.length > 0) return undefined;
    if (definition.defaultValue !== undefined) {
      const type = typeFromAST(schema, definition.type);
      if (!isInputType(type)) return undefined;
      defaults.set(definition.variable.name.value, valueFromAST(definition.defaultValue, type));
    }
  }

  const grouped = collectFields(ctx, queryType, [operation.selectionSet]);
  if (grouped === undefined) return undefined;
  const steps: RootStep[] = [];
  for (const [key, nodes] of grouped) {
    const field = nodes[0] as FieldNode;
    const prefix = `${steps.length === 0 ? '' : ','}${JSON.stringify(key)}:`;
    const name = field.name.value;
    if (name === '__typename') {
      steps.push({ kind: 'typename', prefix, text: JSON.stringify(queryType.name) });
      continue;
    }
    if (name === 'feedStatus' || name === 'totals' || name === 'topUsers') {
      const type = queryType.getFields()[name]?.type;
      const write = type === undefined ? undefined : compileValue(ctx, type, nodes);
      const read = readValue(name, field, defaults, reader, feed);
      if (write === undefined || read === undefined) return undefined;
      steps.push({ kind: 'value', prefix, read, write });
      continue;
    }
    if (name !== 'user' && name !== 'users') return undefined;
    const writeUser = compileObject(ctx, userType, nodes);
    if (writeUser === undefined) return undefined;
    const argument = field.arguments?.find((a) => a.name.value === (name === 'user' ? 'id' : 'ids'));
    if (argument === undefined) return undefined;
    const selection = selectionOf(ctx, userType, nodes) ?? [];
    // Without `version` in the selection the reads skip parsing it (about half of decoding a view).
    const versioned = selection.some((f) => f.name === 'version');
    if (name === 'user') {
      const readId = compileId(argument.value, defaults);
      if (readId === undefined) return undefined;
      const rest = selectsRestFields(selection);
      steps.push({ kind: 'user', prefix, readId, writeUser, rest, versioned });
    } else {
      const readIds = compileIds(argument.value, defaults);
      if (readIds === undefined) return undefined;
      steps.push({ kind: 'users', prefix, readIds, writeUser, versioned });
    }
  }
  const only = steps.length === 1 ? steps[0] : undefined;
  const versioned = steps.some((s) => (s.kind === 'user' || s.kind === 'users') && s.versioned);
  // The common `{ user(id) {…} }` is one getUser; anything else reads every id with ONE getUsers,
  // like the DataLoader does for Apollo.
  const body =
    only?.kind === 'user'
      ? (variables: Variables | undefined) => runSingle(only, reader, variables)
      : (variables: Variables | undefined) => runBatched(steps, reader, maxIds, variables, versioned);
  return {
    operationName: operation.name?.value,
    run:
      extensions === undefined
        ? (variables) => {
            const data = body(variables);
            return data === undefined ? undefined : `${data}}\n`;
          }
        : (variables) => {
            // Taken in the same synchronous stretch as the reads: the commit they see, exactly (as-of.ts).
            const tail = extensions();
            const data = body(variables);
            return data === undefined ? undefined : `${data}${tail}}\n`;
          },
  };
}

type RootStep =
  | { readonly kind: 'typename'; readonly prefix: string; readonly text: string }
  | {
      readonly kind: 'value';
      readonly prefix: string;
      /** The field's value, or GIVE_UP. */
      readonly read: (variables: Variables | undefined) => unknown;
      readonly write: ValueWriter;
    }
  | {
      readonly kind: 'user';
      readonly prefix: string;
      readonly readId: (variables: Variables | undefined) => string | undefined;
      readonly writeUser: ValueWriter;
      /** The selection is exactly the REST object's fields: the stored bytes can be sent (splice.ts). */
      readonly rest: boolean;
      /** The selection asks for `version`. */
      readonly versioned: boolean;
    }
  | {
      readonly kind: 'users';
      readonly prefix: string;
      readonly readIds: (variables: Variables | undefined) => readonly string[] | undefined;
      readonly writeUser: ValueWriter;
      readonly versioned: boolean;
    };

/** How a root field that is one value (not user/users) is read, or undefined when it is not ours. */
function readValue(
  name: string,
  field: FieldNode,
  defaults: ReadonlyMap<string, unknown>,
  reader: ViewReader,
  feed: Pick<FeedMonitor, 'snapshot'> | undefined,
): ((variables: Variables | undefined) => unknown) | undefined {
  if (name === 'feedStatus') return feed === undefined ? undefined : () => feed.snapshot();
  if (name === 'totals') return () => totalsOrEmpty(reader.totals());
  const args = compileTopUsersArgs(field, defaults);
  if (args === undefined) return undefined;
  return (variables) => {
    const given = args(variables);
    return given === undefined ? GIVE_UP : readTopUsers(reader, given.by, given.limit);
  };
}

/** `{"data":{…}` (the response object is left open for the extensions). */
function runSingle(
  step: Extract<RootStep, { kind: 'user' }>,
  reader: ViewReader,
  variables: Variables | undefined,
): string | undefined {
  const id = step.readId(variables);
  if (id === undefined) return undefined;
  if (step.rest) {
    const bytes = reader.getUserJson(id);
    if (bytes === undefined) return `{"data":{${step.prefix}null}`;
    const json = bytes.toString();
    if (isSpliceable(json)) return `{"data":{${step.prefix}${json}}`;
  }
  const user = step.versioned ? reader.getUser(id) : reader.getUsersUnversioned([id])[0];
  const part = user === undefined ? 'null' : step.writeUser(user);
  return part === undefined ? undefined : `{"data":{${step.prefix}${part}}`;
}

function runBatched(
  steps: readonly RootStep[],
  reader: ViewReader,
  maxIds: number,
  variables: Variables | undefined,
  versioned: boolean,
): string | undefined {
  const ids: string[] = [];
  const counts: number[] = [];
  for (const step of steps) {
    if (step.kind === 'user') {
      const id = step.readId(variables);
      if (id === undefined) return undefined;
      ids.push(id);
    } else if (step.kind === 'users') {
      const list = step.readIds(variables);
      if (list === undefined || list.length > maxIds) return undefined;
      for (const id of list) ids.push(id);
      counts.push(list.length);
    }
  }
  const found: readonly (object | undefined)[] =
    ids.length === 0 ? [] : versioned ? reader.getUsers(ids) : reader.getUsersUnversioned(ids);
  let at = 0;
  let list = 0;
  let out = '{"data":{';
  for (const step of steps) {
    let part: string | undefined;
    if (step.kind === 'typename') part = step.text;
    else if (step.kind === 'value') {
      const value = step.read(variables);
      part = value === GIVE_UP ? undefined : step.write(value);
    } else if (step.kind === 'user') {
      const user = found[at++];
      part = user === undefined ? 'null' : step.writeUser(user);
    } else {
      const count = counts[list++] as number;
      part = writeUserList(found, at, at + count, step.writeUser);
      at += count;
    }
    if (part === undefined) return undefined;
    out += step.prefix + part;
  }
  return `${out}}`;
}

function writeUserList(
  users: readonly (object | undefined)[],
  from: number,
  to: number,
  writeUser: ValueWriter,
): string | undefined {
  let out = '[';
  for (let i = from; i < to; i++) {
    const user = users[i];
    const part = user === undefined ? 'null' : writeUser(user);
    if (part === undefined) return undefined;
    out += i === from ? part : `,${part}`;
  }
  return `${out}]`;
}

/** GraphQL spec §6.3.2 CollectFields for one object type, without directives. */
function collectFields(
  ctx: Context,
  type: GraphQLObjectType,
  selectionSets: readonly SelectionSetNode[],
): Map<string, FieldNode[]> | undefined {
  const grouped = new Map<string, FieldNode[]>();
  const visited = new Set<string>();
  const visit = (set: SelectionSetNode): boolean => {
    for (const selection of set.selections) {
      if (selection.directives !== undefined && selection.directives.length > 0) return false;
      if (selection.kind === Kind.FIELD) {
        const key = selection.alias?.value ?? selection.name.value;
        const list = grouped.get(key);
        if (list === undefined) grouped.set(key, [selection]);
        else list.push(selection);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        if (applies(ctx, selection.typeCondition, type) && !visit(selection.selectionSet)) return false;
      } else {
        const name = selection.name.value;
        if (visited.has(name)) continue;
        visited.add(name);
        const fragment = ctx.fragments.get(name);
        if (fragment === undefined) return false;
        if (fragment.directives !== undefined && fragment.directives.length > 0) return false;
        if (applies(ctx, fragment.typeCondition, type) && !visit(fragment.selectionSet)) return false;
      }
    }
    return true;
  };
  for (const set of selectionSets) if (!visit(set)) return undefined;
  return grouped;
}

function applies(ctx: Context, condition: NamedTypeNode | undefined, type: GraphQLObjectType): boolean {
  if (condition === undefined) return true;
  const conditionType = ctx.schema.getType(condition.name.value);
  if (conditionType === type) return true;
  return isAbstractType(conditionType) && ctx.schema.isSubType(conditionType, type);
}

/** CollectFields over the merged sub-selections of `nodes` (the fields selected on one object value). */
function collectSubfields(
  ctx: Context,
  type: GraphQLObjectType,
  nodes: readonly FieldNode[],
): Map<string, FieldNode[]> | undefined {
  const sets: SelectionSetNode[] = [];
  for (const node of nodes) if (node.selectionSet !== undefined) sets.push(node.selectionSet);
  return collectFields(ctx, type, sets);
}

/** The merged sub-selection of `nodes` on `type`: response key, field name and whether it is a leaf. */
function selectionOf(
  ctx: Context,
  type: GraphQLObjectType,
  nodes: readonly FieldNode[],
): { key: string; name: string; leaf: boolean }[] | undefined {
  const grouped = collectSubfields(ctx, type, nodes);
  if (grouped === undefined) return undefined;
  return [...grouped].map(([key, fieldNodes]) => ({
    key,
    name: (fieldNodes[0] as FieldNode).name.value,
    leaf: fieldNodes.every((n) => n.selectionSet === undefined),
  }));
}

/** Writer for an object of `type` with the merged sub-selections of `nodes`. */
function compileObject(
  ctx: Context,
  type: GraphQLObjectType,
  nodes: readonly FieldNode[],
): ValueWriter | undefined {
  if (!FAST_TYPES.has(type.name)) return undefined;
  const grouped = collectSubfields(ctx, type, nodes);
  if (grouped === undefined) return undefined;
  const prefixes: string[] = [];
  const names: string[] = [];
  const writers: ValueWriter[] = [];
  const fields = type.getFields();
  for (const [key, fieldNodes] of grouped) {
    const name = (fieldNodes[0] as FieldNode).name.value;
    prefixes.push(`${writers.length === 0 ? '' : ','}${JSON.stringify(key)}:`);
    names.push(name);
    if (name === '__typename') {
      const typename = JSON.stringify(type.name);
      writers.push(() => typename);
      continue;
    }
    const field = fields[name];
    if (field === undefined || field.args.length > 0) return undefined;
    const writer = compileValue(ctx, field.type, fieldNodes);
    if (writer === undefined) return undefined;
    writers.push(writer);
  }
  const count = writers.length;
  return (value) => {
    if (typeof value !== 'object' || value === null) return undefined;
    const source = value as Readonly<Record<string, unknown>>;
    let out = '{';
    for (let i = 0; i < count; i++) {
      const part = (writers[i] as ValueWriter)(source[names[i] as string]);
      if (part === undefined) return undefined;
      out += (prefixes[i] as string) + part;
    }
    return `${out}}`;
  };
}

function compileValue(
  ctx: Context,
  type: GraphQLOutputType,
  nodes: readonly FieldNode[],
): ValueWriter | undefined {
  const nonNull = isNonNullType(type);
  const inner = isNonNullType(type) ? type.ofType : type;
  let write: ValueWriter | undefined;
  if (isListType(inner)) write = compileList(compileValue(ctx, inner.ofType, nodes));
  else if (isScalarType(inner)) write = LEAVES[inner.name];
  else if (isEnumType(inner)) {
    // graphql-js serializes an enum by its internal value; anything else is an error Apollo reports.
    const names = new Map(inner.getValues().map((v) => [v.value as unknown, JSON.stringify(v.name)]));
    write = (v) => names.get(v);
  } else if (isObjectType(inner)) write = compileObject(ctx, inner, nodes);
  if (write === undefined) return undefined;
  const present = write;
  // graphql-js CompleteValue: null on a non-null field is an error (Apollo answers it); else `null`.
  return nonNull
    ? (v) => (v === null || v === undefined ? undefined : present(v))
    : (v) => (v === null || v === undefined ? 'null' : present(v));
}

/** A list of `item`s: graphql-js CompleteListValue over an array (other iterables: Apollo). */
function compileList(item: ValueWriter | undefined): ValueWriter | undefined {
  if (item === undefined) return undefined;
  return (value) => {
    if (!Array.isArray(value)) return undefined;
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      const part = item(value[i]);
      if (part === undefined) return undefined;
      out += i === 0 ? part : `,${part}`;
    }
    return `${out}]`;
  };
}

/** `ID!` argument: a literal is fixed at compile time; a variable must be a string (else Apollo coerces). */
function compileId(
  node: ValueNode,
  defaults: ReadonlyMap<string, unknown>,
): ((variables: Variables | undefined) => string | undefined) | undefined {
  if (node.kind === Kind.STRING || node.kind === Kind.INT) {
    const id = node.value;
    return () => id;
  }
  if (node.kind !== Kind.VARIABLE) return undefined;
  const name = node.name.value;
  const fallback = defaults.get(name);
  return (variables) => {
    const v = variables?.[name];
    if (v === undefined) return typeof fallback === 'string' ? fallback : undefined;
    return typeof v === 'string' ? v : undefined;
  };
}

/** `[ID!]!` argument: a list literal of ids or variables, or one variable holding an array of strings. */
function compileIds(
  node: ValueNode,
  defaults: ReadonlyMap<string, unknown>,
): ((variables: Variables | undefined) => readonly string[] | undefined) | undefined {
  if (node.kind === Kind.LIST) {
    const items = node.values.map((item) => compileId(item, defaults));
    if (items.some((item) => item === undefined)) return undefined;
    const readers = items as ((variables: Variables | undefined) => string | undefined)[];
    return (variables) => {
      const ids = new Array<string>(readers.length);
      for (let i = 0; i < readers.length; i++) {
        const id = (readers[i] as (typeof readers)[number])(variables);
        if (id === undefined) return undefined;
        ids[i] = id;
      }
      return ids;
    };
  }
  if (node.kind === Kind.STRING || node.kind === Kind.INT) {
    // Input coercion (GraphQL spec §3.11): a single value for a list type is a list of one.
    const one = [node.value];
    return () => one;
  }
  if (node.kind !== Kind.VARIABLE) return undefined;
  const name = node.name.value;
  const fallback = defaults.get(name);
  return (variables) => {
    const given = variables?.[name];
    // An explicit null is not "absent": graphql-js rejects it for a non-null argument.
    const v = given === undefined ? fallback : given;
    if (!Array.isArray(v)) return undefined;
    for (const id of v) if (typeof id !== 'string') return undefined;
    return v as string[];
  };
}
