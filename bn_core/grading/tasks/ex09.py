"""Exercise 9: freeze batch normalization for fine-tuning (torch).

The learner writes ``freeze_bn(model)``. Every check is about behaviour, judged on small
networks built here at grading time (their sizes, eps, momentum and weights drawn from the
grader's seed): after ``freeze_bn``, then ``model.train()`` and a few SGD steps with momentum
and weight decay (with an ``eval()``/``train()`` round trip in between),

- the outputs equal those of a reference frozen copy (:func:`_reference_freeze`: BN layers kept
  in eval mode whatever ``train()`` asks, their parameters without gradient);
- every BN buffer (``running_mean``, ``running_var``, ``num_batches_tracked``) and parameter
  (gamma, beta) is bit for bit what it was;
- the other layers still learn (their parameters change, as the reference's do);
- the state_dict has the original keys, and the original checkpoint loads strictly.

Named causes are read off the learner's model after the steps (which buffers moved, which
modules are in training mode), so a message blames the layer and the quantity that are wrong.
The rule (no ``bn_core`` while the learner's code runs: ``bn_core.torch_bridge`` has a
ready-made ``freeze_batchnorm``) is judged by what is called, with torch allowed.

torch is imported inside the functions: importing :mod:`bn_core.grading.tasks` must not need it.
"""

from __future__ import annotations

import copy
import types

import numpy as np

from ..core import Grader
from ..i18n import _
from ..rules import CallWatch
from ..safe_call import CallFailed, CallTimeout, time_limit
from ._common import check_value

STEPS = 3
LR, MOMENTUM, WEIGHT_DECAY = 0.05, 0.9, 0.01


#: The reference's freeze: a learner's code that calls it breaks the rule like any bn_core call.
_REFERENCE = ("_reference_freeze", "_frozen_train")


class _BnCoreWatch(CallWatch):
    """:class:`CallWatch` that allows torch (this exercise is written with it) but not bn_core.

    This file is inside bn_core and holds the networks the learner's function trains: its code
    is allowed, except the reference freeze (:data:`_REFERENCE`).
    """

    def __init__(self) -> None:
        super().__init__(allow_torch=True)

    def _profile(self, frame, event, arg) -> None:
        code = frame.f_code
        if event == "call" and code.co_filename == _HERE and code.co_name not in _REFERENCE:
            return  # the networks' own code and the grader's training step live in this file
        super()._profile(frame, event, arg)


_HERE = _BnCoreWatch._profile.__code__.co_filename


# -- the networks, built at grading time ---------------------------------------------------------
def _bn_types():
    import torch

    return torch.nn.modules.batchnorm._BatchNorm


def _custom_classes():
    """A block that holds its BN as an attribute, and a network of such blocks (a ModuleList)."""
    from torch import nn

    class Block(nn.Module):
        def __init__(self, n_in, n_out, **bn):
            super().__init__()
            self.proj = nn.Linear(n_in, n_out)
            self.norm = nn.BatchNorm1d(n_out, **bn)

        def forward(self, x):
            return torch_relu(self.norm(self.proj(x)))

    class Net(nn.Module):
        def __init__(self, sizes, classes):
            super().__init__()
            self.blocks = nn.ModuleList(
                [
                    Block(sizes[0], sizes[1], affine=False, momentum=0.3),
                    Block(sizes[1], sizes[2], eps=1e-3),
                ]
            )
            self.sync = nn.SyncBatchNorm(sizes[2], momentum=0.25)
            self.live = nn.BatchNorm1d(sizes[2], track_running_stats=False)
            self.drop = nn.Dropout(0.25)
            self.head = nn.Linear(sizes[2], classes)

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return self.head(self.drop(self.live(self.sync(x))))

    return Net


def torch_relu(x):
    import torch

    return torch.relu(x)


def _cnn(dtype):
    """Conv2d -> BatchNorm2d twice (nested Sequential), then a linear head; input (7, 3, 6, 9)."""
    from torch import nn

    net = nn.Sequential(
        nn.Sequential(
            nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5, eps=1e-3, momentum=0.3), nn.ReLU()
        ),
        nn.Sequential(nn.Conv2d(5, 4, 3), nn.BatchNorm2d(4), nn.ReLU()),
        nn.Flatten(),
        nn.Linear(4 * 4 * 7, 2),
    )
    return net.to(dtype), (7, 3, 6, 9), 2


def _mlp(dtype):
    """Linear -> BatchNorm1d -> ReLU twice, nested; input (13, 11)."""
    from torch import nn

    net = nn.Sequential(
        nn.Sequential(nn.Linear(11, 8), nn.BatchNorm1d(8, momentum=0.2), nn.ReLU()),
        nn.Sequential(nn.Linear(8, 6), nn.BatchNorm1d(6, eps=0.01), nn.ReLU()),
        nn.Linear(6, 3),
    )
    return net.to(dtype), (13, 11), 3


def _custom(dtype):
    """A custom Module: BN reached through attributes and a ModuleList, BatchNorm1d with
    affine=False, SyncBatchNorm, a track_running_stats=False layer and Dropout; input (9, 10)."""
    net = _custom_classes()((10, 7, 5), 4)
    return net.to(dtype), (9, 10), 4


def _volume(dtype):
    """Conv3d -> BatchNorm3d, Conv1d -> BatchNorm1d on (N, C, L); input (5, 2, 3, 4, 6)."""
    from torch import nn

    net = nn.Sequential(
        nn.Conv3d(2, 3, 2),
        nn.BatchNorm3d(3, momentum=0.4),
        nn.ReLU(),
        nn.Flatten(2),  # (N, 3, 2 * 3 * 5)
        nn.Conv1d(3, 4, 3),
        nn.BatchNorm1d(4, eps=1e-4),
        nn.Flatten(),
        nn.Linear(4 * 28, 2),
    )
    return net.to(dtype), (5, 2, 3, 4, 6), 2


NETWORKS = {"cnn": _cnn, "mlp": _mlp, "custom": _custom, "volume": _volume}


def _describe(name: str) -> str:
    """The network, as a failure message shows it (translated when called)."""
    return {
        "cnn": _("Conv2d -> BatchNorm2d, twice (nested Sequential), then Linear"),
        "mlp": _("Linear -> BatchNorm1d, twice (nested Sequential), then Linear"),
        "custom": _(
            "a custom Module: BatchNorm1d(affine=False) and BatchNorm1d(eps=1e-3) in a ModuleList "
            "of blocks, SyncBatchNorm, BatchNorm1d(track_running_stats=False), Dropout"
        ),
        "volume": _("Conv3d -> BatchNorm3d, Conv1d -> BatchNorm1d on (N, C, L), then Linear"),
    }[name]


def _pretrained(name: str, dtype, seed: int):
    """A network with random weights and 'pretrained' BN state (gamma, beta, statistics, count)."""
    import torch

    build = NETWORKS[name]
    torch.manual_seed(seed)
    net, in_shape, classes = build(dtype)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, _bn_types()):
                c = m.num_features
                if m.weight is not None:
                    m.weight.copy_(0.5 + torch.rand(c, generator=gen, dtype=torch.float64))
                    m.bias.copy_(torch.randn(c, generator=gen, dtype=torch.float64) * 0.5)
                if m.running_mean is not None:
                    m.running_mean.copy_(torch.randn(c, generator=gen, dtype=torch.float64))
                    m.running_var.copy_(0.3 + 2 * torch.rand(c, generator=gen, dtype=torch.float64))
                    m.num_batches_tracked.fill_(int(torch.randint(50, 500, (1,), generator=gen)))
    net.eval()
    xs = [
        (torch.randn(in_shape, generator=gen, dtype=torch.float64) * 1.5 + 0.3).to(dtype)
        for _ in range(STEPS + 1)
    ]
    targets = [torch.randn((in_shape[0], classes), generator=gen).to(dtype) for _ in xs]
    return net, xs, targets


def _frozen_train(self, mode=True):
    """``train()`` of a frozen BN layer of the reference: stay in eval mode."""
    import torch

    return torch.nn.Module.train(self, False)


def _reference_freeze(model):
    """The grader's frozen copy: BN layers in eval mode whatever ``train()`` asks, no gradient."""
    for m in model.modules():
        if isinstance(m, _bn_types()):
            m.requires_grad_(False)
            m.eval()
            m.train = types.MethodType(_frozen_train, m)
    return model


# -- running the learner's code --------------------------------------------------------------------
class _Runner:
    """Calls the learner's code (and the model it returned) under the time limit and the watch."""

    def __init__(self, grader: Grader, fn_name: str):
        self.grader = grader
        self.fn_name = fn_name
        self.violations: list[str] = []
        self.returned = 0
        self.kept: set[str] = set()

    def __call__(self, what: str, fn, *args):
        watch = _BnCoreWatch()
        try:
            with time_limit(self.grader.timeout), watch:
                value = fn(*args)
        except CallTimeout as exc:
            value = CallFailed(
                _("{what} {exc}: is there a loop that never ends?").format(what=what, exc=exc)
            )
        except NotImplementedError:
            value = CallFailed(
                _(
                    "{what} raised NotImplementedError: write your code where it says "
                    "`# YOUR CODE HERE` and delete the `raise NotImplementedError()` line"
                ).format(what=what)
            )
        except (Exception, SystemExit) as exc:
            value = CallFailed(
                _("{what} raised {kind}: {exc}").format(what=what, kind=type(exc).__name__, exc=exc)
            )
        else:
            self.returned += 1
        for v in watch.violations:
            if v not in self.violations:
                self.violations.append(v)
        return value

    def check_rules(self) -> None:
        rule = _("rules: no bn_core while your code runs")
        if self.violations:
            self.grader.check_true(
                rule,
                False,
                _(
                    "your code called {calls} while it ran. torch is yours to use here, but "
                    "bn_core's ready-made freeze (bn_core.torch_bridge.freeze_batchnorm, "
                    "FrozenBatchNorm1d/2d) is what this exercise asks you to write: whatever name "
                    "reaches it, a call into bn_core breaks the rule."
                ).format(calls=", ".join(self.violations)),
            )
        elif self.returned == 0:
            self.grader.check_true(
                rule,
                False,
                _("not checked, because your function never returned normally in this cell."),
            )
        else:
            self.grader.check_true(rule, True, "")


# -- one network, frozen, trained, compared -------------------------------------------------------
def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy()


def _bn_paths(net) -> dict[str, str]:
    """{module path: class name} of the BN layers of the original network."""
    return {name: type(m).__name__ for name, m in net.named_modules() if isinstance(m, _bn_types())}


def _is_bn_key(key: str, paths) -> bool:
    return any(key.startswith(p + ".") for p in paths)


def _steps(model, xs, targets, run=None):
    """model.train(), STEPS SGD steps (eval/train round trip before the last), then eval.

    Returns ``(train_outputs, eval_output)``; with ``run`` (the learner's model) every call goes
    through the runner and a failure ends the sequence (CallFailed in place of the outputs).
    """
    import torch

    def go(what, fn, *args):
        if run is None:
            return fn(*args)
        return run(what, fn, *args)

    params = list(model.parameters())
    buffers: dict[int, torch.Tensor] = {}
    outs = []
    failed = go(_("model.train()"), model.train)
    if isinstance(failed, CallFailed):
        return [failed] * STEPS, failed
    for k in range(STEPS):
        if k == STEPS - 1:
            # the trap of a freeze that only holds once: eval() then train() again
            for what, fn in [(_("model.eval()"), model.eval), (_("model.train()"), model.train)]:
                failed = go(what, fn)
                if isinstance(failed, CallFailed):
                    return outs + [failed] * (STEPS - k), failed
        torch.manual_seed(1000 + k)  # the same Dropout masks for the learner's and the reference
        out = go(_("the forward pass of the frozen model"), model, xs[k])
        if isinstance(out, CallFailed) or not isinstance(out, torch.Tensor):
            bad = (
                out
                if isinstance(out, CallFailed)
                else CallFailed(
                    _("the frozen model returned {kind}, not a tensor").format(
                        kind=type(out).__name__
                    )
                )
            )
            return outs + [bad] * (STEPS - k), bad
        outs.append(_np(out).copy())

        def step(out=out, k=k):
            loss = ((out - targets[k]) ** 2).mean()
            for p in params:
                p.grad = None
            if loss.requires_grad:
                loss.backward()
            _sgd(params, buffers)

        if params:
            failed = go(_("an SGD step (backward and optimizer.step())"), step)
            if isinstance(failed, CallFailed):
                return outs + [failed] * (STEPS - k - 1), failed
    failed = go(_("model.eval()"), model.eval)
    if isinstance(failed, CallFailed):
        return outs, failed
    with torch.no_grad():
        out = go(_("the forward pass in eval mode"), model, xs[STEPS])
    return outs, (_np(out).copy() if isinstance(out, torch.Tensor) else out)


def _sgd(params, buffers) -> None:
    """One step of ``torch.optim.SGD(params, lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)``.

    Written out because constructing a torch optimizer imports ``torch._dynamo`` (seconds on a
    loaded machine, more than a grading cell may take). Same rule as torch's: a parameter
    without a gradient is skipped (no decay, no momentum); the momentum buffer starts at the
    first gradient.
    """
    import torch

    with torch.no_grad():
        for p in params:
            if p.grad is None:
                continue
            d = p.grad.add(p, alpha=WEIGHT_DECAY)
            buf = buffers.get(id(p))
            buf = d.clone() if buf is None else buf.mul_(MOMENTUM).add_(d)
            buffers[id(p)] = buf
            p.add_(buf, alpha=-LR)


def _state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _modes(model, paths) -> tuple[list[str], list[str]]:
    """After model.train(): BN layers in training mode, other modules in eval mode."""
    bn_training, others_eval = [], []
    for name, m in model.named_modules():
        if name in paths or isinstance(m, _bn_types()):
            # a layer without running statistics computes the same in both modes
            if m.training and getattr(m, "running_mean", None) is not None:
                bn_training.append(f"`{name}` ({type(m).__name__})")
        elif not m.training and type(m).__name__ in ("Dropout",):
            others_eval.append(f"`{name}` ({type(m).__name__})")
    return bn_training, others_eval


def _grade_network(grader: Grader, run: _Runner, freeze_bn, name: str, dtype, seed: int) -> None:
    import torch

    np_dtype = np.dtype(str(dtype).replace("torch.", ""))
    net, xs, targets = _pretrained(name, dtype, seed)
    paths = _bn_paths(net)
    original = _state(net)
    what = _describe(name)
    tag = f"[{name}, {np_dtype.name}]"
    shown = _(
        "the network: {what}, built at grading time (seed {seed}) with 'pretrained' BN state "
        "(gamma, beta, running statistics, num_batches_tracked drawn at random); then "
        "model.train() and {steps} SGD steps (lr={lr}, momentum={m}, weight_decay={wd}, over "
        "model.parameters()), model.eval() and model.train() before the last step."
    ).format(what=what, seed=seed, steps=STEPS, lr=LR, m=MOMENTUM, wd=WEIGHT_DECAY)

    reference = _reference_freeze(copy.deepcopy(net))
    ref_train, ref_eval = _steps(reference, xs, targets)
    ref_state = _state(reference)

    fname = getattr(freeze_bn, "__name__", "freeze_bn")
    model = run(f"{fname}(model)", freeze_bn, copy.deepcopy(net))
    returned = _("{fname} returns the model {tag}").format(fname=fname, tag=tag)
    if not isinstance(model, CallFailed) and not isinstance(model, torch.nn.Module):
        got = "None" if model is None else type(model).__name__
        grader.check_true(
            returned,
            False,
            _(
                "{fname} returned {got}, not the model. The signature says it returns the model "
                "(`return model` at the end): a training script writes `model = {fname}(model)`"
                ", and a freeze that builds a new model is lost otherwise."
            ).format(fname=fname, got=got),
        )
        model = CallFailed(_("{fname} did not return the model").format(fname=fname))
    else:
        grader.check_true(returned, not isinstance(model, CallFailed), "", needs=[model])

    # state_dict keys: the frozen model saves and loads the original checkpoint
    keys_name = _("state_dict keys {tag}").format(tag=tag)
    load_name = _("the original checkpoint loads strictly {tag}").format(tag=tag)
    if isinstance(model, CallFailed):
        grader.check_true(keys_name, model, "")
        grader.check_true(load_name, model, "")
    else:
        got_keys = run(_("model.state_dict()"), lambda: list(model.state_dict().keys()))
        if isinstance(got_keys, CallFailed):
            grader.check_true(keys_name, got_keys, "")
        else:
            missing = [k for k in original if k not in got_keys]
            extra = [k for k in got_keys if k not in original]
            grader.check_true(
                keys_name,
                not missing and not extra,
                _(
                    "the frozen model's state_dict keys differ from the original's: missing "
                    "{missing}, unexpected {extra}. Replacing a BN layer by a new module changed "
                    "the checkpoint's layout (a frozen layer without num_batches_tracked, gamma "
                    "and beta renamed or moved): the frozen model must save and load the same "
                    "keys as the network it came from. Keep the BN modules (change their mode and "
                    "their parameters' requires_grad), or give a replacement exactly BN's "
                    "parameters and buffers."
                ).format(missing=missing[:4] or "none", extra=extra[:4] or "none"),
            )
        loaded = run(
            _("model.load_state_dict(original checkpoint, strict=True)"),
            lambda: model.load_state_dict(copy.deepcopy(original), strict=True),
        )
        grader.check_true(
            load_name,
            loaded,
            "",
            needs=[loaded],
        )

    if isinstance(model, CallFailed):
        train_outs, eval_out = [model] * STEPS, model
    else:
        train_outs, eval_out = _steps(model, xs, targets, run=run)
    after = None if isinstance(model, CallFailed) else run(_("model.state_dict()"), _state, model)
    ok_after = isinstance(after, dict)

    # the modes after model.train(), for the named causes
    bn_training, others_eval = [], []
    if ok_after:
        modes = run(_("model.train()"), lambda: (model.train(), _modes(model, paths))[1])
        if not isinstance(modes, CallFailed):
            bn_training, others_eval = modes

    # BN buffers and parameters, bit for bit
    def moved(kind: str) -> list[tuple[str, str]]:
        """(BN class, description) of every BN tensor ``kind`` that is not what it was."""
        out = []
        for path, cls in paths.items():
            key = f"{path}.{kind}"
            if key not in original:
                continue
            if key not in after:
                out.append((cls, _("{key} ({cls}) is missing").format(key=key, cls=cls)))
            elif after[key].shape != original[key].shape:
                out.append((cls, _("{key} ({cls}) has another shape").format(key=key, cls=cls)))
            elif not torch.equal(after[key], original[key]):
                if original[key].is_floating_point():
                    diff = float((after[key].double() - original[key].double()).abs().max())
                    text = _("{key} ({cls}, largest change {diff:.3g})")
                    out.append((cls, text.format(key=key, cls=cls, diff=diff)))
                else:
                    text = _("{key} ({cls}: {a} -> {b})")
                    a, b = int(original[key]), int(after[key].reshape(-1)[0])
                    out.append((cls, text.format(key=key, cls=cls, a=a, b=b)))
        return out

    stats_name = _("running_mean and running_var of every BN layer unchanged {tag}").format(tag=tag)
    count_name = _("num_batches_tracked of every BN layer unchanged {tag}").format(tag=tag)
    affine_name = _("gamma (weight) and beta (bias) of every BN layer unchanged {tag}").format(
        tag=tag
    )
    if not ok_after:
        failure = after if isinstance(after, CallFailed) else model
        for check in (stats_name, count_name, affine_name):
            grader.check_true(check, failure, "")
    else:
        stats = moved("running_mean") + moved("running_var")
        hit = sorted({cls for cls, _text in stats})
        tracked = {cls for path, cls in paths.items() if f"{path}.running_mean" in original}
        run.kept |= tracked - set(hit)  # types this cell's networks kept frozen
        if stats and run.kept - set(hit):
            cause = _(
                "Your code froze some BN types but not {missed}: BatchNorm1d, BatchNorm2d, "
                "BatchNorm3d and SyncBatchNorm all derive from "
                "torch.nn.modules.batchnorm._BatchNorm (test isinstance against it, or list "
                "every type)."
            ).format(missed=", ".join(hit))
        else:
            cause = _(
                "These layers ran in training mode during the steps and updated their running "
                "statistics. requires_grad_(False) freezes gamma and beta, not the statistics; "
                "a per-layer .eval() is undone by the next model.train() (train() is recursive). "
                "A frozen layer must stay in eval mode through model.train()."
            )
        grader.check_true(
            stats_name,
            not stats,
            _("{layers} changed. {cause}").format(
                layers="; ".join(t for _c, t in stats[:4]), cause=cause
            ),
        )
        counts = moved("num_batches_tracked")
        count_cause = (
            _(
                "The running statistics stayed but the batches were still counted: the layers "
                "ran in training mode with momentum=0 (or track_running_stats switched off). "
                "That keeps the statistics fixed but still normalizes every batch with its own "
                "mean and variance; a frozen layer uses the running statistics (eval mode)."
            )
            if not stats
            else _("The layers ran in training mode (see the running statistics above).")
        )
        grader.check_true(
            count_name,
            not counts,
            _("{layers} changed. {cause}").format(
                layers="; ".join(t for _c, t in counts[:4]), cause=count_cause
            ),
        )
        affine = moved("weight") + moved("bias")
        grader.check_true(
            affine_name,
            not affine,
            _(
                "{layers} changed. Their requires_grad is still True: the optimizer's gradient "
                "step, momentum and weight decay move them, in eval mode too (eval() changes "
                "which statistics normalize, not what the optimizer updates). Set "
                "requires_grad_(False) on the BN layers' parameters."
            ).format(layers="; ".join(t for _c, t in affine[:4])),
        )

    # outputs during the steps and in eval mode, against the reference
    if others_eval:
        hint = _(
            "after model.train() these modules are in eval mode: {mods}. Freeze only the BN "
            "layers; Dropout (and everything else) must still follow model.train()."
        ).format(mods=", ".join(others_eval))
    elif bn_training:
        hint = _(
            "after model.train() these BN layers are in training mode: {mods}. In training mode "
            "BN normalizes every batch with the batch's own mean and variance; a frozen BN "
            "uses running_mean and running_var (eval mode), whatever model.train() asks."
        ).format(mods=", ".join(bn_training))
    else:
        hint = _(
            "a frozen BN layer computes what it computes in eval mode, gamma * (x - "
            "running_mean) / sqrt(running_var + eps) + beta with the layer's own eps (some layers "
            "here have an eps other than 1e-5), and passes the gradient on to the layers before it."
        )
    for k in range(STEPS):
        check_value(
            grader,
            _("outputs of model(x) in training mode, step {k} {tag}").format(k=k + 1, tag=tag),
            train_outs[k],
            ref_train[k],
            np_dtype,
            shown,
            hint=hint,
            tol=(1e-4, 1e-5) if np_dtype == np.float32 else (1e-7, 1e-9),
        )
    check_value(
        grader,
        _("outputs of model(x) in eval mode after the steps {tag}").format(tag=tag),
        eval_out,
        ref_eval,
        np_dtype,
        shown,
        hint=hint,
        tol=(1e-4, 1e-5) if np_dtype == np.float32 else (1e-7, 1e-9),
    )

    # the other layers learn
    learn_name = _("the other layers' parameters are trained {tag}").format(tag=tag)
    match_name = _("the other layers' parameters after the steps {tag}").format(tag=tag)
    if not ok_after:
        for check in (learn_name, match_name):
            grader.check_true(check, after if isinstance(after, CallFailed) else model, "")
        return
    others = [k for k in original if k in dict(net.named_parameters()) and not _is_bn_key(k, paths)]
    still = [k for k in others if k in after and torch.equal(after[k], original[k])]
    grader.check_true(
        learn_name,
        not still,
        _(
            "{keys} did not change in {steps} SGD steps: no gradient reached them. Freeze the BN "
            "layers only (not model.requires_grad_(False), not every parameter), and let the "
            "gradient flow through a frozen layer (no .detach() or torch.no_grad() in its "
            "forward pass)."
        ).format(keys=", ".join(still[:4]), steps=STEPS),
    )
    close = [
        k
        for k in others
        if k in after
        and k not in still
        and not np.allclose(
            _np(after[k]),
            _np(ref_state[k]),
            rtol=1e-3 if np_dtype == np.float32 else 1e-6,
            atol=1e-5 if np_dtype == np.float32 else 1e-9,
        )
    ]
    grader.check_true(
        match_name,
        not close,
        _(
            "{keys} differ from those of a correctly frozen copy trained the same way: the "
            "gradient that reaches them is not the one through a frozen BN. {hint}"
        ).format(keys=", ".join(close[:4]), hint=hint),
    )


# -- the grading cells -----------------------------------------------------------------------------
def check_freeze_basic(grader: Grader, freeze_bn) -> None:
    """Grading cell 1: Conv2d + BatchNorm2d (float32), Linear + BatchNorm1d (float64)."""
    import torch

    run = _Runner(grader, getattr(freeze_bn, "__name__", "freeze_bn"))
    _grade_network(grader, run, freeze_bn, "cnn", torch.float32, grader.seed % 10**5 * 10 + 1)
    _grade_network(grader, run, freeze_bn, "mlp", torch.float64, grader.seed % 10**5 * 10 + 2)
    run.check_rules()


def check_freeze_traps(grader: Grader, freeze_bn) -> None:
    """Grading cell 2: a custom Module (ModuleList, affine=False, SyncBatchNorm,
    track_running_stats=False, Dropout) and BatchNorm3d with a BatchNorm1d on (N, C, L)."""
    import torch

    run = _Runner(grader, getattr(freeze_bn, "__name__", "freeze_bn"))
    _grade_network(grader, run, freeze_bn, "custom", torch.float32, grader.seed % 10**5 * 10 + 3)
    _grade_network(grader, run, freeze_bn, "volume", torch.float64, grader.seed % 10**5 * 10 + 4)
    run.check_rules()
