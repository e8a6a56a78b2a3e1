/**
 * The slow trainer's GPU side: {@linkcode dispatch}, which builds everything
 * for one kernel from scratch, submits it and waits, and
 * {@linkcode SlowTrainer}, the MLP's parameters on the GPU with the naive
 * step and inference on them. No command line and no file access here, so
 * that the web page (fast/web/) can run it too; `trainSlow` (slow/train.ts)
 * drives it from the command line. The "SLOW:" comments name each deliberate
 * inefficiency.
 *
 * @module
 */

import { bufferFrom, type Gpu, readBuffer } from "../shared/gpu/device.ts";
import type { GpuProfiler } from "../shared/gpu/profiler.ts";
import type { MlpParams } from "../shared/model/mlp.ts";
import { kernelSource } from "../shared/kernels/sources.ts";

/** The kernels the slow trainer dispatches, one file each in `shared/kernels/slow/`. */
export type SlowKernel =
  | "bytesToFloats"
  | "matmul"
  | "addBias"
  | "relu"
  | "softmax"
  | "crossEntropy"
  | "softmaxCrossEntropyBackward"
  | "matmulTransA"
  | "matmulTransB"
  | "columnSums"
  | "reluBackward"
  | "sgdUpdate"
  | "argmax";

/** Threads per workgroup of the one-dimensional kernels (all but the matmuls). */
export const LINEAR_WORKGROUP = 64;
/** Side of the square 2D workgroup of the three matmul kernels. */
export const MATMUL_TILE = 8;
/** WebGPU's default cap on workgroups in one dimension of a dispatch. */
const MAX_GROUPS_PER_DIMENSION = 65535;

/**
 * The bytes of a kernel's `Shape` uniform: the `u32` fields first, then the
 * `f32` fields (only `sgdUpdate` has one, its learning rate), padded to 16 bytes.
 */
export function shapeUniform(u32s: readonly number[], f32s: readonly number[] = []): ArrayBuffer {
  const fields = u32s.length + f32s.length;
  const bytes = new ArrayBuffer(Math.max(16, Math.ceil(fields / 4) * 16));
  const view = new DataView(bytes);
  u32s.forEach((v, i) => view.setUint32(i * 4, v, true));
  f32s.forEach((v, i) => view.setFloat32((u32s.length + i) * 4, v, true));
  return bytes;
}

/**
 * Workgroups for `count` threads of a one-dimensional kernel. A dimension
 * holds at most 65535 workgroups, so large counts spill into y; the kernels
 * rebuild the index as `gid.y · (64 · groups.x) + gid.x` and bounds-check it.
 */
export function linearGroups(count: number): [number, number] {
  const groups = Math.max(1, Math.ceil(count / LINEAR_WORKGROUP));
  const x = Math.min(groups, MAX_GROUPS_PER_DIMENSION);
  return [x, Math.ceil(groups / x)];
}

/** Workgroups of a matmul kernel writing an output of `rows × cols`: one thread per element. */
export function matmulGroups(rows: number, cols: number): [number, number] {
  return [Math.ceil(cols / MATMUL_TILE), Math.ceil(rows / MATMUL_TILE)];
}

/**
 * Runs one kernel, the naive way, and waits for it. Every GPU dispatch of the
 * slow trainer goes through here, which is also where `--profile` times each
 * one (the pass's timestamps, or the wall clock until the wait returns).
 *
 * `uniform` becomes binding 0 (the `Shape` struct); `buffers` are bound as
 * storage at bindings 1, 2, … in order.
 */
export async function dispatch(
  device: GPUDevice,
  kernel: SlowKernel,
  uniform: ArrayBuffer,
  buffers: readonly GPUBuffer[],
  workgroups: readonly [number, number?, number?],
  profiler?: GpuProfiler,
): Promise<void> {
  // SLOW: the shader module is compiled anew for every dispatch, although the
  // WGSL never changes.
  const module = device.createShaderModule({
    label: `${kernel} module`,
    code: kernelSource(kernel),
  });
  // SLOW: and so is the pipeline (with a layout derived by "auto" each time).
  const pipeline = device.createComputePipeline({
    label: `${kernel} pipeline`,
    layout: "auto",
    compute: { module, entryPoint: "main" },
  });
  // SLOW: a fresh uniform buffer for a handful of shape numbers, every time.
  const shape = bufferFrom(
    device,
    `${kernel} shape uniform`,
    new Uint8Array(uniform),
    GPUBufferUsage.UNIFORM,
  );
  // SLOW: a fresh bind group per dispatch.
  const bindGroup = device.createBindGroup({
    label: `${kernel} bind group`,
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: shape } },
      ...buffers.map((buffer, i) => ({ binding: i + 1, resource: { buffer } })),
    ],
  });
  // SLOW: one command encoder, one compute pass and one submit per kernel,
  // instead of recording a whole training step into one command buffer.
  const encoder = device.createCommandEncoder({ label: `${kernel} encoder` });
  const pass = encoder.beginComputePass({
    label: `${kernel} pass`,
    // With --profile: GPU timestamps at the pass's start and end.
    timestampWrites: profiler?.passTimestamps(kernel, matmulFlops(kernel, uniform)),
  });
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(workgroups[0], workgroups[1] ?? 1, workgroups[2] ?? 1);
  pass.end();
  device.queue.submit([encoder.finish({ label: `${kernel} commands` })]);
  // SLOW: wait for the GPU to finish before recording the next kernel; the
  // CPU and GPU never work at the same time (about 11 ms per wait on
  // llvmpipe). Correctness does not depend on this wait: the queue runs
  // submissions in order anyway, and in wgpu onSubmittedWorkDone is not a
  // dependable fence; the per-step loss readback is the real sync point.
  await device.queue.onSubmittedWorkDone();
  profiler?.markDone();
  shape.destroy();
}

/** 2·M·K·N for the matmul kernels, whose uniforms start with their three sizes. */
function matmulFlops(kernel: SlowKernel, uniform: ArrayBuffer): number | undefined {
  if (!kernel.startsWith("matmul")) return undefined;
  const [a, b, c] = new Uint32Array(uniform, 0, 3);
  return 2 * a * b * c;
}

/**
 * The MLP's parameters on the GPU, and the naive step and inference on them.
 * `trainSlow` uses this; tests use it to run one step and read the result.
 */
export class SlowTrainer {
  /** The device everything runs on. */
  readonly device: GPUDevice;
  /** Layer widths: pixels, hidden layers, classes (MNIST: [784, 512, 128, 10]). */
  readonly sizes: readonly number[];
  readonly #weights: GPUBuffer[];
  readonly #biases: GPUBuffer[];
  readonly #profiler?: GpuProfiler;

  /**
   * Uploads `params` into GPU buffers that live until {@linkcode destroy}.
   * With a `profiler`, every dispatch is timed (`--profile`).
   */
  constructor(gpu: Gpu, params: MlpParams, profiler?: GpuProfiler) {
    this.device = gpu.device;
    this.#profiler = profiler;
    this.sizes = [...params.sizes];
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC;
    this.#weights = params.weights.map((w, l) =>
      bufferFrom(
        this.device,
        `layer ${l + 1} weights W[${this.sizes[l]}][${this.sizes[l + 1]}]`,
        w.slice(),
        usage,
      )
    );
    this.#biases = params.biases.map((b, l) =>
      bufferFrom(this.device, `layer ${l + 1} biases b[${this.sizes[l + 1]}]`, b.slice(), usage)
    );
  }

  #dispatch(
    kernel: SlowKernel,
    uniform: ArrayBuffer,
    buffers: readonly GPUBuffer[],
    workgroups: readonly [number, number?, number?],
  ): Promise<void> {
    return dispatch(this.device, kernel, uniform, buffers, workgroups, this.#profiler);
  }

  /**
   * One SGD step on images `start..start+count` of `images` (`sizes[0]` bytes each)
   * with their `labels`: forward, loss, backward, update. Returns the
   * per-image losses −log p_y (read back from the GPU every step).
   */
  async step(
    images: Uint8Array,
    labels: Uint8Array,
    start: number,
    count: number,
    lr: number,
  ): Promise<Float32Array> {
    const scratch = new StepBuffers(this.device);
    try {
      const x = await this.#uploadBatch(scratch, images, start, count);
      const labelBuf = scratch.upload(
        "batch labels",
        Uint32Array.from(labels.subarray(start, start + count)),
      );
      const { acts, zs } = await this.#forward(scratch, x, count);
      const L = this.sizes.length - 1;
      const classes = this.sizes[L];

      const probs = scratch.floats("probabilities p", count * classes);
      await this.#dispatch(
        "softmax",
        shapeUniform([count, classes]),
        [zs[L - 1], probs],
        linearGroups(count),
      );
      const losses = scratch.floats("per-image losses", count, GPUBufferUsage.COPY_SRC);
      await this.#dispatch(
        "crossEntropy",
        shapeUniform([count, classes]),
        [probs, labelBuf, losses],
        linearGroups(count),
      );

      // Backward, last layer first, as in lossAndGradients in shared/model/mlp.ts
      // (l = 2, 1, 0 is layer 3, 2, 1: ∂W3, ∂b3, ∂a2, ∂z2, then ∂W2, …).
      const gradW: GPUBuffer[] = new Array(L);
      const gradB: GPUBuffer[] = new Array(L);
      let gradZ = scratch.floats(`layer ${L} ∂z`, count * classes);
      await this.#dispatch(
        "softmaxCrossEntropyBackward",
        shapeUniform([count, classes]),
        [probs, labelBuf, gradZ],
        linearGroups(count * classes),
      );
      for (let l = L - 1; l >= 0; l--) {
        const fanIn = this.sizes[l], fanOut = this.sizes[l + 1];
        gradW[l] = scratch.floats(`layer ${l + 1} ∂W`, fanIn * fanOut);
        await this.#dispatch(
          "matmulTransA",
          shapeUniform([count, fanIn, fanOut]),
          [acts[l], gradZ, gradW[l]],
          matmulGroups(fanIn, fanOut),
        );
        gradB[l] = scratch.floats(`layer ${l + 1} ∂b`, fanOut);
        await this.#dispatch(
          "columnSums",
          shapeUniform([count, fanOut]),
          [gradZ, gradB[l]],
          linearGroups(fanOut),
        );
        if (l > 0) {
          const gradA = scratch.floats(`layer ${l + 1} ∂a (input gradient)`, count * fanIn);
          await this.#dispatch(
            "matmulTransB",
            shapeUniform([count, fanOut, fanIn]),
            [gradZ, this.#weights[l], gradA],
            matmulGroups(count, fanIn),
          );
          const below = scratch.floats(`layer ${l} ∂z`, count * fanIn);
          await this.#dispatch(
            "reluBackward",
            shapeUniform([count * fanIn]),
            [gradA, zs[l - 1], below],
            linearGroups(count * fanIn),
          );
          gradZ = below;
        }
      }

      // Update only after every gradient is computed: ∂a above used the old W.
      // SLOW: six separate SGD dispatches (one per tensor), each awaited.
      for (let l = 0; l < L; l++) {
        const nW = this.sizes[l] * this.sizes[l + 1], nB = this.sizes[l + 1];
        await this.#dispatch(
          "sgdUpdate",
          shapeUniform([nW], [lr]),
          [this.#weights[l], gradW[l]],
          linearGroups(nW),
        );
        await this.#dispatch(
          "sgdUpdate",
          shapeUniform([nB], [lr]),
          [this.#biases[l], gradB[l]],
          linearGroups(nB),
        );
      }

      // SLOW: the batch's losses are read back every step, a GPU→CPU round
      // trip that stalls the pipeline (the fast trainer sums them on the GPU
      // and reads once per epoch).
      return new Float32Array(await readBuffer(this.device, losses, count * 4));
    } finally {
      scratch.destroy();
    }
  }

  /** The predicted digit (argmax of the logits) of images `start..start+count`. */
  async predict(images: Uint8Array, start: number, count: number): Promise<Uint8Array> {
    const scratch = new StepBuffers(this.device);
    try {
      const x = await this.#uploadBatch(scratch, images, start, count);
      const { zs } = await this.#forward(scratch, x, count);
      const classes = this.sizes[this.sizes.length - 1];
      const pred = scratch.create("predicted digits", count * 4, GPUBufferUsage.COPY_SRC);
      await this.#dispatch(
        "argmax",
        shapeUniform([count, classes]),
        [zs[zs.length - 1], pred],
        linearGroups(count),
      );
      // SLOW: predictions are read back per test batch and compared on the CPU.
      return Uint8Array.from(new Uint32Array(await readBuffer(this.device, pred, count * 4)));
    } finally {
      scratch.destroy();
    }
  }

  /** Reads the current weights and biases back from the GPU. */
  async readParams(): Promise<MlpParams> {
    const weights: Float32Array[] = [];
    const biases: Float32Array[] = [];
    for (let l = 0; l + 1 < this.sizes.length; l++) {
      const nW = this.sizes[l] * this.sizes[l + 1], nB = this.sizes[l + 1];
      weights.push(new Float32Array(await readBuffer(this.device, this.#weights[l], nW * 4)));
      biases.push(new Float32Array(await readBuffer(this.device, this.#biases[l], nB * 4)));
    }
    return { sizes: [...this.sizes], weights, biases };
  }

  /** Frees the parameter buffers. */
  destroy(): void {
    for (const b of [...this.#weights, ...this.#biases]) b.destroy();
  }

  /** The batch's pixels as floats `x: [count, pixels]` on the GPU (`pixels` = the input width). */
  async #uploadBatch(
    scratch: StepBuffers,
    images: Uint8Array,
    start: number,
    count: number,
  ): Promise<GPUBuffer> {
    const pixels = this.sizes[0];
    // SLOW: each batch is copied out of the dataset into a freshly allocated
    // buffer (destroyed after the step) instead of uploading the dataset once.
    const bytes = scratch.upload(
      "batch pixels (bytes)",
      images.slice(start * pixels, (start + count) * pixels),
    );
    const x = scratch.floats("batch pixels x", count * pixels);
    await this.#dispatch(
      "bytesToFloats",
      shapeUniform([count * pixels]),
      [bytes, x],
      linearGroups(count * pixels),
    );
    return x;
  }

  /**
   * z = a·W + b per layer, ReLU between layers. Arrays are 0-based, layers
   * are numbered 1 to 3 (as in the README): `acts[l]` is the input of layer
   * l + 1 (acts[0] = x, acts[1] = a1, acts[2] = a2) and `zs[l]` its
   * pre-activation (zs[2] = z3, the logits). Buffer labels number layers 1
   * to 3.
   */
  async #forward(
    scratch: StepBuffers,
    x: GPUBuffer,
    count: number,
  ): Promise<{ acts: GPUBuffer[]; zs: GPUBuffer[] }> {
    const L = this.sizes.length - 1;
    const acts = [x];
    const zs: GPUBuffer[] = [];
    for (let l = 0; l < L; l++) {
      const fanIn = this.sizes[l], fanOut = this.sizes[l + 1];
      const z = scratch.floats(`layer ${l + 1} z`, count * fanOut);
      await this.#dispatch(
        "matmul",
        shapeUniform([count, fanIn, fanOut]),
        [acts[l], this.#weights[l], z],
        matmulGroups(count, fanOut),
      );
      // SLOW: the bias is added by its own kernel, re-reading z from memory,
      // instead of in the matmul's epilogue.
      await this.#dispatch(
        "addBias",
        shapeUniform([count, fanOut]),
        [z, this.#biases[l]],
        linearGroups(count * fanOut),
      );
      zs.push(z);
      if (l < L - 1) {
        const a = scratch.floats(`layer ${l + 1} a = relu(z)`, count * fanOut);
        await this.#dispatch(
          "relu",
          shapeUniform([count * fanOut]),
          [z, a],
          linearGroups(count * fanOut),
        );
        acts.push(a);
      }
    }
    return { acts, zs };
  }
}

/**
 * The buffers of one step, all destroyed together at its end.
 * SLOW: every activation and gradient buffer is allocated afresh each step
 * (and each test batch) rather than once for the run.
 */
class StepBuffers {
  readonly #device: GPUDevice;
  readonly #made: GPUBuffer[] = [];

  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /** A zero-filled storage buffer of `bytes` bytes. */
  create(label: string, bytes: number, extraUsage: GPUBufferUsageFlags = 0): GPUBuffer {
    const buffer = this.#device.createBuffer({
      label,
      size: Math.max(4, Math.ceil(bytes / 4) * 4),
      usage: GPUBufferUsage.STORAGE | extraUsage,
    });
    this.#made.push(buffer);
    return buffer;
  }

  /** A storage buffer for `count` f32 values. */
  floats(label: string, count: number, extraUsage: GPUBufferUsageFlags = 0): GPUBuffer {
    return this.create(label, count * 4, extraUsage);
  }

  /** A storage buffer holding `data`. */
  upload(label: string, data: ArrayBufferView<ArrayBuffer>): GPUBuffer {
    const buffer = bufferFrom(this.#device, label, data, GPUBufferUsage.STORAGE);
    this.#made.push(buffer);
    return buffer;
  }

  destroy(): void {
    for (const b of this.#made) b.destroy();
    this.#made.length = 0;
  }
}
