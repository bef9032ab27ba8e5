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
from bn_core.modules import BatchNorm1d, BatchNorm2d, BatchNorm3d
from bn_core.renorm import batch_renorm, batch_renorm_backward, batch_renorm_forward
from bn_core.sync import (
    ShardStats,
    merge_stats,
    shard_stats,
    sync_batch_norm_backward,
    sync_batch_norm_forward,
)

__version__ = "0.1.0"

__all__ = [
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "BatchNormCache",
    "ShardStats",
    "batch_norm",
    "batch_norm_backward",
    "batch_norm_backward_graph",
    "batch_norm_forward",
    "batch_renorm",
    "batch_renorm_backward",
    "batch_renorm_forward",
    "fold_batch_norm",
    "merge_stats",
    "numerical_gradient",
    "rel_error",
    "shard_stats",
    "sync_batch_norm_backward",
    "sync_batch_norm_forward",
]
