#!/usr/bin/env python3
"""The fast trainer's MLP in PyTorch on CUDA: the reference for bench/RESULTS.md.

Same model (784 -> 512 ReLU -> 128 ReLU -> 10, softmax cross-entropy, mean
over the batch), same data (the 60,000 official MNIST training images in
file order, pixels byte / 255), same batches (500, in order), same plain
SGD (lr 0.01) and the same initial weights as the original program (see
`init_weight`), fp32 throughout (TF32 off).

Usage:
  python3 bench/torch_mlp.py DIR [--mode eager|graphs] [--epochs 10]
                             [--batch-size 500] [--lr 0.01] [--limit N]
  python3 bench/torch_mlp.py --check-init     (no torch needed)

DIR holds `train-images-idx3-ubyte` and `train-labels-idx1-ubyte` (or the
same names with `.gz`). Modes:
  eager   one Python-driven step per batch (forward, backward, optimizer.step);
  graphs  one training step captured as a CUDA graph on static input
          buffers, replayed per batch after copying the batch in.
In both, the dataset is resident on the GPU, the loss is summed on the
device, and there is one synchronisation per epoch (torch.cuda.synchronize,
then reading the sum). A few warm-up steps run before the first epoch
(cuBLAS and autograd set-up, and the graph capture), then the initial
weights are restored, so epoch 1 starts from them.

Prints one line per epoch (wall ms, mean loss to 4 decimals), then one JSON
line. Expected mean losses for the 10 epochs (fp32, within ~2e-4):
2.0363 1.4358 0.9308 0.6762 0.5533 0.4834 0.4375 0.4042 0.3784 0.3576.
"""

import argparse
import json
import math
import struct
import sys
import time
from array import array

from idx_files import find, read_idx

SIZES = [784, 512, 128, 10]


def f32(x: float) -> float:
    """x rounded to float32 (round to nearest even)."""
    return struct.unpack("f", struct.pack("f", x))[0]


def lcg(x: int) -> int:
    return (x * 1664525 + 1013904223) % (1 << 32)


def init_weight(fan_in: int, fan_out: int) -> array:
    """W[in][out] row-major as float32: entry i is (2r - 1) * sqrt(6 / (in + out))
    with r = (h & 0xFFFFFF) / 2^24, h = lcg(lcg(i XOR 1234)), every operation in
    float32 (here in double, rounded after each one: for +, -, *, / and sqrt the
    same result, as double has more than 2 * 24 + 2 bits)."""
    scale = f32(math.sqrt(f32(6.0 / f32(fan_in + fan_out))))
    out = array("f", bytes(4 * fan_in * fan_out))
    for i in range(fan_in * fan_out):
        h = lcg(lcg(i ^ 1234))
        r = (h & 0xFFFFFF) / 16777216.0  # exact in float32
        out[i] = (2.0 * r - 1.0) * scale  # 2r - 1 exact; the product rounded on store
    return out


def check_init() -> None:
    """The initial weights against independently computed values."""
    want = {
        (0, 0): 0.0674097836, (0, 1): -0.0387124754, (0, 2): 0.0074887630,
        (0, 401407): 0.0618076548, (1, 0): 0.0959258005, (1, 1): -0.0550888143,
        (2, 0): 0.2065788656, (2, 1279): -0.1165582016,
    }
    weights = [init_weight(SIZES[l], SIZES[l + 1]) for l in range(3)]
    for (layer, i), value in want.items():
        got = weights[layer][i]
        status = "ok" if abs(got - value) < 5e-11 else "MISMATCH"
        print(f"W{layer + 1}[{i}] = {got:.10f} (want {value:.10f}) {status}")
        if status != "ok":
            sys.exit(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", nargs="?", help="directory with the MNIST IDX files")
    ap.add_argument("--mode", choices=["eager", "graphs"], default="eager")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--limit", type=int, default=0, help="first N training images (0: all)")
    ap.add_argument("--warmup", type=int, default=3, help="warm-up steps before epoch 1")
    ap.add_argument("--check-init", action="store_true", help="check the initial weights, exit")
    args = ap.parse_args()
    if args.check_init:
        check_init()
        return
    if not args.dir:
        ap.error("DIR is required")

    import torch
    import torch.nn.functional as F

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    dev = torch.device("cuda")

    dims, pixels = read_idx(find(args.dir, "train-images-idx3-ubyte"), 0x803)
    (nlabels,), labels = read_idx(find(args.dir, "train-labels-idx1-ubyte"), 0x801)
    n, rows, cols = dims
    if rows * cols != SIZES[0] or nlabels != n:
        raise SystemExit(f"images {dims}, labels {nlabels}: want [n, 28, 28] and n labels")
    if args.limit:
        n = min(n, args.limit)
    bs = args.batch_size
    batches = [(s, min(bs, n - s)) for s in range(0, n, bs)]
    if args.mode == "graphs" and n % bs:
        raise SystemExit(f"--mode graphs needs whole batches: {n} images, batch {bs}")

    # The dataset on the GPU: pixels / 255 as float32 [n, 784], labels int64 [n].
    x_all = (torch.frombuffer(bytearray(pixels[:n * SIZES[0]]), dtype=torch.uint8)
             .view(n, SIZES[0]).to(dev).float() / 255.0)
    y_all = torch.frombuffer(bytearray(labels[:n]), dtype=torch.uint8).to(dev).long()

    # nn.Linear keeps weight as [out, in]: the transpose of W[in][out].
    layers = [torch.nn.Linear(SIZES[l], SIZES[l + 1]) for l in range(3)]
    with torch.no_grad():
        for l, layer in enumerate(layers):
            w = torch.frombuffer(init_weight(SIZES[l], SIZES[l + 1]), dtype=torch.float32)
            layer.weight.copy_(w.view(SIZES[l], SIZES[l + 1]).t())
            layer.bias.zero_()
    model = torch.nn.Sequential(
        layers[0], torch.nn.ReLU(), layers[1], torch.nn.ReLU(), layers[2]).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    initial = [p.detach().clone() for p in model.parameters()]
    # Σ over the epoch's images of -log p_y (float64, on the device).
    loss_sum = torch.zeros((), dtype=torch.float64, device=dev)

    def step(x: "torch.Tensor", y: "torch.Tensor") -> None:
        # logits [B, 10] = relu(relu(x·W1 + b1)·W2 + b2)·W3 + b3; mean cross-entropy over B
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        loss_sum.add_(loss.detach().double() * x.shape[0])

    def restore() -> None:
        with torch.no_grad():
            for p, p0 in zip(model.parameters(), initial):
                p.copy_(p0)

    static_x = torch.empty((bs, SIZES[0]), device=dev)
    static_y = torch.empty((bs,), dtype=torch.long, device=dev)
    static_x.copy_(x_all[:bs])
    static_y.copy_(y_all[:bs])
    graph = None
    t_setup = time.perf_counter()
    if args.mode == "graphs":
        # Warm up on a side stream (as torch.cuda.graphs asks), then capture one step.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(args.warmup):
                opt.zero_grad(set_to_none=True)
                step(static_x, static_y)
        torch.cuda.current_stream().wait_stream(side)
        opt.zero_grad(set_to_none=True)  # backward in the graph writes fresh gradients
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step(static_x, static_y)
    else:
        for _ in range(args.warmup):
            opt.zero_grad(set_to_none=True)
            step(static_x, static_y)
    restore()
    torch.cuda.synchronize()
    setup_ms = (time.perf_counter() - t_setup) * 1000

    epochs = []
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        loss_sum.zero_()
        for s, c in batches:
            if graph is not None:
                static_x.copy_(x_all[s:s + c])
                static_y.copy_(y_all[s:s + c])
                graph.replay()
            else:
                opt.zero_grad(set_to_none=True)
                step(x_all[s:s + c], y_all[s:s + c])
        torch.cuda.synchronize()
        total = loss_sum.item()
        ms = (time.perf_counter() - t0) * 1000
        epochs.append({"epoch": epoch, "loss": total / n, "ms": ms})
        print(f"[epoch {epoch}] loss = {total / n:.4f}  ({ms:.1f} ms)", flush=True)
    total_ms = sum(e["ms"] for e in epochs)
    print(f"{args.epochs} epochs: {total_ms:.1f} ms", flush=True)
    print(json.dumps({
        "trainer": f"pytorch-{args.mode}",
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "images": n,
        "batch_size": bs,
        "lr": args.lr,
        "setup_ms": setup_ms,
        "total_ms": total_ms,
        "epochs": epochs,
    }))


if __name__ == "__main__":
    main()
