import type { Command } from './command.ts';
import { migrateCommand } from './migrate.ts';
import { simulatorCommand } from './simulator.ts';

/** Every sub-command of the `clerk-invitation-mirror` binary, in the order `--help` lists them. */
export const commands: Record<string, Command> = {
  migrate: migrateCommand,
  simulator: simulatorCommand,
};
