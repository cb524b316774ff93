"""The native anchor of the real-GPU check (tools/gpu-check.sh): the engine's built-in nets in PyTorch
eager on CUDA, timed as the engine's are (tools/gpu-check-run.ts), one JSON line per net on stdout.

The nets are those of src/nn/models/builtin.ts at their defaults (NET_DEFAULTS), fp32 throughout
(TF32 off for matmuls and cuDNN convolutions, since the engine computes in fp32):
  softmax  784-10 softmax, SGD lr 0.2, batch 100
  bp       784-50 sigmoid-10, SGD lr 0.5, batch 100
  mlp      784-256 relu-10, Adam 1e-3, batch 100
  cnn      conv5x5x32 SAME relu, maxpool 2, conv5x5x64 SAME relu, maxpool 2, dense 3136-1024 relu,
           dropout (keep 0.5), dense 10; Adam 1e-3, batch 50
  rnn      LSTM 128 over 28 rows of 28 pixels, last output, dense 10; Adam 1e-3, batch 100
Loss: softmax cross-entropy from logits, mean over the batch. Batches: consecutive MNIST training
images (the bench's batchIndex), copied from host memory to the GPU each step, as the engine
writes each batch.

Figures per net: step_ms, the median wall time of a step whose loss is read back (loss.item())
before the next starts; pipelined_step_ms, the same steps back to back with one synchronize at the
end; gpu_step_ms, CUDA events around the step, median.
With --matmul, also fp32 products A·B (torch.mm, cuBLAS with TF32 off) at the given shapes: median
ms and GFLOPS, the anchor for the engine's matmul figures.

Usage: python3 tools/gpu-check-torch.py --data DIR [--nets mlp,cnn,rnn] [--steps N] [--warmup N] [--seconds S]
                                        [--matmul MxKxN,...] [--device cuda|cpu]
(--device cpu only tests this script where there is no GPU: no CUDA events, gpu_step_ms is null.)
DIR holds MNIST's train-images-idx3-ubyte and train-labels-idx1-ubyte (raw or .gz).
"""
import argparse
import gzip
import json
import os
import struct
import sys
import time

NETS = ("softmax", "bp", "mlp", "cnn", "rnn")
SETTINGS = {  # batch, optimizer, learning rate: NET_DEFAULTS of src/nn/models/builtin.ts
    "softmax": (100, "sgd", 0.2),
    "bp": (100, "sgd", 0.5),
    "mlp": (100, "adam", 1e-3),
    "cnn": (50, "adam", 1e-3),
    "rnn": (100, "adam", 1e-3),
}


def read_idx(path):
    """An IDX file (raw, or gzip by its magic bytes) as (dims, bytes of the data)."""
    for name in (path, path + ".gz"):
        if os.path.exists(name):
            with open(name, "rb") as f:
                raw = f.read()
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            ndim = raw[3]
            dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
            return dims, raw[4 + 4 * ndim :]
    raise FileNotFoundError(f"{path} (or .gz) is missing")


def load_train(data_dir):
    """MNIST training images as float32 [N, 784] in [0, 1] and int64 labels [N] (numpy)."""
    import numpy as np

    dims, pixels = read_idx(os.path.join(data_dir, "train-images-idx3-ubyte"))
    ldims, labels = read_idx(os.path.join(data_dir, "train-labels-idx1-ubyte"))
    if dims[0] != ldims[0] or dims[1:] != (28, 28):
        raise ValueError(f"expected N 28x28 images and N labels, got {dims} and {ldims}")
    x = np.frombuffer(pixels, dtype=np.uint8).reshape(dims[0], 784).astype(np.float32) / 255.0
    y = np.frombuffer(labels, dtype=np.uint8).astype(np.int64)
    return x, y


def build(net, torch):
    nn = torch.nn

    class Cnn(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 5, padding=2)
            self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
            self.fc1 = nn.Linear(7 * 7 * 64, 1024)
            self.drop = nn.Dropout(0.5)
            self.fc2 = nn.Linear(1024, 10)

        def forward(self, x):
            f = nn.functional
            x = f.max_pool2d(f.relu(self.conv1(x.view(-1, 1, 28, 28))), 2)
            x = f.max_pool2d(f.relu(self.conv2(x)), 2)
            return self.fc2(self.drop(f.relu(self.fc1(x.flatten(1)))))

    class Rnn(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(28, 128, batch_first=True)
            self.out = nn.Linear(128, 10)

        def forward(self, x):
            h, _ = self.lstm(x.view(-1, 28, 28))
            return self.out(h[:, -1])

    if net == "softmax":
        return nn.Linear(784, 10)
    if net == "bp":
        return nn.Sequential(nn.Linear(784, 50), nn.Sigmoid(), nn.Linear(50, 10))
    if net == "mlp":
        return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    if net == "cnn":
        return Cnn()
    if net == "rnn":
        return Rnn()
    raise ValueError(net)


def median(xs):
    s = sorted(xs)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def synchronize(torch, dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def time_net(net, torch, dev, x, y, steps, warmup, seconds):
    batch, opt_name, lr = SETTINGS[net]
    torch.manual_seed(1)
    model = build(net, torch).to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr) if opt_name == "adam" else torch.optim.SGD(model.parameters(), lr=lr)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    count = x.shape[0]
    k = [0]

    def step():
        idx = [(k[0] * batch + b) % count for b in range(batch)]
        k[0] += 1
        xb, yb = xs[idx].to(dev), ys[idx].to(dev)
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    for _ in range(warmup):
        step().item()
    synchronize(torch, dev)
    times, measured = [], 0.0
    loss = float("nan")
    while len(times) < steps or (measured < seconds * 1000 and len(times) < 2000):
        t0 = time.perf_counter()
        loss = step().item()
        ms = (time.perf_counter() - t0) * 1000
        times.append(ms)
        measured += ms
    t0 = time.perf_counter()
    for _ in range(steps):
        last = step()
    last.item()
    pipe_ms = (time.perf_counter() - t0) * 1000 / steps
    gpu = []
    for _ in range(steps if dev.type == "cuda" else 0):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        step()
        b.record()
        b.synchronize()
        gpu.append(a.elapsed_time(b))
    step_ms = median(times)
    return {
        "figure": "torch_step", "net": net, "batch": batch, "optimizer": opt_name,
        "step_ms": round(step_ms, 4), "examples_per_s": round(batch * 1000 / step_ms, 1), "steps": len(times),
        "pipelined_step_ms": round(pipe_ms, 4), "gpu_step_ms": round(median(gpu), 4) if gpu else None, "loss": round(loss, 4),
    }


def time_matmul(torch, dev, shape, runs):
    """torch.mm of fp32 [M, K]·[K, N]: the median of `runs` timed products after two warm-ups."""
    m, k, n = (int(d) for d in shape.split("x"))
    gen = torch.Generator().manual_seed(1)
    a = torch.rand(m, k, generator=gen).to(dev)
    b = torch.rand(k, n, generator=gen).to(dev)
    for _ in range(2):
        torch.mm(a, b)
    synchronize(torch, dev)
    times = []
    for _ in range(max(runs, 3)):
        t0 = time.perf_counter()
        torch.mm(a, b)
        synchronize(torch, dev)
        times.append((time.perf_counter() - t0) * 1000)
    ms = median(times)
    return {"figure": "torch_matmul", "shape": shape, "median_ms": round(ms, 4), "runs": len(times),
            "gflops": round(2 * m * k * n / ms / 1e6, 1)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="folder with MNIST's training IDX files (raw or .gz)")
    p.add_argument("--nets", default=",".join(NETS))
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--matmul", default="", help="MxKxN shapes, comma-separated, for torch.mm's GFLOPS")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    a = p.parse_args()
    nets = a.nets.split(",")
    for n in nets:
        if n not in NETS:
            p.error(f"--nets {n!r} is not one of {', '.join(NETS)}")
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device(a.device)
    device = torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu"
    common = {"torch": torch.__version__, "cuda": torch.version.cuda, "cudnn_benchmark": torch.backends.cudnn.benchmark, "tf32": False, "device": device}
    for shape in filter(None, a.matmul.split(",")):
        try:
            line = time_matmul(torch, dev, shape, a.steps)
        except Exception as e:
            line = {"figure": "torch_matmul", "shape": shape, "error": f"{type(e).__name__}: {e}".split("\n")[0]}
        print(json.dumps({**line, **common}), flush=True)
    x, y = load_train(a.data)
    for net in nets:
        try:
            line = time_net(net, torch, dev, x, y, a.steps, a.warmup, a.seconds)
        except Exception as e:  # one net's failure is a line with "error"; the others still run
            line = {"figure": "torch_step", "net": net, "error": f"{type(e).__name__}: {e}".split("\n")[0]}
        print(json.dumps({**line, **common}), flush=True)
        print(f"[torch] {net}: {line}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
