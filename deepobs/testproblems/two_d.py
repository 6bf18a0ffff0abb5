"""The 2-D test functions with additive noise: Beale, Branin, Rosenbrock."""

from __future__ import annotations

from deepobs.datasets.two_d import TwoD
from deepobs.models.two_d import NoisyTwoD, beale, branin, rosenbrock
from deepobs.registry import register_problem
from deepobs.testproblems.base import TestProblem


class _TwoDProblem(TestProblem):
    """f(u, v) + u·x + v·y with noise (x, y) ~ N(0, I); the test loss is f(u, v).

    DeepOBS publishes no defaults for these problems; batch size 128 and 100 epochs
    are ours.
    """

    has_accuracy = False
    default_batch_size = 128
    default_num_epochs = 100
    dataset_name = "two_d (10,000 noise pairs)"
    loss_name = "f(u,v) + u·x + v·y"
    function = None
    start = (0.0, 0.0)

    def _build_data(self, **dataset_kwargs):
        return TwoD(self._batch_size, **dataset_kwargs)

    def _build_net(self):
        return NoisyTwoD(type(self).function, self.start)

    def loss_function(self, outputs, targets):
        return outputs


@register_problem("two_d_beale")
class TwoDBeale(_TwoDProblem):
    """Noisy Beale function, started at (−4.5, 4.5)."""

    function = staticmethod(beale)
    start = (-4.5, 4.5)
    model_name = "Beale, start (−4.5, 4.5)"


@register_problem("two_d_branin")
class TwoDBranin(_TwoDProblem):
    """Noisy Branin function, started at (2.5, 12.5)."""

    function = staticmethod(branin)
    start = (2.5, 12.5)
    model_name = "Branin, start (2.5, 12.5)"


@register_problem("two_d_rosenbrock")
class TwoDRosenbrock(_TwoDProblem):
    """Noisy Rosenbrock function, started at (−0.5, 1.5)."""

    function = staticmethod(rosenbrock)
    start = (-0.5, 1.5)
    model_name = "Rosenbrock, start (−0.5, 1.5)"
