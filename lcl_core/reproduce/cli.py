"""``lcl reproduce table1|ablations|scale|table4 --profile smoke|cpu|gpu [--world calibrated|v1] [--seeds …] [--world-seed …]
[--out DIR] [--report DIR]``;
``lcl reproduce compare FIRST SECOND``: whether two reproductions reach the same verdicts;
``lcl reproduce verify RESULT [--unit NAME …]``: whether a committed result still comes from the code."""

from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    from ..data.world import DEFAULT_WORLD
    from .ablations import GRIDS
    from .table1 import PROFILES, WORLDS

    sub = parser.add_subparsers(dest="table", required=True, metavar="WHAT")
    table1 = sub.add_parser("table1", help="every row of the paper's Table 1, several seeds, a verdict per claim")
    ablations = sub.add_parser("ablations", help="the ablation grids as curves over seeds, a verdict per claim")
    scale = sub.add_parser("scale", help="LCL and CLIP at several budgets: does the gap between them move?")
    table4 = sub.add_parser("table4", help="the encoders inside a tiny LLaVA-1.5, frozen and full, on stand-ins of "
                                           "the multimodal benchmarks, with both controls")
    for command in (table1, ablations, scale, table4):
        command.add_argument("--profile", choices=list(PROFILES), default="cpu",
                             help="; ".join(f"{name}: {p.description}" for name, p in PROFILES.items()))
        command.add_argument("--world", choices=list(WORLDS), default=DEFAULT_WORLD,
                             help=f"default {DEFAULT_WORLD}: pages as real MMC4 pages are (docs/realism.md), works in "
                                  "runs/reproduce/table1-PROFILE-calibrated; v1: the world of the results committed "
                                  "before the calibration, works in runs/reproduce/table1-PROFILE")
        command.add_argument("--seeds", type=int, nargs="+", help="pre-training seeds (default: the profile's)")
        command.add_argument("--allow-dirty", action="store_true",
                             help="run from a checkout with uncommitted changes (refused otherwise, but on the smoke "
                                  "profile); the results then say '(with uncommitted changes)'")
        command.add_argument("--world-seed", type=int, default=0, help="seed of the offline world (default 0)")
        command.add_argument("--out", type=Path, help="work folder (default runs/reproduce/table1-PROFILE; the "
                                                      "ablations share it with Table 1 and reuse its runs)")
    table1.add_argument("--report", type=Path, help="where the report goes (default OUT/report)")
    scale.add_argument("--report", type=Path, help="where the report goes (default OUT/report/scale)")
    table4.add_argument("--report", type=Path, help="where the report goes (default OUT/report/table4)")
    ablations.add_argument("--report", type=Path, help="where the grids' reports go, one folder each (default "
                                                       "OUT/report/ablations)")
    ablations.add_argument("--only", nargs="+", choices=list(GRIDS), metavar="GRID",
                           help=f"the grids to run (default all): {', '.join(GRIDS)}")
    compare = sub.add_parser("compare", help="the verdicts of two reports side by side (e.g. another seed set); "
                                             "exit status 1 when a claim's verdict differs")
    compare.add_argument("first", type=Path, help="a report folder (its claims.json files, at any depth)")
    compare.add_argument("second", type=Path, help="the report folder to compare it with, laid out the same")
    compare.add_argument("--write", type=Path, metavar="FILE", help="also write the table to FILE")
    verify = sub.add_parser("verify", help="rerun a committed result's units at the current commit and report every "
                                           "number against the committed one; exit status 1 when any differs")
    verify.add_argument("result", type=Path, help="a Table 1 report folder or one ablation grid's (its results.json)")
    verify.add_argument("--unit", nargs="+", metavar="NAME",
                        help="only these units: 'LCL · seed 0', or a row's or point's label for all its seeds")
    verify.add_argument("--tolerance", type=float, default=0.0,
                        help="relative tolerance, |now − committed| ≤ T·max(1, |committed|) (default 0: the same floats)")
    verify.add_argument("--out", type=Path, help="an empty folder to work in and keep (default: a temporary one)")
    verify.add_argument("--write", type=Path, metavar="FILE", help="also write every check and difference as JSON")
    ablations.add_argument("--points", nargs="+", metavar="LABEL",
                           help="only these points of the grids, by label (e.g. 'p = 0.25'): rerun one point")


def main(args) -> int:
    if args.table == "compare":
        return _compare(args)
    if args.table == "verify":
        from .verify import main_verify

        return main_verify(args)
    if args.table == "ablations":
        from .ablations import main_ablations

        return main_ablations(args)
    from .table1 import main_claims, reproduce_table1

    if args.table == "scale":
        from .scale import reproduce_scale

        return main_claims(reproduce_scale, args)
    if args.table == "table4":
        from .table4 import reproduce_table4

        return main_claims(reproduce_table4, args)
    return main_claims(reproduce_table1, args)


def _compare(args) -> int:
    import sys

    from .report import verdict_agreement

    try:
        table, agree = verdict_agreement(args.first, args.second)
    except FileNotFoundError as error:
        print(f"lcl reproduce compare: error: {error}", file=sys.stderr)
        return 2
    print(table, end="")
    if args.write:
        args.write.write_text(table)
    return 0 if agree else 1
