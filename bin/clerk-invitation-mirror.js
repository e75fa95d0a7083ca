#!/usr/bin/env node
// As PID 1 (a container without an init) a signal nobody handles is ignored: from the first
// line these listeners take SIGTERM and SIGINT, pass them to the command once it has taken
// them over (src/lifecycle/signals.ts), and until then exit at once, as any process would.
globalThis[Symbol.for('clerk-invitation-mirror.early-signals')] = true;
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    const handler = globalThis[Symbol.for('clerk-invitation-mirror.signal-handler')];
    if (handler) handler(signal);
    else process.exit(signal === 'SIGINT' ? 130 : 143);
  });
}

// In a checkout, run the TypeScript sources through tsx so edits need no build step;
// an installed package (or the Docker image) runs the compiled dist/.
const { existsSync } = await import('node:fs');
const { fileURLToPath } = await import('node:url');
const source = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const compiled = new URL('../dist/cli/main.js', import.meta.url);
// A checkout installed without dev dependencies has no tsx: it runs its build, if any.
const tsx = existsSync(source) ? await import('tsx/esm/api').catch(() => undefined) : undefined;
if (tsx || !existsSync(fileURLToPath(compiled))) {
  if (!tsx) throw new Error('neither tsx (a dev dependency) nor a build (dist/, `npm run build`) is installed');
  tsx.register();
  await import(source);
} else {
  await import(compiled.href);
}
