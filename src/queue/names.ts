/**
 * BullMQ key prefix. The braces are a Redis Cluster hash tag: every key of the queue hashes to
 * one slot, so the Lua scripts BullMQ runs work on a cluster as on one Redis.
 */
export const QUEUE_PREFIX = '{clerk-invitation-mirror}';
export const SYNC_QUEUE = 'invitation-sync';
export const SYNC_JOB_NAME = 'sync-invitation';
