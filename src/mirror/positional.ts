import type Database from 'better-sqlite3';
import { Column, Param, Placeholder } from 'drizzle-orm';

/**
 * Drizzle's own prepared queries fill placeholders from an object and map each row on every
 * run, which on the replica's and the lookup's hot paths costs as much as SQLite's own work
 * (bench/profile-replica.ts, `npm run bench -- lookup.inprocess`). These build the query with
 * drizzle's query builder and prepare its SQL once on better-sqlite3, run with positional
 * values.
 */

type Built = { toSQL(): { sql: string; params: unknown[] } };

/**
 * The query (every value a `sql.placeholder`), prepared to run with the values in `names`
 * order. Values go to SQLite as given: use it for text and integer columns, whose drizzle
 * encoders change nothing.
 *
 * @throws when the query's parameters are not exactly those placeholders, in that order.
 */
export function positional(sqlite: Database.Database, query: Built, names: readonly string[]): Database.Statement {
  const { sql, params } = query.toSQL();
  const got = params.map((p) => {
    const v = p instanceof Param ? p.value : p;
    return v instanceof Placeholder ? v.name : '(a literal)';
  });
  if (got.join() !== names.join()) throw new Error(`query parameters are ${got.join(', ')}, expected ${names.join(', ')}`);
  return sqlite.prepare(sql);
}

/** Columns whose values drizzle passes through from the driver unchanged. */
const PLAIN_COLUMNS = new Set(['SQLiteText', 'SQLiteInteger']);

type Select = Built & { _: { selectedFields: Record<string, unknown>; result: unknown[] } };

/**
 * A select, prepared as `positional` prepares it, whose rows are the ones drizzle infers for
 * it. It must select plain text and integer columns, each under its column's name: SQLite's
 * rows then have drizzle's keys and values without a mapping per row.
 *
 * @throws when a field is not such a column.
 */
export function positionalSelect<Q extends Select>(sqlite: Database.Database, query: Q, names: readonly string[]): Database.Statement<unknown[], Q['_']['result'][number]> {
  for (const [key, field] of Object.entries(query._.selectedFields)) {
    if (!(field instanceof Column) || field.name !== key || !PLAIN_COLUMNS.has(field.columnType)) {
      throw new Error(`select field ${key} is not a text or integer column named ${key}`);
    }
  }
  return positional(sqlite, query, names) as Database.Statement<unknown[], Q['_']['result'][number]>;
}
