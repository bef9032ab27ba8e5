"""bn_core: batch normalization from first principles, in numpy.

The public API follows PyTorch's names and conventions (channel axis 1, ``eps=1e-5``,
``momentum=0.1`` weighting the new batch, biased variance to normalize, unbiased variance
in ``running_var``). Importing ``bn_core`` does not import torch; only
``bn_core.torch_bridge`` does.
"""

from bn_core.fold import fold_batch_norm
from bn_core.functional import (
    BatchNormCache,
    batch_norm,
    batch_norm_backward,
    batch_norm_backward_graph,
    batch_norm_forward,
)
from bn_core.gradcheck import numerical_gradient, rel_error
from bn_core.modules import BatchNorm1d, BatchNorm2d
from bn_core.renorm import batch_renorm as batch_renorm  # re-exported (Ioffe 2017)
from bn_core.renorm import batch_renorm_backward as batch_renorm_backward
from bn_core.renorm import batch_renorm_forward as batch_renorm_forward
from bn_core.sync import ShardStats as ShardStats  # re-exported (numpy synchronized BN)
from bn_core.sync import merge_stats as merge_stats
from bn_core.sync import shard_stats as shard_stats
from bn_core.sync import sync_batch_norm_backward as sync_batch_norm_backward
from bn_core.sync import sync_batch_norm_forward as sync_batch_norm_forward

__version__ = "0.1.0"

__all__ = [
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNormCache",
    "batch_norm",
    "batch_norm_backward",
    "batch_norm_backward_graph",
    "batch_norm_forward",
    "fold_batch_norm",
    "numerical_gradient",
    "rel_error",
]
