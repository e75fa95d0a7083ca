/**
 * Runs `concurrency` copies of `loop` at once: how a run spends its share of the BAPI budget
 * on several requests in flight. The first failure stops the others before their next request
 * (each loop checks `stopped()` between requests) and is thrown once every loop has ended, so
 * no request is still running when the caller sees the error.
 */
export async function inParallel(concurrency: number, loop: (stopped: () => boolean) => Promise<void>): Promise<void> {
  let failure: { err: unknown } | undefined;
  const stopped = () => failure !== undefined;
  await Promise.all(
    Array.from({ length: Math.max(1, concurrency) }, () =>
      loop(stopped).catch((err: unknown) => {
        failure ??= { err };
      }),
    ),
  );
  if (failure) throw failure.err;
}

/** `fn` over `items`, `concurrency` at a time, in their order; stops as `inParallel` does. */
export async function forEachInParallel<T>(concurrency: number, items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await inParallel(concurrency, async (stopped) => {
    while (!stopped() && next < items.length) await fn(items[next++]!);
  });
}
