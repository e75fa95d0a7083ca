/** What `withTimeout` rejects with unless told otherwise. */
export class TimeoutError extends Error {
  override name = 'TimeoutError';
}

/**
 * `p`, or a rejection with `timeoutError()` once `ms` have passed first. The timer is cleared
 * either way; `p` itself goes on (callers that must stop it abort it themselves).
 */
export function withTimeout<T>(p: Promise<T>, ms: number, timeoutError: () => Error = () => new TimeoutError(`no answer within ${ms} ms`)): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(timeoutError()), ms);
    }),
  ]);
}

/** Waits for `p` to settle (either way) for at most `ms`; resolves whether it did. Never rejects. */
export async function settledWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return withTimeout(
    p.then(
      () => true,
      () => true,
    ),
    ms,
  ).catch(() => false);
}
