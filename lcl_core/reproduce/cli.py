"""``lcl reproduce table1 --profile smoke|cpu|gpu [--seeds …] [--world-seed …] [--out DIR] [--report DIR]``."""

from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    from .table1 import PROFILES

    sub = parser.add_subparsers(dest="table", required=True, metavar="TABLE")
    table1 = sub.add_parser("table1", help="every row of the paper's Table 1, several seeds, a verdict per claim")
    table1.add_argument("--profile", choices=list(PROFILES), default="cpu",
                        help="; ".join(f"{name}: {p.description}" for name, p in PROFILES.items()))
    table1.add_argument("--seeds", type=int, nargs="+", help="pre-training seeds (default: the profile's)")
    table1.add_argument("--world-seed", type=int, default=0, help="seed of the offline world (default 0)")
    table1.add_argument("--out", type=Path, help="work folder (default runs/reproduce/table1-PROFILE)")
    table1.add_argument("--report", type=Path, help="where the report goes (default OUT/report)")


def main(args) -> int:
    from .table1 import main_table1

    return main_table1(args)
