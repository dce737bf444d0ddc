import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  resolve: {
    alias: [
      { find: /^troupe$/, replacement: here('./index.ts') },
      { find: /^troupe\/testkit$/, replacement: here('./runtime/testkit/index.ts') },
      { find: /^troupe\/chaos$/, replacement: here('./ops/chaos/index.ts') },
      { find: /^troupe\/nestjs$/, replacement: here('./ops/nestjs/index.ts') },
      { find: /^troupe\/(.*)$/, replacement: here('./$1/index.ts') },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    pool: 'forks',
  },
});
