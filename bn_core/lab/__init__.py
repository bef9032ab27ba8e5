"""Experiment helpers shared by the book's chapters (datasets, models, training, plots).

``bn_core`` itself never imports this subpackage. It needs the ``lab`` extras
(torch, matplotlib, scikit-learn, mnist1d).

Typical notebook preamble::

    from bn_core import lab
    lab.setup()                      # plot style, one torch thread, print options
    data = lab.data.digits(seed=0)
"""

from . import data, style
from .setup import SEEDS, setup

__all__ = ["SEEDS", "data", "setup", "style"]
