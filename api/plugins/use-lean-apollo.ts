/**
 * Turns off the Apollo Server features that add per-request work we do not use (Apollo docs "Built-in
 * plugins"): cache-control (a `willResolveField` hook on every field), usage and schema reporting,
 * federated inline traces (ftv1), and the landing page outside development.
 */
import type { ApolloServerPlugin, BaseContext } from '@apollo/server';
import {
  ApolloServerPluginCacheControlDisabled,
  ApolloServerPluginInlineTraceDisabled,
  ApolloServerPluginLandingPageDisabled,
  ApolloServerPluginSchemaReportingDisabled,
  ApolloServerPluginUsageReportingDisabled,
} from '@apollo/server/plugin/disabled';

/** The "disabled" plugins; in development Apollo's default local landing page stays on. */
export function useLeanApollo(development: boolean): ApolloServerPlugin<BaseContext>[] {
  return [
    ApolloServerPluginCacheControlDisabled(),
    ApolloServerPluginUsageReportingDisabled(),
    ApolloServerPluginSchemaReportingDisabled(),
    ApolloServerPluginInlineTraceDisabled(),
    ...(development ? [] : [ApolloServerPluginLandingPageDisabled()]),
  ];
}
