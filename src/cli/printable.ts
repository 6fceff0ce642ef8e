// Text from the admin API made safe to print on an operator's terminal: control characters shown as escapes.

/**
 * What a terminal would act on rather than show: C0 controls (TAB too, which would break a table's columns),
 * DEL, C1 controls (U+009B is a CSI on many terminals), the line and paragraph separators, and the bidi
 * overrides and isolates that reorder a line. The API refuses them in new reasons and keys; older audit
 * lines, keys from the config file and error messages quoting a request can still carry them.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are the characters it escapes.
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Readonly<Record<string, string>> = { '\t': '\\t', '\n': '\\n', '\r': '\\r', '\u001b': '\\e' };

function escapeOf(char: string): string {
  const named = NAMED[char];
  if (named) return named;
  const code = char.charCodeAt(0);
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** `text` with every control character written as an escape (`\n`, `\e`, `\x9b`, `\u202e`), on one line. */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, escapeOf);
}

/**
 * JSON text (`--json`) with the characters JSON leaves raw (C1, separators, bidi controls) written as
 * `\uXXXX`, which is the same JSON; C0 controls are escaped by any JSON serializer already.
 */
export function printableJson(json: string): string {
  return json.replace(UNPRINTABLE, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
