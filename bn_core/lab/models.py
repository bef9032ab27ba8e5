"""The small torch networks the chapters train: an MLP with a choice of normalization.

Each hidden layer is ``Linear -> norm -> activation (-> dropout)``: batch normalization sits
before the activation, in every layer independently, as in the paper and the source notes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
}

NormSpec = str | Callable[[int], nn.Module] | None

#: Variance gain of the fan-in initializations: Var(w) = gain / fan_in (He for ReLU, LeCun
#: for sigmoid and tanh).
FAN_IN_GAINS = {"he": 2.0, "lecun": 1.0}


def make_norm(norm: NormSpec, width: int, *, num_groups: int = 4) -> nn.Module:
    """Build the normalization layer for a hidden layer of ``width`` units.

    Parameters
    ----------
    norm : {None, "batch", "bn_core", "layer", "group"} or callable
        ``None`` gives an identity; ``"batch"`` torch's ``BatchNorm1d``; ``"bn_core"`` the
        course's own numpy implementation through :mod:`bn_core.torch_bridge`; ``"layer"``
        ``LayerNorm``; ``"group"`` ``GroupNorm`` with ``num_groups`` groups. A callable is called
        with ``width`` and must return a module.
    width : int
        Number of features.
    num_groups : int, default 4
        Groups for ``"group"``; must divide ``width``.
    """
    if norm is None:
        return nn.Identity()
    if callable(norm):
        return norm(width)
    if norm == "batch":
        return nn.BatchNorm1d(width)
    if norm == "bn_core":
        from bn_core.torch_bridge import BatchNorm1d

        return BatchNorm1d(width)
    if norm == "layer":
        return nn.LayerNorm(width)
    if norm == "group":
        if width % num_groups:
            raise ValueError(f"num_groups={num_groups} must divide the layer width {width}")
        return nn.GroupNorm(num_groups, width)
    raise ValueError(
        f"norm must be None, 'batch', 'bn_core', 'layer', 'group' or a callable, got {norm!r}"
    )


class MLP(nn.Module):
    """A fully connected classifier: ``[Linear -> norm -> activation] x L -> Linear``.

    Parameters
    ----------
    in_features, out_features : int
        Input size and number of classes.
    hidden : sequence of int, default (100, 100, 100)
        Widths of the hidden layers (the paper's Figure 1 network has three of 100 units).
    activation : {"sigmoid", "relu", "tanh"}, default "sigmoid"
    norm : see :func:`make_norm`, default None
    init_std : float, "he" or "lecun", optional
        If a number, every weight is drawn from N(0, init_std^2) and biases start at 0 (the
        paper's "small Gaussian" initialization, and the scale sweeps). ``"he"`` draws from
        N(0, 2 / fan_in) and ``"lecun"`` from N(0, 1 / fan_in), biases 0 (fan-in
        initializations, the BN-free baseline). Otherwise torch's default initialization.
    dropout : float, default 0.0
        Dropout probability after each hidden activation.
    linear_bias : bool, optional
        Whether hidden Linear layers have a bias. Defaults to ``norm is None``: a bias right
        before batch normalization is cancelled by the mean subtraction, so it is left out.
    num_groups : int, default 4
        Groups for GroupNorm.

    Attributes
    ----------
    record : bool
        When True, each forward pass stores the inputs of the hidden activations (after
        normalization) in ``preactivations`` and the Linear outputs in ``linear_outputs``.
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int] = (100, 100, 100),
        out_features: int = 10,
        *,
        activation: str = "sigmoid",
        norm: NormSpec = None,
        init_std: float | str | None = None,
        dropout: float = 0.0,
        linear_bias: bool | None = None,
        num_groups: int = 4,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if linear_bias is None:
            linear_bias = norm is None
        widths = [in_features, *hidden]
        self.linears = nn.ModuleList(
            nn.Linear(a, b, bias=linear_bias) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.norms = nn.ModuleList(make_norm(norm, w, num_groups=num_groups) for w in hidden)
        self.activation = ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(widths[-1], out_features)
        if isinstance(init_std, str) and init_std not in FAN_IN_GAINS:
            raise ValueError(f"init_std must be a number, 'he' or 'lecun', got {init_std!r}")
        if init_std is not None:
            for layer in [*self.linears, self.head]:
                std = (
                    (FAN_IN_GAINS[init_std] / layer.in_features) ** 0.5
                    if isinstance(init_std, str)
                    else init_std
                )
                nn.init.normal_(layer.weight, std=std)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
        self.record = False
        self.preactivations: list[torch.Tensor] = []
        self.linear_outputs: list[torch.Tensor] = []

    @property
    def layers(self) -> list[nn.Linear]:
        """All Linear layers, input to output (hidden layers, then the head)."""
        return [*self.linears, self.head]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.record:
            self.preactivations, self.linear_outputs = [], []
        for linear, norm in zip(self.linears, self.norms, strict=True):
            z = linear(x)
            u = norm(z)
            if self.record:
                self.linear_outputs.append(z.detach())
                self.preactivations.append(u.detach())
            x = self.dropout(self.activation(u))
        return self.head(x)
