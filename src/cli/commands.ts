import { backfillCommand } from './backfill.ts';
import type { Command } from './command.ts';
import { demoCommand } from './demo.ts';
import { failedCommand } from './failed.ts';
import { migrateCommand } from './migrate.ts';
import { reconcileCommand } from './reconcile.ts';
import { simulatorCommand } from './simulator.ts';
import { startCommand } from './start.ts';
import { verifyCommand } from './verify.ts';

/** Every sub-command of the `clerk-invitation-mirror` binary, in the order `--help` lists them. */
export const commands: Record<string, Command> = {
  start: startCommand,
  demo: demoCommand,
  migrate: migrateCommand,
  backfill: backfillCommand,
  reconcile: reconcileCommand,
  verify: verifyCommand,
  failed: failedCommand,
  simulator: simulatorCommand,
};
