// The tools' command lines, parsed by the CLI's flag parser (src/cli/args.ts parseFlags): the same
// `--flag value` / `--flag=value` forms and the same one-line errors, exit 2 (an unknown flag is
// named, with a suggestion). --help prints the usage and the flags.
import { ArgsError, parseFlags, type FlagSpec } from '../src/cli/args.js';

export type { FlagSpec };
export type ToolFlags = Map<string, string | number | boolean>;

/** Prints `error: message` (one line) and exits 2, as the CLI does for a bad command line. */
export function failUsage(message: string): never {
  console.error(`error: ${message}`);
  process.exit(2);
}

/** The usage line and one line per flag. */
export function toolHelp(usage: string, flags: readonly FlagSpec[]): string {
  const left = flags.map((f) => `  --${f.name}${f.kind === 'bool' ? '' : ` ${f.arg ?? 'X'}`}`);
  const w = Math.max(...left.map((s) => s.length)) + 2;
  return [usage, '', 'flags:', ...flags.map((f, i) => left[i].padEnd(w) + f.help)].join('\n') + '\n';
}

/** Parses a tool's `argv` against `flags` (a --help flag is added); exits on --help or a bad flag. */
export function toolFlags(argv: readonly string[], flags: readonly FlagSpec[], usage: string): ToolFlags {
  const all = [...flags, { name: 'help', kind: 'bool', help: 'print this help and exit' } as FlagSpec];
  let raw: ToolFlags;
  try {
    raw = parseFlags(argv, all);
  } catch (e) {
    if (e instanceof ArgsError) failUsage(e.message);
    throw e;
  }
  if (raw.get('help') === true) {
    process.stdout.write(toolHelp(usage, all));
    process.exit(0);
  }
  return raw;
}
