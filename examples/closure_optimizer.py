"""An optimizer that needs a closure (L-BFGS) through a StandardRunner subclass.

``StandardRunner.training_step`` makes one optimizer step on the next training batch.
L-BFGS re-evaluates the loss of one batch several times per step, so the subclass
draws the batch once (``get_batch_loss_and_accuracy_func``) and hands the optimizer a
closure over it. Everything else (evaluation, checkpoints, result file) is unchanged.

Example::

    python examples/closure_optimizer.py --num_epochs 10
"""

from __future__ import annotations

import argparse

import torch

from deepobs import StandardRunner


class ClosureRunner(StandardRunner):
    """Calls ``optimizer.step(closure)`` with a closure over one training batch."""

    def training_step(self, tproblem, optimizer):
        batch = tproblem.get_batch_loss_and_accuracy_func()  # raises StopIteration after the last batch

        def closure():
            optimizer.zero_grad()
            loss, _ = batch()
            loss.backward()
            return loss

        return optimizer.step(closure)  # L-BFGS returns the loss of its first evaluation


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="quadratic_deep")
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--max_iter", type=int, default=5)
    parser.add_argument("-N", "--num_epochs", type=int, default=10)
    parser.add_argument("--output_dir", default="results_lbfgs")
    args = parser.parse_args(argv)

    hyperparameters = {"lr": {"type": float}, "max_iter": {"type": int, "default": 20},
                       "history_size": {"type": int, "default": 10}}
    runner = ClosureRunner(torch.optim.LBFGS, hyperparameters, optimizer_name="LBFGS")
    output = runner.run(args.problem, {"lr": args.lr, "max_iter": args.max_iter},
                        num_epochs=args.num_epochs, output_dir=args.output_dir, protocol="1.1",
                        device="cpu", quiet=True, overwrite=True)
    losses = output["test_losses"]
    print(f"{args.problem}, L-BFGS lr {args.lr}, max_iter {args.max_iter}: test loss "
          f"{losses[0]:.2f} at epoch 0 -> {losses[-1]:.2f} after {args.num_epochs} epochs")
    return output


if __name__ == "__main__":
    main()
