import { pino, type DestinationStream, type Logger } from 'pino';
import { redactEmailAddresses } from './clerk/email-address.ts';
import { redactSecretKeys } from './clerk/secret-key.ts';

export type { Logger } from 'pino';

// Anything shaped like a Clerk secret key, a Svix signing secret, a bearer token, a URL's password or an e-mail
// address is masked wherever it appears in a log line, whatever the field is called.
const MASKS: ((text: string) => string)[] = [
  redactSecretKeys,
  (s) => s.replace(/\bwhsec_[A-Za-z0-9+/=]+/g, 'whsec_[redacted]'),
  (s) => s.replace(/\b(Bearer)\s+[^\s"',]+/gi, '$1 [redacted]'),
  // A password in a URL (redis://:secret@host), before the e-mail rule sees user@host.
  (s) => s.replace(/\b([a-z][a-z0-9+.-]*:\/\/[^:@/\s]*):[^@/\s]+@/gi, '$1:[redacted]@'),
  (s) => redactEmailAddresses(s, '[email]'),
];

/** Masks secrets and e-mail addresses in a string. */
export function scrub(text: string): string {
  let out = text;
  for (const mask of MASKS) out = mask(out);
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

/** `json`: one JSON object per line; `pretty`: `HH:MM:SS LEVEL msg key=value …`; `auto`: pretty on a terminal (config's LOG_FORMAT). */
export type LogFormat = 'json' | 'pretty' | 'auto';

/** `auto` decided for the stream the lines end up on: pretty when it is a terminal. */
export function resolveLogFormat(format: LogFormat, stream: { isTTY?: boolean }): 'json' | 'pretty' {
  return format === 'auto' ? (stream.isTTY === true ? 'pretty' : 'json') : format;
}

export interface LoggerOptions {
  /** @defaultValue 'info' */
  level?: string;
  /** Where lines go; tests pass a stream to read them back. @defaultValue stdout */
  destination?: DestinationStream;
  /** @defaultValue 'clerk-invitation-mirror' */
  name?: string;
  /** `auto` is pretty when `destination` (stdout by default) is a terminal. @defaultValue 'json' */
  format?: LogFormat;
  /** Colour the level in the pretty format (ANSI). @defaultValue false */
  color?: boolean;
}

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const LEVEL_COLORS: Record<number, string> = { 10: '90', 20: '90', 30: '32', 40: '33', 50: '31', 60: '35' };
/** Fields every line has, shown in the pretty format's own places or not at all. */
const OWN_FIELDS = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name']);

function prettyValue(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  if (v !== null && typeof v === 'object') {
    // An error (as the `err` serializer leaves it): its message is what a reader needs.
    const m = (v as { message?: unknown }).message;
    if (typeof m === 'string' && ('stack' in v || 'type' in v)) return JSON.stringify(m);
    return JSON.stringify(v);
  }
  return String(v);
}

const two = (n: number) => String(n).padStart(2, '0');

/**
 * One JSON log line as `HH:MM:SS LEVEL msg key=value …` (local time), scrubbed once more:
 * what the JSON line holds is scrubbed already, this keeps it so whatever changes upstream.
 * A line that is not JSON is passed on, scrubbed.
 */
export function formatPretty(jsonLine: string, { color = false }: { color?: boolean } = {}): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(jsonLine) as Record<string, unknown>;
  } catch {
    return scrub(jsonLine.endsWith('\n') ? jsonLine : `${jsonLine}\n`);
  }
  if (o === null || typeof o !== 'object') return scrub(`${jsonLine.trimEnd()}\n`);
  const d = new Date(typeof o.time === 'number' ? o.time : Date.now());
  const level = typeof o.level === 'number' ? o.level : 30;
  const name = (LEVELS[level] ?? `L${level}`).padEnd(5);
  const shown = color ? `\x1b[${LEVEL_COLORS[level] ?? '0'}m${name}\x1b[0m` : name;
  const fields = Object.entries(o)
    .filter(([k, v]) => !OWN_FIELDS.has(k) && v !== undefined)
    .map(([k, v]) => `${k}=${prettyValue(v)}`);
  const text = [`${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`, shown, typeof o.msg === 'string' ? o.msg : '', ...fields].filter(Boolean).join(' ');
  return `${scrub(text)}\n`;
}

/** A pino logger that cannot write a secret key, signing secret, bearer token or e-mail address. */
export function createLogger({ level = 'info', destination, name = 'clerk-invitation-mirror', format = 'json', color = false }: LoggerOptions = {}): Logger {
  const out: DestinationStream = destination ?? process.stdout;
  const pretty = resolveLogFormat(format, out as { isTTY?: boolean }) === 'pretty';
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
    pretty ? { write: (line: string) => out.write(formatPretty(line, { color })) } : destination,
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
