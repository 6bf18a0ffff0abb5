"""Problems on the noisy quadratic data set."""

from __future__ import annotations

from deepobs.datasets.quadratic import Quadratic
from deepobs.models.quadratic import NoisyQuadratic, deep_learning_hessian
from deepobs.registry import register_problem
from deepobs.testproblems.base import TestProblem


class _QuadraticProblem(TestProblem):
    """A quadratic ½(θ−x)ᵀQ(θ−x) averaged over noisy points x; the model is θ itself."""

    has_accuracy = False
    dataset_name = "quadratic (1,000 points in R^100)"
    loss_name = "½(θ−x)ᵀQ(θ−x)"

    def _build_data(self, **dataset_kwargs):
        return Quadratic(self._batch_size, **dataset_kwargs)

    def loss_function(self, outputs, targets):
        return outputs  # the model already returns the per-example loss


@register_problem("quadratic_deep")
class QuadraticDeep(_QuadraticProblem):
    """P1: a 100-D quadratic with the eigenspectrum of a deep learning problem.

    Q = Rᵀ diag(λ) R, 90 eigenvalues from U(0, 1) and 10 from U(30, 60), R a Haar
    rotation, all drawn from a fixed seed (42) for every instance. θ starts at 1.
    With ``protocol="1.1"`` the epoch-0 test loss is 353.4468, as in the published
    baselines. Defaults: batch size 128, 100 epochs.
    """

    default_batch_size = 128
    default_num_epochs = 100
    model_name = "θ ∈ R^100, deep-learning eigenspectrum"

    def _build_net(self):
        return NoisyQuadratic(deep_learning_hessian(100))
