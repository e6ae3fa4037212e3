/** Command-line choices: a string checked against a fixed list of values. */

/** `v` as one of `choices`, else an error naming `what`, the choices and the value given. */
export function oneOf<T extends string>(choices: readonly T[], v: string, what: string): T {
  if (!(choices as readonly string[]).includes(v)) {
    throw new Error(`${what} must be one of ${choices.join(", ")}, got "${v}"`);
  }
  return v as T;
}
