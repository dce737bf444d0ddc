/**
 * Debian's Chromium for browser tests (driven by playwright-core): where it is, and the flags a
 * headless run on a closed network needs (no sandbox as root, no GPU, no background connections that
 * the machine would refuse).
 */
export const CHROMIUM = '/usr/bin/chromium';

export const CHROMIUM_ARGS: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
