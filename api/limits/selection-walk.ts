/**
 * Measures a selection set through fragment spreads without expanding them: each named fragment is
 * measured once and memoized, so a document that spreads fragments exponentially costs linear time.
 * Spreads that form a cycle count as empty here; `NoFragmentCyclesRule` reports the cycle itself.
 */
import { Kind, type FragmentDefinitionNode, type SelectionSetNode } from 'graphql';

/** How one selection contributes to the measure of its selection set. */
export interface Measure {
  /** A field: its own contribution given the measure of its sub-selection (0 for leaves). */
  field(name: string, aliased: boolean, inner: number): number;
  /** Combines the contributions of sibling selections (max for depth, sum for counts). */
  combine(a: number, b: number): number;
}

/** Folds `measure` over a selection set, through fragments, memoized per fragment. */
export function measureSelections(
  selectionSet: SelectionSetNode,
  fragments: (name: string) => FragmentDefinitionNode | null | undefined,
  measure: Measure,
): number {
  const memo = new Map<string, number>();
  const visiting = new Set<string>();
  const walk = (set: SelectionSetNode): number => {
    let total = 0;
    for (const selection of set.selections) {
      let value: number;
      if (selection.kind === Kind.FIELD) {
        const inner = selection.selectionSet === undefined ? 0 : walk(selection.selectionSet);
        value = measure.field(selection.name.value, selection.alias !== undefined, inner);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        value = walk(selection.selectionSet);
      } else {
        const name = selection.name.value;
        const known = memo.get(name);
        if (known !== undefined) value = known;
        else {
          const fragment = fragments(name);
          if (fragment == null || visiting.has(name)) value = 0;
          else {
            visiting.add(name);
            value = walk(fragment.selectionSet);
            visiting.delete(name);
            memo.set(name, value);
          }
        }
      }
      total = measure.combine(total, value);
    }
    return total;
  };
  return walk(selectionSet);
}
