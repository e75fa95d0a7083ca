import type Database from 'better-sqlite3';
import { Param, Placeholder } from 'drizzle-orm';

/**
 * A query built with drizzle's query builder (every value a `sql.placeholder`), prepared once
 * on better-sqlite3 and run with the values in `names` order. Drizzle's own prepared queries
 * fill placeholders from an object on every run, which on the replica's hot path cost about
 * half as much as SQLite's insert itself (bench/profile-replica.ts). Values go to SQLite as
 * given: use it for text and integer columns, whose drizzle encoders change nothing.
 *
 * @throws when the query's parameters are not exactly those placeholders, in that order.
 */
export function positional(sqlite: Database.Database, query: { toSQL(): { sql: string; params: unknown[] } }, names: readonly string[]): Database.Statement {
  const { sql, params } = query.toSQL();
  const got = params.map((p) => {
    const v = p instanceof Param ? p.value : p;
    return v instanceof Placeholder ? v.name : '(a literal)';
  });
  if (got.join() !== names.join()) throw new Error(`query parameters are ${got.join(', ')}, expected ${names.join(', ')}`);
  return sqlite.prepare(sql);
}
