import { defineConfig } from 'vitest/config';

// `npm run test:chaos`: the reliability scenarios at full size (CHAOS=1 scales them up) plus
// the 200,000-event soak, one file at a time so they do not compete for the two cores.
export default defineConfig({
  test: {
    include: ['test/reliability/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    env: { CHAOS: '1' },
    testTimeout: 900_000,
    hookTimeout: 120_000,
    maxWorkers: 1,
    fileParallelism: false,
  },
});
