/**
 * Builds the API schema: type-graphql classes → SDL with `@key` → Apollo Federation 2 subgraph schema
 * (`_service`, `_entities`), the route type-graphql's `apollo-federation-2` example takes. The schema
 * holds no dependencies (they come through the context), so one instance serves every server in the
 * process and `printSchemaSdl()` needs no store.
 */
import 'reflect-metadata';
import { buildSubgraphSchema } from '@apollo/subgraph';
import {
  Kind,
  parse,
  printSchema,
  type ConstDirectiveNode,
  type DocumentNode,
  type GraphQLSchema,
} from 'graphql';
import { buildSchemaSync, createResolversMap, type PubSub } from 'type-graphql';
import { InvariantError } from '../../src/errors.js';
import type { UserInformation } from '../../src/views/user-information.js';
import type { ApiContext } from './context.js';
import { DashboardResolver } from './dashboard-resolver.js';
import { FeedStatusResolver } from './feed-status-resolver.js';
import { UserChangeResolver } from './subscription-resolver.js';
import { UserResolver } from './user-resolver.js';

/** Federation spec version we `@link` to; v2.3 is understood by every Federation 2 gateway and router. */
export const FEDERATION_LINK = 'https://specs.apollo.dev/federation/v2.3';

/** `buildSubgraphSchema`'s resolver map type, which the package does not export by name. */
type SubgraphResolvers = NonNullable<
  Extract<Parameters<typeof buildSubgraphSchema>[0], { resolvers?: unknown }>['resolvers']
>;

let built: GraphQLSchema | undefined;

/**
 * type-graphql insists on a `pubSub` as soon as a `@Subscription` exists, even when every subscription
 * brings its own `subscribe` (ours read from the injected LiveSource). This one is never called.
 */
const unusedPubSub: PubSub = {
  publish: () => {
    throw new InvariantError('type-graphql pubSub.publish called: subscriptions use LiveSource');
  },
  subscribe: () => {
    throw new InvariantError('type-graphql pubSub.subscribe called: subscriptions use LiveSource');
  },
};

/** The executable subgraph schema (memoized: building it costs ~50 ms). */
export function buildApiSchema(): GraphQLSchema {
  built ??= build();
  return built;
}

function build(): GraphQLSchema {
  const plain = buildSchemaSync({
    resolvers: [UserResolver, FeedStatusResolver, UserChangeResolver, DashboardResolver],
    // Nothing is validated by class-validator; arguments are GraphQL scalars checked by graphql-js.
    validate: false,
    pubSub: unusedPubSub,
  });
  const referenceResolvers = {
    User: {
      // `_entities` resolves each representation here; the loader turns them into one getUsers call.
      __resolveReference: (ref: { userId: string }, ctx: ApiContext): Promise<UserInformation | null> =>
        ctx.users.load(ref.userId),
    },
  };
  const resolvers = createResolversMap(plain) as Record<string, Record<string, unknown>>;
  resolvers['User'] = { ...resolvers['User'], ...referenceResolvers.User };
  return buildSubgraphSchema({
    typeDefs: [linkFederation(), withTypeDirectives(plain)],
    resolvers: resolvers as SubgraphResolvers,
  });
}

function linkFederation(): DocumentNode {
  return parse(`extend schema @link(url: "${FEDERATION_LINK}", import: ["@key"])`);
}

/**
 * `printSchema` drops applied directives, so the type-graphql `@Directive('@key(...)')` would be lost
 * (type-graphql's example uses graphql-tools' `printSchemaWithDirectives` for this). We re-attach the
 * directives type-graphql stored on each type's `astNode`; `@key` on User is the only one today.
 */
function withTypeDirectives(schema: GraphQLSchema): DocumentNode {
  const document = parse(printSchema(schema));
  const definitions = document.definitions.map((definition) => {
    if (definition.kind !== Kind.OBJECT_TYPE_DEFINITION) return definition;
    const directives: readonly ConstDirectiveNode[] =
      schema.getType(definition.name.value)?.astNode?.directives ?? [];
    return directives.length === 0 ? definition : { ...definition, directives: [...directives] };
  });
  return { ...document, definitions };
}
