/**
 * `trainFast`: the fast trainer as a function — the code `deno task fast`
 * runs, and tests, benchmarks and the web page with it. It picks the model
 * (`--model mlp|cnn`) and hands it to the run loop of fast/run.ts.
 *
 * @module
 */

import type { TrainConfig } from "../shared/io/cli.ts";
import type { TrainSummary } from "../shared/io/summary.ts";
import { trainCnn } from "./cnn/model.ts";
import { type MlpRunOptions, trainMlp } from "./mlp/model.ts";

/**
 * Trains the model `config.model` names (default the MLP) and returns the
 * summary. `opts.params` are MLP weights; the CNN ignores them.
 */
export function trainFast(config: TrainConfig, opts: MlpRunOptions = {}): Promise<TrainSummary> {
  if (config.model === "cnn") {
    const { params: _mlpParams, ...rest } = opts;
    return trainCnn(config, rest);
  }
  return trainMlp(config, opts);
}
