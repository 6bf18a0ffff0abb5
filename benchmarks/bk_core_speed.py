"""Speed of the BK-Core (forward + backward) against causal softmax attention.

Times, at batch 8 and sequence lengths N (default 64 … 65,536):

* the BK-Core, parallel form (Möbius-map scan) and sequential form (Python loop), causal
  mode, float32, exact autograd backward of the sum of Re G and Im G;
* one head of dense causal softmax attention, d = 64, with the N×N score matrix
  materialised (only where it fits in ``--memory-gb``);
* the same attention through ``F.scaled_dot_product_attention(is_causal=True)``,
  which on the CPU runs a flash-attention kernel with O(N) memory.

It reports the growth t(64k)/t(16k) of the parallel BK-Core (linear: about 4), where the
BK-Core becomes faster than attention, and the ratio at N = 16,384. Each time is the
minimum of ``--repeats`` runs after one warm-up (runs expected over 10 s: one run);
configurations whose estimated time is above ``--budget`` seconds are estimated from
the largest measured N instead (marked ``~``), never silently dropped.

    .venv/bin/python benchmarks/bk_core_speed.py [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deepobs.models.bk_core import BKCore  # noqa: E402

BATCH = 8
HEAD_DIM = 64


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def median_time(step, device: str, repeats: int, warm_up: bool = True) -> float:
    if warm_up:
        step()
        synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)  # the least disturbed run (timeit's rule; the machine may be shared)


def bk_step(n: int, method: str, device: str):
    core = BKCore(1j, causal=True, method=method)
    potential = torch.randn(BATCH, n, device=device).clamp(-3, 3).requires_grad_()

    def step():
        potential.grad = None
        torch.view_as_real(core(potential)).sum().backward()

    return step


def attention_step(n: int, kind: str, device: str):
    generator = torch.Generator(device=device).manual_seed(0)
    q, k, v = (torch.randn(BATCH, 1, n, HEAD_DIM, device=device, generator=generator).requires_grad_()
               for _ in range(3))
    mask = torch.ones(n, n, dtype=torch.bool, device=device).tril() if kind == "dense" else None

    def step():
        for tensor in (q, k, v):
            tensor.grad = None
        if kind == "dense":
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(HEAD_DIM)
            weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
            output = weights @ v
        else:
            output = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        output.sum().backward()

    return step


def dense_bytes(n: int) -> float:
    """Peak bytes of materialised attention: scores, weights and their gradients, mask."""
    return 4 * BATCH * n * n * 4 + n * n


def measure(name: str, lengths, make_step, device: str, repeats: int, budget: float,
            growth: float, fits=lambda n: True) -> dict:
    """Times per N; beyond the budget (or memory), an estimate ``growth``-power of N."""
    times, estimated = {}, set()
    last, guess = None, 0.0
    for n in lengths:
        if not fits(n):
            times[n] = None
            print(f"  {name:>22} N={n:>6}: does not fit in memory", flush=True)
            continue
        if last is not None:
            guess = times[last] * (n / last) ** growth
            if guess > budget:
                times[n] = guess
                estimated.add(n)
                print(f"  {name:>22} N={n:>6}: ~{guess:.3g} s (estimated, over budget)", flush=True)
                continue
        # Runs expected to take over 10 s: one timing, no warm-up (the kernels were
        # warmed up at the smaller N).
        long_run = guess > 10.0
        times[n] = median_time(make_step(n), device, 1 if long_run else repeats,
                               warm_up=not long_run or last is None)
        last = n
        print(f"  {name:>22} N={n:>6}: {times[n]:.4g} s", flush=True)
    return {"times": times, "estimated": estimated}


def fmt(result: dict, n: int) -> str:
    value = result["times"].get(n)
    if value is None:
        return "OOM".rjust(10)
    text = f"{value * 1e3:.1f}"
    return (("~" if n in result["estimated"] else "") + text).rjust(10)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 1024, 4096, 16384, 65536])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per single measurement")
    parser.add_argument("--memory-gb", type=float, default=6.0, help="limit for materialised attention")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"batch {BATCH}, float32, device {args.device}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}", flush=True)
    lengths = sorted(args.lengths)
    results = {
        "BK parallel": measure("BK-Core parallel", lengths, lambda n: bk_step(n, "parallel", args.device),
                               args.device, args.repeats, args.budget, 1.0),
        "BK sequential": measure("BK-Core sequential", lengths,
                                 lambda n: bk_step(n, "sequential", args.device),
                                 args.device, args.repeats, args.budget, 1.0),
        "attn dense": measure("dense attention", lengths,
                              lambda n: attention_step(n, "dense", args.device), args.device,
                              args.repeats, args.budget, 2.0,
                              fits=lambda n: dense_bytes(n) <= args.memory_gb * 2**30),
        "attn SDPA": measure("SDPA (flash) attention", lengths,
                             lambda n: attention_step(n, "sdpa", args.device), args.device,
                             args.repeats, args.budget, 2.0),
    }
    print("\nforward+backward time in ms (~ = estimated from the largest measured N, OOM = "
          f"over {args.memory_gb:g} GB)")
    print("N".rjust(7) + "".join(name.rjust(15) for name in results))
    for n in lengths:
        print(f"{n:>7}" + "".join(fmt(result, n).rjust(15) for result in results.values()))

    parallel = results["BK parallel"]["times"]
    if 16_384 in parallel and 65_536 in parallel:
        print(f"\nBK-Core parallel growth t(65536)/t(16384) = {parallel[65_536] / parallel[16_384]:.2f} "
              "(linear: 4)")
    sequential = results["BK sequential"]["times"]
    speedups = [f"N={n}: {sequential[n] / parallel[n]:.1f}x" for n in lengths
                if sequential.get(n) and parallel.get(n)]
    print("parallel vs Python loop: " + ", ".join(speedups))
    for name in ("attn dense", "attn SDPA"):
        attention = results[name]["times"]
        faster = [n for n in lengths if attention.get(n) and parallel[n] < attention[n]]
        crossover = f"from N={faster[0]} on (of the N measured)" if faster else "at none of the N measured"
        print(f"BK parallel faster than {name} {crossover}")
        if attention.get(16_384) and parallel.get(16_384):
            mark = " (attention time estimated)" if 16_384 in results[name]["estimated"] else ""
            print(f"  ratio at N=16384: {name} / BK parallel = {attention[16_384] / parallel[16_384]:.1f}{mark}")


if __name__ == "__main__":
    main()
