const SIGNALS = ['SIGTERM', 'SIGINT'] as const;

/** Set by bin/clerk-invitation-mirror.js, whose listeners call the handler stored here. */
const EARLY = Symbol.for('clerk-invitation-mirror.early-signals');
const HANDLER = Symbol.for('clerk-invitation-mirror.signal-handler');

/**
 * Makes `handler` receive SIGTERM and SIGINT. Under the binary, whose listeners are installed
 * on its first line (as PID 1 a process has no default handlers), it becomes their target
 * rather than replacing them: removing a listener drops a signal that arrived but was not yet
 * dispatched, so a signal during start-up would be lost. Returns a function that gives the
 * signals back (to the binary's exit-at-once, or to nobody).
 */
export function takeOverSignals(handler: (signal: NodeJS.Signals) => void): () => void {
  const g = globalThis as Record<symbol, unknown>;
  if (g[EARLY]) {
    const previous = g[HANDLER];
    g[HANDLER] = handler;
    return () => {
      g[HANDLER] = previous;
    };
  }
  for (const s of SIGNALS) process.on(s, handler);
  return () => {
    for (const s of SIGNALS) process.off(s, handler);
  };
}
