import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InvitationJSON } from '../../src/clerk/types.ts';

/** Copies of ../shared/fixtures (realistic Clerk JSON), kept in the repository so a clone alone runs the tests. */
export const FIXTURES = join(import.meta.dirname, '../fixtures');

/** Where the copies come from, next to the project's checkout when it is there. */
export const SHARED_FIXTURES = join(import.meta.dirname, '../../../shared/fixtures');

export function fixture<T = Record<string, unknown>>(name: string): T {
  return JSON.parse(readFileSync(join(FIXTURES, name), 'utf8')) as T;
}

/** The fixture invitation with `overrides`, as BAPI's single GET would answer it. */
export function invitation(overrides: Partial<InvitationJSON> & Record<string, unknown> = {}): InvitationJSON {
  return { ...fixture<InvitationJSON>('organization-invitation.json'), ...overrides };
}

/** A temporary directory removed after the test file. */
export function tempDir(prefix = 'cim-test-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** Polls `check` every 50 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function waitUntil(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
