/**
 * The arguments of `topUsers(by, limit)` for the fast path, read the way graphql-js coerces them (GraphQL
 * spec §6.4.1 CoerceArgumentValues): an enum literal or a variable holding a value's name for `by`; an Int
 * literal, a variable, the variable's default or the argument's default (10) for `limit`. Anything graphql-js
 * would coerce differently or reject (a non-string ranking, a float, an explicit null, a limit outside 1..100
 * that the resolver answers with LIMIT_OUT_OF_RANGE) makes the reader return undefined: Apollo answers.
 */
import { Kind, type FieldNode, type ValueNode } from 'graphql';
import { RANKINGS, type Ranking } from '../../src/views/top-users.js';
import { DEFAULT_TOP_LIMIT, isTopLimit } from '../schema/dashboard-reads.js';

/** Variables of one request, as sent (compile.ts `Variables`). */
type Variables = Readonly<Record<string, unknown>>;

export interface TopUsersArgs {
  readonly by: Ranking;
  readonly limit: number;
}

const isRanking = (v: unknown): v is Ranking =>
  typeof v === 'string' && (RANKINGS as readonly string[]).includes(v);

/** A reader of one argument's value: `absent` when the argument (or its variable) was not given. */
function compileArgument(
  node: ValueNode | undefined,
  defaults: ReadonlyMap<string, unknown>,
): ((variables: Variables | undefined) => unknown) | undefined {
  if (node === undefined) return () => ABSENT;
  if (node.kind === Kind.ENUM) return () => node.value;
  if (node.kind === Kind.INT) {
    const n = Number(node.value);
    return () => n;
  }
  if (node.kind !== Kind.VARIABLE) return undefined;
  const name = node.name.value;
  const has = defaults.has(name);
  const fallback = defaults.get(name);
  return (variables) => {
    const v = variables?.[name];
    return v !== undefined ? v : has ? fallback : ABSENT;
  };
}

const ABSENT = Symbol('absent');

/** The `topUsers` arguments of `field`, or undefined when the fast path does not read them. */
export function compileTopUsersArgs(
  field: FieldNode,
  defaults: ReadonlyMap<string, unknown>,
): ((variables: Variables | undefined) => TopUsersArgs | undefined) | undefined {
  const argument = (name: string) => field.arguments?.find((a) => a.name.value === name)?.value;
  const by = compileArgument(argument('by'), defaults);
  const limit = compileArgument(argument('limit'), defaults);
  if (by === undefined || limit === undefined) return undefined;
  return (variables) => {
    const ranking = by(variables);
    const given = limit(variables);
    const n = given === ABSENT ? DEFAULT_TOP_LIMIT : given;
    return isRanking(ranking) && isTopLimit(n) ? { by: ranking, limit: n } : undefined;
  };
}
