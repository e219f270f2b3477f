#!/usr/bin/env node
// Entry point for the `matview` command: loads the TypeScript sources through tsx, with the project's
// tsconfig (decorators) wherever the command is run from: tsx would otherwise look in the current directory.
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

register({ tsconfig: fileURLToPath(new URL('../tsconfig.json', import.meta.url)) });
await import('../src/cli/main.ts');
