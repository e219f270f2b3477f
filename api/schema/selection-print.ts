/**
 * A print of what a subscriber's selection reads of a value. The live hub sends a state subscription's
 * value again only when its print differs from the last one sent (src/live/state-subscription.ts), so a
 * change of a field nobody selected pushes nothing, and a change of a selected one always does (issue 16:
 * "a push goes out only when the list a subscriber asked for — its members, order or their selected
 * fields — actually changed").
 *
 * Equal prints mean equal results because every type below a dashboard subscription (User, ViewVersion,
 * SourcePosition, Totals) resolves each field by reading the property of the same name: the result is a
 * function of the selected properties, which is what the print lists. Aliases and `__typename` change the
 * result's shape, never between two events of one subscription, so they are left out.
 *
 * Fields are collected as graphql-js CollectFields does (GraphQL spec §6.3.2): through inline fragments and
 * fragment spreads, honouring `@skip` / `@include` with the operation's variables. Type conditions are not
 * checked: validation (PossibleFragmentSpreadsRule) only lets through fragments whose condition overlaps the
 * object type they are spread in, and on an object type overlapping means applying.
 */
import {
  GraphQLIncludeDirective,
  GraphQLSkipDirective,
  Kind,
  getDirectiveValues,
  type FieldNode,
  type FragmentSpreadNode,
  type GraphQLResolveInfo,
  type InlineFragmentNode,
  type SelectionSetNode,
} from 'graphql';

/** The fields a selection reads: name → the fields read of its value (null for a leaf). */
export type Picked = Map<string, Picked | null>;

type Selection = FieldNode | FragmentSpreadNode | InlineFragmentNode;

/** What of `info` the selection depends on. */
export type SelectionInfo = Pick<GraphQLResolveInfo, 'fieldNodes' | 'fragments' | 'variableValues'>;

/** graphql-js `shouldIncludeNode`: `@skip(if: true)` or `@include(if: false)` leaves a selection out. */
function included(node: Selection, variables: SelectionInfo['variableValues']): boolean {
  if (node.directives === undefined || node.directives.length === 0) return true;
  if (getDirectiveValues(GraphQLSkipDirective, node, variables)?.['if'] === true) return false;
  return getDirectiveValues(GraphQLIncludeDirective, node, variables)?.['if'] !== false;
}

/**
 * The fields the resolver's field selects, merged over every node of its response key. `always` names
 * top-level fields read whatever the selection (a ranking's members are its `userId`s).
 */
export function pickedFields(info: SelectionInfo, always: readonly string[] = []): Picked {
  const picked: Picked = new Map(always.map((name) => [name, null]));
  const collect = (set: SelectionSetNode, into: Picked): void => {
    const spread = new Set<string>();
    for (const selection of set.selections) {
      if (!included(selection, info.variableValues)) continue;
      if (selection.kind === Kind.FIELD) {
        const name = selection.name.value;
        if (name.startsWith('__')) continue;
        if (selection.selectionSet === undefined) {
          into.set(name, null);
          continue;
        }
        let sub = into.get(name);
        if (sub === undefined || sub === null) into.set(name, (sub = new Map()));
        collect(selection.selectionSet, sub);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        collect(selection.selectionSet, into);
      } else {
        const name = selection.name.value;
        const fragment = info.fragments[name];
        if (spread.has(name) || fragment === undefined) continue;
        spread.add(name);
        collect(fragment.selectionSet, into);
      }
    }
  };
  for (const node of info.fieldNodes) if (node.selectionSet !== undefined) collect(node.selectionSet, picked);
  return picked;
}

/** The picked properties of `value`, positionally (lists item by item, null stays null). */
function project(value: unknown, picked: Picked): unknown {
  if (value === null || value === undefined) return null;
  if (Array.isArray(value)) return value.map((item) => project(item, picked));
  const source = value as Readonly<Record<string, unknown>>;
  const out: unknown[] = [];
  for (const [name, sub] of picked)
    out.push(sub === null ? (source[name] ?? null) : project(source[name], sub));
  return out;
}

/** The print function of one subscription: JSON of the picked properties, in a fixed order. */
export function selectionPrinter(picked: Picked): (value: unknown) => string {
  return (value) => JSON.stringify(project(value, picked));
}
