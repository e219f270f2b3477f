/**
 * The checked-in SDL (`schema/schema.graphql`): the subgraph SDL exactly as `_service { sdl }` serves it
 * to a gateway, so what CI diffs is what composition sees. `src/cli` `print-schema` calls this.
 */
import { printSubgraphSchema } from '@apollo/subgraph';
import { buildApiSchema } from './build.js';

/** The subgraph SDL with a trailing newline, ready to write to `schema/schema.graphql`. */
export function printSchemaSdl(): string {
  return `${printSubgraphSchema(buildApiSchema()).trimEnd()}\n`;
}
