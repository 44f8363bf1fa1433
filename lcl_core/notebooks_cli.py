"""``lcl notebooks``: run the sequence with papermill (``run``), copy what it executed into ``docs/executed/``
for reading (``render``), list each notebook's parameters and the profiles (``list``), and show or run a
notebook's exercises (``exercise``) or measure them all (``exercises``). The command sits apart from
:mod:`.notebooks` and :mod:`.exercises` so that each of those imports only what it needs: exercises run
notebooks, the command uses both."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .exercises import exercise_id, exercise_markdown, exercises_for, measure_exercises, run_exercise
from .notebook_copies import copies_dir, render
from .notebooks import PROFILES, SEQUENCE, python_literal, declared_parameters, notebook_out_dir, run_notebooks
from .paths import repo_root


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = sub.add_parser("run", help="execute the sequence with papermill")
    run.add_argument("--profile", choices=sorted(PROFILES), default="smoke")
    run.add_argument("--out", type=Path, default=None,
                     help="output folder for executed notebooks, results and runs "
                          "(default <checkout>/runs/notebooks/PROFILE)")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="override a parameter in every notebook that declares it (value read as a Python literal)")
    run.add_argument("--only", nargs="+", default=None, metavar="NAME", help="run only these notebooks")
    run.add_argument("--log-output", action="store_true", help="stream the notebooks' output to the terminal")
    copies = sub.add_parser("render", help="copy executed notebooks, outputs included, into docs/executed/ to read")
    copies.add_argument("--run", type=Path, default=None,
                        help="the folder `lcl notebooks run` wrote (default <checkout>/runs/notebooks/full)")
    copies.add_argument("--to", type=Path, default=None, help="default <checkout>/docs/executed")
    copies.add_argument("--only", nargs="+", default=None, metavar="NAME", help="render only these notebooks")
    copies.add_argument("--allow-dirty", action="store_true",
                        help="render runs of code with uncommitted changes (their header says so)")
    sub.add_parser("list", help="the sequence, each notebook's parameters and the profiles' overrides")
    exercise = sub.add_parser("exercise", help="a notebook's exercises; with a number, run one: the notebook with and "
                                               "without the change, and which way the number moved")
    exercise.add_argument("name", choices=SEQUENCE, metavar="NAME")
    exercise.add_argument("number", type=int, nargs="?", help="the exercise to run (1, 2, …); none: list them")
    exercise.add_argument("--profile", choices=sorted(PROFILES), default="full")
    exercise.add_argument("--out", type=Path, default=None,
                          help="work folder (default <checkout>/runs/notebooks/exercises/PROFILE/NAME-N)")
    every = sub.add_parser("exercises", help="measure every exercise (resumable) and write the table of predicted "
                                             "and measured outcomes")
    every.add_argument("--profile", choices=sorted(PROFILES), default="full")
    every.add_argument("--only", nargs="+", default=None, choices=SEQUENCE, metavar="NAME",
                       help="only these notebooks' exercises")
    every.add_argument("--out", type=Path, default=None,
                       help="work folder shared by the exercises (default <checkout>/runs/notebooks/exercises/PROFILE); "
                            "runs and worlds already in it are reused where identical")
    every.add_argument("--plain-run", type=Path, default=None,
                       help="the folder of `lcl notebooks run --profile PROFILE` (no parameters changed): exercises "
                            "without a baseline take their before side from it instead of rerunning it")
    every.add_argument("--report", type=Path, default=None,
                       help="outcomes and exercises.md (default <checkout>/docs/results/exercises/PROFILE)")


def main(args) -> int:
    if args.action == "exercise":
        return _exercise(args)
    if args.action == "exercises":
        try:
            table = measure_exercises(
                profile=args.profile, only=args.only, plain_run=args.plain_run,
                out_dir=args.out or repo_root() / "runs" / "notebooks" / "exercises" / args.profile,
                report_dir=args.report or repo_root() / "docs" / "results" / "exercises" / args.profile)
        except (FileNotFoundError, ValueError) as error:  # a --plain-run that is not this profile's plain run
            print(f"lcl notebooks exercises: error: {error}", file=sys.stderr)
            return 2
        print(f"table: {table}")
        return 0
    if args.action == "render":
        try:
            written = render(args.run or notebook_out_dir(None, "full"), args.to, only=args.only,
                             allow_dirty=args.allow_dirty)
        except (FileNotFoundError, ValueError) as error:
            print(f"lcl notebooks render: error: {error}", file=sys.stderr)
            return 2
        print(f"{len(written)} executed copies in {(args.to or copies_dir()).resolve()}: "
              + ", ".join(p.stem for p in written))
        return 0
    if args.action == "list":
        for name in SEQUENCE:
            print(f"{name}: {json.dumps(declared_parameters(name))}")
        for profile, table in PROFILES.items():
            print(f"profile {profile}: {json.dumps(table)}")
        return 0
    out_dir = notebook_out_dir(args.out, args.profile)
    overrides = {name: python_literal(value) for name, value in args.parameter}
    try:
        runs = run_notebooks(profile=args.profile, out_dir=out_dir, only=args.only, overrides=overrides,
                             log_output=args.log_output)
    except KeyError as error:  # an unknown notebook, profile or parameter
        print(f"lcl notebooks: error: {error.args[0]}", file=sys.stderr)
        return 2
    total = sum(r.seconds for r in runs)
    print(f"{len(runs)} notebooks in {total:.0f} s; executed notebooks and results in {Path(out_dir).resolve()}")
    return 0


def _exercise(args) -> int:
    found = exercises_for(args.name)
    if args.number is None:
        print(exercise_markdown(args.name))
        return 0
    if not 1 <= args.number <= len(found):
        print(f"lcl notebooks: error: {args.name} has exercises 1 to {len(found)}", file=sys.stderr)
        return 2
    exercise = found[args.number - 1]
    out_dir = args.out or repo_root() / "runs" / "notebooks" / "exercises" / args.profile / f"{args.name}-{args.number}"
    print(f"{args.name}, exercise {args.number}: {exercise.question}")
    outcome = run_exercise(exercise, profile=args.profile, out_dir=out_dir, tag=exercise_id(exercise))
    print(f"{exercise.key}: {outcome['before']:.4g} -> {outcome['after']:.4g} ({outcome['moved']}); predicted "
          f"{exercise.expected}: {'as predicted' if outcome['as_predicted'] else 'NOT as predicted'}")
    print(f"why: {exercise.why}")
    return 0
