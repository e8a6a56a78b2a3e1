/**
 * `deno task fast`: the fast trainer's command line (see shared/train.ts).
 *
 * @module
 */

import { trainerMain } from "../shared/train.ts";
import { trainFast } from "./train.ts";

trainerMain("fast", (c) => trainFast(c));
