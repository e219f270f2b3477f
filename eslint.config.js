// Small on purpose: prettier owns formatting, tsc owns types; these are the rules neither can express,
// plus the architecture's boundaries (DESIGN.md: one direction, pure core, adapters at the edge).
import js from '@eslint/js';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';
import importX from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

/** Module patterns, as `no-restricted-imports` matches them. */
const ADAPTER_LIBS = [
  'kafkajs',
  'kafkajs/*',
  'lmdb',
  'graphql',
  '@apollo/*',
  'ws',
  'graphql-ws',
  'graphql-ws/*',
];
/** Configuration is read once, in src/ops/config.ts; everything else gets the frozen Config. */
const ENV_ONLY_IN_CONFIG = {
  object: 'process',
  property: 'env',
  message: 'Read configuration in src/ops/config.ts only.',
};
const layer = (name) => [`**/${name}/**`, `../${name}/*`, `./${name}/*`];

/**
 * A boundary: files in `files` may not import `patterns` (each with the reason users of the rule see).
 * `allowTypeImports`: type-only imports pass (erased at build time: no dependency at run time).
 */
const boundary = (files, patterns, message, allowTypeImports = false) => ({
  files,
  rules: {
    'no-restricted-imports': 'off',
    '@typescript-eslint/no-restricted-imports': [
      'error',
      { patterns: [{ group: patterns, message, allowTypeImports }] },
    ],
  },
});

export default tseslint.config(
  {
    ignores: ['node_modules/**', 'dist/**', 'data*/**', 'bench/results/**', 'coverage/**', 'test-results/**'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setImmediate: 'readonly',
        URL: 'readonly',
        fetch: 'readonly',
        performance: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': ['error', { allow: ['error'] }],
      eqeqeq: ['error', 'smart'],
    },
  },
  {
    // No import cycles anywhere in the product: the data path goes one way (DESIGN.md).
    files: ['src/**/*.ts', 'api/**/*.ts'],
    plugins: { 'import-x': importX },
    // Resolves `./x.js` to `./x.ts` as tsc does (NodeNext), so cycles through our own modules are seen.
    settings: {
      'import-x/resolver-next': [createTypeScriptImportResolver()],
      // The imported modules are parsed too (to follow their imports): TypeScript, with typescript-eslint's parser.
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/extensions': ['.ts', '.js'],
    },
    rules: { 'import-x/no-cycle': ['error', { ignoreExternal: true }] },
  },
  {
    // Configuration is read once, in src/ops/config.ts; everything else gets the frozen Config. lmdb-js'
    // reused read buffer is read through src/store/fast-read.ts, which gives it its exact size on every Node.
    files: ['src/**/*.ts', 'api/**/*.ts'],
    ignores: ['src/ops/config.ts', 'src/store/fast-read.ts'],
    rules: {
      'no-restricted-properties': [
        'error',
        ENV_ONLY_IN_CONFIG,
        {
          property: 'getBinaryFast',
          message:
            "Use readFast (src/store/fast-read.ts): on Node 24 lmdb-js' reused buffer reads past the value.",
        },
      ],
    },
  },
  {
    files: ['src/store/fast-read.ts'],
    rules: {
      'no-restricted-properties': ['error', ENV_ONLY_IN_CONFIG],
    },
  },
  // The design's "nevers", as import boundaries.
  boundary(
    ['src/views/**/*.ts', 'src/materializer/**/*.ts'],
    [
      ...ADAPTER_LIBS,
      ...['store', 'feed', 'formats', 'live', 'wiring', 'pipeline', 'demo', 'cli'].flatMap(layer),
      '**/api/**',
      'node:fs',
      'node:net',
      'node:http',
    ],
    'The views and the materializer are the pure core: no I/O, no adapters (DESIGN.md "pure core").',
  ),
  boundary(
    ['src/formats/**/*.ts'],
    [
      'lmdb',
      'graphql',
      '@apollo/*',
      'ws',
      'graphql-ws',
      ...['store', 'live', 'wiring', 'pipeline', 'materializer'].flatMap(layer),
      '**/api/**',
    ],
    'A format decodes records into contract rows; it knows nothing of the store, the live layer or the API.',
  ),
  boundary(
    ['src/feed/**/*.ts'],
    [
      'graphql',
      '@apollo/*',
      'ws',
      'graphql-ws',
      ...['store', 'views', 'materializer', 'live', 'wiring', 'formats'].flatMap(layer),
      '**/api/**',
    ],
    'The feed delivers raw records and positions; it knows nothing of users, tweets or the store (DESIGN.md "feed").',
  ),
  boundary(
    ['src/store/**/*.ts'],
    [
      'kafkajs',
      'graphql',
      '@apollo/*',
      'ws',
      'graphql-ws',
      ...['live', 'wiring', 'pipeline', 'formats', 'demo', 'cli'].flatMap(layer),
      '**/api/**',
    ],
    'The store owns LMDB: it is written by the pipeline and read by the API, never the other way round.',
  ),
  boundary(
    ['src/live/**/*.ts'],
    [
      'kafkajs',
      'lmdb',
      'ws',
      'graphql-ws',
      ...['feed', 'wiring', 'pipeline', 'formats'].flatMap(layer),
      '**/store/lmdb-store*',
      '**/api/**',
    ],
    'The live layer is fed commit events through the store types; transports live in api/ws.',
  ),
  boundary(
    ['api/**/*.ts'],
    [
      'kafkajs',
      'lmdb',
      '**/src/feed/**',
      '!**/src/feed/types.js',
      '**/src/wiring/**',
      '**/src/pipeline/**',
      '**/src/store/lmdb-store*',
      '**/src/materializer/**',
    ],
    'The API reads the store through its interfaces (src/store/types.ts) and subscribes to live; the wiring passes them in.',
  ),
  boundary(
    ['src/sink/**/*.ts'],
    [
      'graphql',
      '@apollo/*',
      'ws',
      'graphql-ws',
      ...['live', 'wiring', 'pipeline', 'formats', 'materializer', 'demo', 'cli'].flatMap(layer),
      '**/api/**',
    ],
    "A sink follows the store's commits and writes them out; it is never on the commit path and serves nothing.",
  ),
  boundary(
    ['src/ops/**/*.ts'],
    [
      'kafkajs',
      'lmdb',
      'graphql',
      '@apollo/*',
      ...['live', 'wiring', 'pipeline', 'feed', 'demo', 'cli'].flatMap(layer),
      '**/api/**',
    ],
    'src/ops is configuration, logging and metrics; the wiring that uses them lives in src/wiring.',
    // The configuration describes the adapters' settings with their own types.
    true,
  ),
  {
    files: ['src/cli/**/*.ts', 'scripts/**', 'bench/**', 'test/**'],
    rules: { 'no-console': 'off' },
  },
  {
    // Browser code the pages include inline (api/page/route.ts): its functions are used by the pages' scripts.
    files: ['api/page/**/*.js'],
    languageOptions: {
      sourceType: 'script',
      globals: { document: 'readonly', location: 'readonly', WebSocket: 'readonly' },
    },
    rules: { '@typescript-eslint/no-unused-vars': ['error', { vars: 'local', args: 'none' }] },
  },
);
