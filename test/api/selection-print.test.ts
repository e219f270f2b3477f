/**
 * The print a dashboard subscription's pushes are decided by (api/schema/selection-print.ts): it lists the
 * fields the selection reads, through fragments and `@skip` / `@include`, so two values print the same
 * exactly when the subscriber's results would be the same.
 */
import { Kind, parse, type FragmentDefinitionNode, type OperationDefinitionNode } from 'graphql';
import { describe, expect, it } from 'vitest';
import {
  pickedFields,
  selectionPrinter,
  type Picked,
  type SelectionInfo,
} from '../../api/schema/selection-print.js';
import { makeUser } from '../utils/testkit.js';

/** The resolver info of the document's (single) root field, as graphql-js builds it. */
function infoOf(source: string, variableValues: Record<string, unknown> = {}): SelectionInfo {
  const document = parse(source);
  const operation = document.definitions.find(
    (d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION,
  )!;
  const fragments: Record<string, FragmentDefinitionNode> = {};
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments[d.name.value] = d;
  const fieldNodes = operation.selectionSet.selections.filter((s) => s.kind === Kind.FIELD);
  return { fieldNodes, fragments, variableValues };
}

/** A Picked tree as plain data. */
const plain = (picked: Picked): unknown =>
  Object.fromEntries([...picked].map(([k, v]) => [k, v === null ? true : plain(v)]));

describe('selection prints', () => {
  it('collect fields through aliases, fragments and merged sub-selections, without __typename', () => {
    const info = infoOf(`
      subscription { topUsersChanged(by: TWEETS) {
        __typename n: username ...F ... on User { version { sequence } }
        version { source { ...S } }
      } }
      fragment F on User { tweetCount ...F2 }
      fragment F2 on User { username }
      fragment S on SourcePosition { offset }`);
    expect(plain(pickedFields(info, ['userId']))).toEqual({
      userId: true,
      username: true,
      tweetCount: true,
      version: { sequence: true, source: { offset: true } },
    });
  });

  it('leave out what @skip / @include leave out, with the operation variables', () => {
    const source = `subscription($full: Boolean!) { totalsChanged {
      users tweets @include(if: $full) likes @skip(if: $full) version @include(if: $full) { sequence }
    } }`;
    expect(plain(pickedFields(infoOf(source, { full: true })))).toEqual({
      users: true,
      tweets: true,
      version: { sequence: true },
    });
    expect(plain(pickedFields(infoOf(source, { full: false })))).toEqual({ users: true, likes: true });
  });

  it('print equal for changes outside the selection and different for changes inside it', () => {
    const print = selectionPrinter(
      pickedFields(
        infoOf('subscription { topUsersChanged(by: TWEETS) { tweetCount version { sequence } } }'),
        ['userId'],
      ),
    );
    const a = makeUser(1);
    const b = makeUser(2);
    const base = print([a, b]);
    expect(base).toBe(
      JSON.stringify([
        ['1', 1, ['1001']],
        ['2', 2, ['1002']],
      ]),
    );
    expect(print([{ ...a, name: 'renamed', likeCount: 99 }, b])).toBe(base);
    expect(print([{ ...a, tweetCount: 3 }, b])).not.toBe(base);
    expect(print([a, { ...b, version: { ...b.version, sequence: '7' } }])).not.toBe(base);
    expect(print([b, a])).not.toBe(base); // order
    expect(print([a])).not.toBe(base); // members
  });
});
