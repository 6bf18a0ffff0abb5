"""Smoke test: build every registered problem on tiny random data and take two SGD steps.

    python smoke_test.py [PATTERN]

Prints one line per problem and a pass/fail count; exits 1 if any problem fails.
"""

import math
import sys
import time
import traceback

import torch

import deepobs
from deepobs.runners.runner import seed_everything

BATCH_SIZE = 2
FAKE_EXAMPLES = 16


def smoke(name: str) -> str:
    """Two training steps and one test evaluation of problem ``name``; returns a summary."""
    seed_everything(42)
    problem = deepobs.get_problem(name, BATCH_SIZE, device="cpu", fake_data=FAKE_EXAMPLES).set_up()
    optimizer = torch.optim.SGD(problem.net.parameters(), lr=1e-3)
    problem.train_init_op()
    losses = []
    for _ in range(2):
        optimizer.zero_grad()
        loss, _ = problem.get_batch_loss_and_accuracy()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    if not all(math.isfinite(value) for value in losses):
        raise FloatingPointError(f"non-finite training loss {losses}")
    test_loss, test_accuracy = problem.evaluate("test")
    accuracy = "" if test_accuracy is None else f", test acc {test_accuracy:.3f}"
    return f"{problem.num_parameters():>12,} params, losses {losses[0]:.4g} {losses[1]:.4g}{accuracy}"


def main(pattern: str = "*") -> int:
    names = deepobs.list_problems(pattern)
    failed = 0
    for name in names:
        started = time.perf_counter()
        try:
            summary = smoke(name)
            status = "ok  "
        except Exception as error:  # report every failing problem, then fail at the end
            failed += 1
            status = "FAIL"
            summary = f"{type(error).__name__}: {error}"
            traceback.print_exc(file=sys.stderr)
        print(f"{status} {name:<26} {summary} ({time.perf_counter() - started:.1f}s)", flush=True)
    print(f"{len(names) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
