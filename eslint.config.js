// Small on purpose: prettier owns formatting, tsc owns types; these are the rules neither can express.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

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
    // The pure core (views, materializer) must not reach for adapters: see DESIGN.md "pure core".
    files: ['src/views/**/*.ts', 'src/materializer/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            'kafkajs',
            'lmdb',
            'graphql',
            '@apollo/*',
            'ws',
            'graphql-ws',
            '**/store/**',
            '**/feed/**',
            '**/api/**',
            'node:fs',
            'node:net',
          ],
        },
      ],
    },
  },
  {
    files: ['src/cli/**/*.ts', 'scripts/**', 'bench/**', 'test/**'],
    rules: { 'no-console': 'off' },
  },
);
