/** One of the exit-abort reproduction's test files (see repro.ts). @module */
import { deviceTests } from "./repro.ts";

await deviceTests("a", 3);
