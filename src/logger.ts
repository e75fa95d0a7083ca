import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

// Anything shaped like a Clerk secret key, a Svix signing secret, a bearer token or an e-mail
// address is masked wherever it appears in a log line, whatever the field is called.
const SECRET_PATTERNS: [RegExp, string][] = [
  [/\bsk_(live|test)_[A-Za-z0-9]+/g, 'sk_$1_[redacted]'],
  [/\bwhsec_[A-Za-z0-9+/=]+/g, 'whsec_[redacted]'],
  [/\b(Bearer)\s+[^\s"',]+/gi, '$1 [redacted]'],
  [/[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g, '[email]'],
];

/** Masks secrets and e-mail addresses in a string. */
export function scrub(text: string): string {
  let out = text;
  for (const [re, replacement] of SECRET_PATTERNS) out = out.replace(re, replacement);
  return out;
}

function scrubValue(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return scrub(value);
  if (depth > 8 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) {
    return { type: value.name, message: scrub(value.message), stack: value.stack ? scrub(value.stack) : undefined };
  }
  if (Array.isArray(value)) return value.map((v) => scrubValue(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = scrubValue(v, depth + 1);
  return out;
}

export interface LoggerOptions {
  /** @defaultValue 'info' */
  level?: string;
  /** Where lines go; tests pass a stream to read them back. @defaultValue stdout */
  destination?: DestinationStream;
  /** @defaultValue 'clerk-invitation-mirror' */
  name?: string;
}

/** A pino logger that cannot write a secret key, signing secret, bearer token or e-mail address. */
export function createLogger({ level = 'info', destination, name = 'clerk-invitation-mirror' }: LoggerOptions = {}): Logger {
  return pino(
    {
      name,
      level,
      formatters: { log: (obj) => scrubValue(obj) as Record<string, unknown> },
      hooks: {
        logMethod(args, method) {
          method.apply(
            this,
            args.map((a) => (typeof a === 'string' ? scrub(a) : a)) as Parameters<typeof method>,
          );
        },
      },
      serializers: { err: (e: unknown) => scrubValue(e) },
    },
    destination,
  );
}

/**
 * A log call that writes at most once per `everyMs` for each key, with the number of calls it
 * held back, so a failure that repeats every few milliseconds costs one line per interval.
 */
export function throttledLog(log: Logger, everyMs = 30_000, now: () => number = Date.now) {
  const last = new Map<string, { at: number; suppressed: number }>();
  return (level: 'warn' | 'error' | 'info', key: string, obj: Record<string, unknown>, msg: string): void => {
    const t = now();
    const seen = last.get(key);
    if (seen && t - seen.at < everyMs) {
      seen.suppressed++;
      return;
    }
    last.set(key, { at: t, suppressed: 0 });
    log[level]({ ...obj, ...(seen?.suppressed ? { suppressed: seen.suppressed } : {}) }, msg);
  };
}
