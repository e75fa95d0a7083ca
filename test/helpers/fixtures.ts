import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InvitationJSON } from '../../src/clerk/types.ts';

export const SHARED = join(import.meta.dirname, '../../../shared');

export function fixture<T = Record<string, unknown>>(name: string): T {
  return JSON.parse(readFileSync(join(SHARED, 'fixtures', name), 'utf8')) as T;
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
