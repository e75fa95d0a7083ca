#!/usr/bin/env node
// In a checkout, run the TypeScript sources through tsx so edits need no build step;
// an installed package (or the Docker image) runs the compiled dist/.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const source = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(source);
} else {
  await import('../dist/cli.js');
}
