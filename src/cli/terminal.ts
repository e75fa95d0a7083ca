import type { Config } from '../config.ts';
import { createLogger, resolveLogFormat, type Logger } from '../logger.ts';
import { logProgress, ttyProgress, type ProgressReporter } from '../maintenance/progress.ts';

/** Where a long command's log, progress and notes go: a bar with the log above it on a terminal, log lines otherwise. */
export interface RunOutput {
  log: Logger;
  progress: Required<ProgressReporter>;
  /** A line for the person watching: above the bar, or on its own line. */
  say(text: string): void;
}

export function runOutput(label: string, config: Config, env: Record<string, string | undefined>): RunOutput {
  const tty = process.stderr.isTTY === true;
  const bar = tty ? ttyProgress(process.stderr, { label }) : undefined;
  const log = createLogger({
    // On a terminal the bar says how it goes: only warnings and errors, unless LOG_LEVEL asks.
    level: tty && env.LOG_LEVEL === undefined ? 'warn' : config.logLevel,
    format: resolveLogFormat(config.logFormat, process.stderr),
    color: tty && !env.NO_COLOR,
    destination: bar ? { write: (line: string) => bar.print(line) } : process.stderr,
  });
  return {
    log,
    progress: bar ?? logProgress(log, { label }),
    say: (text) => (bar ? bar.print(text) : process.stderr.write(`\n${text}\n`)),
  };
}
