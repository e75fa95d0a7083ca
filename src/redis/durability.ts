import type { Redis } from './connection.ts';

/**
 * Why an acknowledged webhook could be lost if this Redis crashed, or undefined when it
 * would not be: the receiver answers 2xx once Redis has the job, so the job must be on disk
 * by then, which takes AOF with `appendfsync always` (with `everysec`, up to a second of
 * acknowledged jobs; with a failing disk, more). A Redis that does not let us read its
 * configuration (managed services rename CONFIG) answers undefined: nothing to go on.
 */
export async function durabilityProblem(redis: Redis): Promise<string | undefined> {
  let settings: string[];
  try {
    settings = (await redis.call('CONFIG', 'GET', 'append*')) as string[];
  } catch {
    return undefined;
  }
  const get = (name: string) => settings[settings.indexOf(name) + 1];
  if (get('appendonly') !== 'yes') return 'AOF is off (appendonly no): a Redis crash loses every job since its last snapshot';
  const fsync = get('appendfsync');
  if (fsync !== 'always') return `appendfsync is ${fsync}: a Redis crash can lose jobs acknowledged in the last second`;
  return undefined;
}

