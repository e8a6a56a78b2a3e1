/**
 * `deno task slow`: train the MNIST MLP with the slow (naive) trainer.
 *
 * @module
 */

import { trainerMain } from "../shared/io/prepare.ts";
import { trainSlow } from "./train.ts";

if (import.meta.main) trainerMain("slow", (c) => trainSlow(c));
