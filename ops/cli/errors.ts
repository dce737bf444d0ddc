/** `troupe errors`: the error catalogue, and what one code means. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES, type ErrorCode } from '../../protocols/index.js';

/** The error catalogue as an aligned two-column table, descriptions wrapped. */
export function errorTable(width = 100): string {
  const entries = Object.entries(ERROR_CODES);
  const codeWidth = Math.max('CODE'.length, ...entries.map(([code]) => code.length));
  const textWidth = Math.max(30, width - codeWidth - 2);
  const indent = ' '.repeat(codeWidth + 2);
  const lines = [`${'CODE'.padEnd(codeWidth)}  MEANING`];
  for (const [code, meaning] of entries) {
    const wrapped = wrap(meaning, textWidth);
    lines.push(`${code.padEnd(codeWidth)}  ${wrapped[0] ?? ''}`);
    for (const more of wrapped.slice(1)) lines.push(indent + more);
  }
  lines.push(
    '',
    `${entries.length} codes; "troupe errors <CODE>" tells what raises one and what to do, as does`,
    errorsDoc(),
  );
  return `${lines.join('\n')}\n`;
}

/** One code: its meaning, what raises it and what to do, from the catalogue's document. */
export function explain(code: ErrorCode, width = 100): string {
  const meaning = ERROR_CODES[code];
  const lines = [code, ...wrap(meaning, width - 2).map((line) => `  ${line}`)];
  const row = readFileSync(errorsDoc(), 'utf8')
    .split('\n')
    .find((line) => line.startsWith(`| \`${code}\` |`));
  // The row reads "| `CODE` | meaning **Raised by** ... **To do:** ... |".
  const rest = plain(row?.slice(row.indexOf('|', 2) + 1).replace(/\|\s*$/, '') ?? '')
    .replace(plain(meaning), '')
    .trim();
  const [raised = '', remedy] = rest.split(/\s*To do:\s*/);
  for (const [title, text] of [
    ['', raised],
    ['To do: ', remedy ?? ''],
  ] as const) {
    if (text === '') continue;
    lines.push('', ...wrap(`${title}${text}`, width));
  }
  return `${lines.join('\n')}\n`;
}

/** Markdown table text as plain text: no emphasis, no code marks, no escaped pipes. */
function plain(markdown: string): string {
  return markdown.replaceAll('**', '').replaceAll('`', '').replaceAll('\\|', '|').trim();
}

/** The catalogue's document, `docs/errors.md` of this package (shipped in it). */
function errorsDoc(): string {
  const root = packageRoot();
  const path = root === undefined ? undefined : join(root, 'docs', 'errors.md');
  if (path === undefined || !existsSync(path))
    throw new Error('docs/errors.md is missing from this copy of troupe');
  return path;
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line.length > 0 && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line.length === 0 ? word : `${line} ${word}`;
    }
  }
  if (line.length > 0) lines.push(line);
  return lines;
}

/** The version in this package's package.json. */
export function packageVersion(): string {
  const root = packageRoot();
  return root === undefined ? 'unknown' : (readPackage(root)?.version ?? 'unknown');
}

/** This package's root: the nearest directory up from this file (src or dist) with its package.json. */
function packageRoot(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (readPackage(dir) !== undefined) return dir;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

function readPackage(dir: string): { version: string } | undefined {
  try {
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
      name?: string;
      version?: string;
    };
    return pkg.name === 'troupe' && typeof pkg.version === 'string' ? { version: pkg.version } : undefined;
  } catch {
    return undefined; // No package.json here (or not ours): keep walking up.
  }
}
