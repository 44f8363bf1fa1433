"""Reproductions of the paper's results: seeds, 95 % intervals and verdicts decided by rules fixed in code.

``lcl reproduce table1`` (:func:`reproduce_table1`) trains and evaluates every row of Table 1;
``lcl reproduce ablations`` (:func:`reproduce_ablations`) the ablation grids built on its recipe;
``lcl reproduce scale`` (:func:`reproduce_scale`) LCL and CLIP at several budgets, and the trend of their gap;
``lcl reproduce verify`` (:mod:`.verify`) whether a committed result still comes from the code.
"""

from .ablations import GRIDS, reproduce_ablations
from .scale import reproduce_scale
from .table1 import PROFILES, ROWS, reproduce_table1

__all__ = ["GRIDS", "PROFILES", "ROWS", "reproduce_ablations", "reproduce_scale", "reproduce_table1"]
