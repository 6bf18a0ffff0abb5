"""Runner overhead: the runner's training pass against a plain PyTorch loop.

    python benchmarks/runner_overhead.py [--problems quadratic_deep mnist_mlp] [--repeats 7]

Both passes train the same model on the same in-memory tensors with the same optimizer
and batch size; the plain loop is the shortest honest loop (shuffled index gather,
the same per-batch conversion of the stored tensors, forward, mean loss, backward,
step, log every 10th loss). Passes alternate, and the
figure is the median of ``--repeats`` each, as a ratio (target: within 5 %).
"""

import argparse
import statistics
import time

import torch

import deepobs
from deepobs.runners.optimizer_setup import PreparedOptimizer  # what the runner drives
from deepobs.runners.runner import StandardRunner, TrainingLog, seed_everything

DEFAULT_PROBLEMS = ["quadratic_deep", "mnist_mlp", "fmnist_2c2d"]


def build(name: str, fake_data: int):
    seed_everything(0)
    problem = deepobs.get_problem(name, device="cpu", fake_data=fake_data, protocol="1.1").set_up()
    optimizer = torch.optim.SGD(problem.net.parameters(), lr=1e-6)
    return problem, optimizer


def runner_pass(problem, optimizer) -> float:
    runner = StandardRunner(torch.optim.SGD, {"lr": {"type": float}})
    runner._quiet = True
    log = TrainingLog(problem)
    started = time.perf_counter()
    runner.train_epoch(problem, PreparedOptimizer([optimizer], "plain", {}), log, 0, 1, train_log_interval=10,
                       print_train_iter=False)
    return time.perf_counter() - started


def plain_pass(problem, optimizer, inputs, targets) -> float:
    batch_size = problem.batch_size
    model = problem.net.train()
    steps = inputs.shape[0] // batch_size
    losses = []
    started = time.perf_counter()
    order = torch.randperm(inputs.shape[0])
    for step in range(steps):
        index = order[step * batch_size:(step + 1) * batch_size]
        # The same stored tensors and the same per-batch conversion (uint8 -> float).
        outputs = model(problem.data.transform_batch(inputs[index], train=True))
        loss = problem.loss_function(outputs, targets[index]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 10 == 0:
            losses.append(loss.item())
    return time.perf_counter() - started


def measure(name: str, fake_data: int, repeats: int) -> dict:
    problem, optimizer = build(name, fake_data)
    train = problem.data.splits["train"]
    inputs, targets = train.inputs, train.targets
    runner_times, plain_times = [], []
    runner_pass(problem, optimizer)  # warm-up
    plain_pass(problem, optimizer, inputs, targets)
    for repeat in range(repeats):  # alternate, and rotate which variant goes first
        if repeat % 2:
            plain_times.append(plain_pass(problem, optimizer, inputs, targets))
        runner_times.append(runner_pass(problem, optimizer))
        if not repeat % 2:
            plain_times.append(plain_pass(problem, optimizer, inputs, targets))
    runner_time, plain_time = statistics.median(runner_times), statistics.median(plain_times)
    return {"problem": name, "steps": problem.data.num_batches("train"), "runner_s": runner_time,
            "plain_s": plain_time, "ratio": runner_time / plain_time}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=DEFAULT_PROBLEMS)
    parser.add_argument("--fake_data", type=int, default=12_800,
                        help="training examples of the real shape (default 12,800: 100 steps at bs 128)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch intra-op threads (default: all cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"{'problem':<16} {'steps':>6} {'runner s':>9} {'plain s':>9} {'runner/plain':>13}")
    for name in args.problems:
        if name not in deepobs.list_problems():
            print(f"{name:<16} (not registered, skipped)")
            continue
        row = measure(name, args.fake_data, args.repeats)
        print(f"{row['problem']:<16} {row['steps']:>6} {row['runner_s']:>9.4f} {row['plain_s']:>9.4f} "
              f"{row['ratio']:>13.3f}")


if __name__ == "__main__":
    main()
