/**
 * What a benchmark may ask of its environment without failing: plain
 * `deno bench` runs with no permissions at all (Deno reads no permissions
 * from deno.json unless given -P), so an unset or unreadable variable means
 * "the default", and a file a benchmark cannot write is simply not written.
 *
 * @module
 */

/** Whether `desc` is granted now (never prompts). */
export function granted(desc: Deno.PermissionDescriptor): boolean {
  return Deno.permissions.querySync(desc).state === "granted";
}

/** The positive number in environment variable `name`, else `fallback` (also without env access). */
export function envNumber(name: string, fallback: number): number {
  if (!granted({ name: "env", variable: name })) return fallback;
  const v = Number(Deno.env.get(name) ?? "");
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

/** Environment variable `name`, or undefined when unset or not readable. */
export function envString(name: string): string | undefined {
  return granted({ name: "env", variable: name }) ? Deno.env.get(name) : undefined;
}
