"""Problems on SVHN: 3c3d and WRN-16-4."""

from __future__ import annotations

from deepobs.datasets.svhn import SVHN
from deepobs.registry import register_problem
from deepobs.testproblems.bases import ThreeC3DProblem, WideResNetProblem


class _SVHNProblem:
    dataset_class = SVHN
    dataset_name = "SVHN"
    num_classes = 10


@register_problem("svhn_3c3d")
class SVHN_3c3d(_SVHNProblem, ThreeC3DProblem):
    """3c3d on SVHN, L2 0.002 on all weights. 895,210 parameters.

    Defaults (DeepOBS's later config): batch size 128, 100 epochs.
    """

    default_batch_size = 128
    default_num_epochs = 100


@register_problem("svhn_wrn164")
class SVHN_WRN164(_SVHNProblem, WideResNetProblem):
    """P7: WRN-16-4 on SVHN, L2 5e-4 on conv and dense kernels. 2,748,890 parameters.

    Defaults (DeepOBS config): batch size 128, 160 epochs. Reference training:
    Momentum 0.9, lr 0.01, ×0.1 after epochs 80 and 120.
    """

    depth, widening_factor = 16, 4
    model_name = "WRN-16-4"
    default_batch_size = 128
    default_num_epochs = 160


__all__ = ["SVHN_3c3d", "SVHN_WRN164"]
