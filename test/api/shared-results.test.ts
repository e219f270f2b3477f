/**
 * Subscription results are executed once per (event, document, operation, relevant variables) and shared by
 * every subscription asking for the same thing (api/shared-results.ts); anything else executes per
 * subscription, exactly like graphql-js `subscribe`.
 */
import {
  buildSchema,
  parse,
  subscribe,
  type ExecutionArgs,
  type ExecutionResult,
  type GraphQLObjectType,
} from 'graphql';
import { describe, expect, it } from 'vitest';
import { createSharedSubscribe, PrerenderedResult } from '../../api/shared-results.js';

/** A schema shaped like ours: root fields return the event; `n` counts how often it is resolved. */
function fixture() {
  const schema = buildSchema(`
    type Query { ok: Boolean }
    type Change { userId: ID! n: Int! }
    type Subscription {
      userChanged(id: ID!): Change!
      usersChanged(ids: [ID!]!): Change!
      otherChanged(id: ID!): Change!
    }
  `);
  let resolved = 0;
  const listeners = new Set<(event: object) => void>();
  const source = (): AsyncIterable<object> => ({
    [Symbol.asyncIterator]() {
      const queue: object[] = [];
      let wake: ((r: IteratorResult<object>) => void) | undefined;
      const push = (event: object) => {
        if (wake === undefined) queue.push(event);
        else {
          const w = wake;
          wake = undefined;
          w({ value: event, done: false });
        }
      };
      listeners.add(push);
      return {
        next: () => {
          const event = queue.shift();
          if (event !== undefined) return Promise.resolve({ value: event, done: false });
          return new Promise((resolve) => (wake = resolve));
        },
        return: () => {
          listeners.delete(push);
          return Promise.resolve({ value: undefined, done: true });
        },
      };
    },
  });
  const root = { subscribe: source, resolve: (event: unknown) => event };
  for (const name of ['userChanged', 'usersChanged', 'otherChanged']) {
    const field = schema.getSubscriptionType()!.getFields()[name]!;
    field.subscribe = root.subscribe;
    field.resolve = root.resolve;
  }
  const change = schema.getType('Change') as GraphQLObjectType;
  change.getFields()['n']!.resolve = () => ++resolved;
  return {
    schema,
    resolved: () => resolved,
    publish: (event: object) => listeners.forEach((push) => push(event)),
  };
}

async function open(
  sub: (args: ExecutionArgs) => Promise<AsyncIterable<ExecutionResult> | ExecutionResult>,
  args: ExecutionArgs,
): Promise<AsyncIterator<ExecutionResult>> {
  const stream = await sub(args);
  if (!(Symbol.asyncIterator in stream)) throw new Error(JSON.stringify(stream));
  return stream[Symbol.asyncIterator]();
}

describe('createSharedSubscribe', () => {
  const text = 'subscription S($id: ID!) { userChanged(id: $id) { userId n } }';

  it('executes an event once for every subscription on the same document, whatever their root arguments', async () => {
    const f = fixture();
    const shared = createSharedSubscribe();
    const document = parse(text);
    const its = await Promise.all(
      ['1', '2', '3'].map((id) => open(shared, { schema: f.schema, document, variableValues: { id } })),
    );
    const event = { userId: '7' };
    f.publish(event);
    const results = await Promise.all(its.map((it) => it.next()));
    expect(results.map((r) => r.value)).toEqual(
      Array(3).fill({ data: { userChanged: { userId: '7', n: 1 } } }),
    );
    expect(new Set(results.map((r) => r.value)).size).toBe(1);
    expect(f.resolved()).toBe(1);
    f.publish({ userId: '7' }); // a new event object: executed again
    await Promise.all(its.map((it) => it.next()));
    expect(f.resolved()).toBe(2);
  });

  it('keys on the variables when the selection uses any', async () => {
    const f = fixture();
    const shared = createSharedSubscribe();
    const document = parse(
      'subscription S($id: ID!, $withN: Boolean!) { userChanged(id: $id) { userId n @include(if: $withN) } }',
    );
    const its = await Promise.all(
      [true, true, false].map((withN) =>
        open(shared, { schema: f.schema, document, variableValues: { id: '1', withN } }),
      ),
    );
    f.publish({ userId: '7' });
    const results = await Promise.all(its.map((it) => it.next()));
    expect(results.map((r) => r.value)).toEqual([
      { data: { userChanged: { userId: '7', n: 1 } } },
      { data: { userChanged: { userId: '7', n: 1 } } },
      { data: { userChanged: { userId: '7' } } },
    ]);
    expect(f.resolved()).toBe(1);
  });

  it('executes per subscription for other root fields and for distinct documents, like graphql-js', async () => {
    const f = fixture();
    const shared = createSharedSubscribe();
    const other = parse('subscription { otherChanged(id: "1") { n } }');
    const a = await open(shared, { schema: f.schema, document: other });
    const b = await open(shared, { schema: f.schema, document: other });
    const c = await open(shared, { schema: f.schema, document: parse(text), variableValues: { id: '1' } });
    const d = await open(shared, { schema: f.schema, document: parse(text), variableValues: { id: '1' } });
    f.publish({ userId: '7' });
    await Promise.all([a, b, c, d].map((it) => it.next()));
    expect(f.resolved()).toBe(4);
  });

  it('answers what graphql-js answers for an operation that cannot subscribe', async () => {
    const f = fixture();
    const args = { schema: f.schema, document: parse(text), variableValues: {} };
    expect(await createSharedSubscribe()(args)).toEqual(await subscribe(args));
  });

  it('releases the source when the subscription returns', async () => {
    const f = fixture();
    const it = await open(createSharedSubscribe(), {
      schema: f.schema,
      document: parse(text),
      variableValues: { id: '1' },
    });
    expect(await it.return?.()).toEqual({ value: undefined, done: true });
    f.publish({ userId: '7' });
    expect(f.resolved()).toBe(0);
  });

  it('sends what a compiled plan writes, shared, and executes the events it cannot write', async () => {
    const f = fixture();
    const compiled: string[] = [];
    // A plan that writes events with `w` (as api/fast-path/compile.ts would) and declines the others.
    const shared = createSharedSubscribe(
      (event) => ({ asOf: { of: (event as { userId: string }).userId } }),
      (_document, operationName) => {
        compiled.push(operationName ?? '');
        return (event) =>
          (event as { w?: boolean }).w === true
            ? `{"userChanged":{"userId":${JSON.stringify((event as { userId: string }).userId)}}}`
            : undefined;
      },
    );
    const document = parse(text);
    const its = await Promise.all(
      ['1', '2'].map((id) =>
        open(shared, { schema: f.schema, document, operationName: 'S', variableValues: { id } }),
      ),
    );
    f.publish({ userId: '7', w: true });
    const written = await Promise.all(its.map((it) => it.next()));
    expect(written[0]!.value).toBeInstanceOf(PrerenderedResult);
    expect(written[1]!.value).toBe(written[0]!.value);
    expect((written[0]!.value as PrerenderedResult).json).toBe(
      '{"data":{"userChanged":{"userId":"7"}},"extensions":{"asOf":{"of":"7"}}}',
    );
    expect(f.resolved()).toBe(0);
    f.publish({ userId: '8' });
    const executed = await Promise.all(its.map((it) => it.next()));
    expect(executed.map((r) => r.value)).toEqual(
      Array(2).fill({ data: { userChanged: { userId: '8', n: 1 } }, extensions: { asOf: { of: '8' } } }),
    );
    // Compiled once per document and operation.
    expect(compiled).toEqual(['S']);
  });
});
