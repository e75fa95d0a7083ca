/** One CLI sub-command. `run` resolves to the process exit code. */
export interface Command {
  /** One line for the command list. */
  summary: string;
  /** The full `--help` text. */
  help: string;
  run(argv: string[], env: Record<string, string | undefined>): Promise<number>;
}

/** Thrown for bad command-line usage; printed as one line with a pointer to --help. */
export class UsageError extends Error {}
