"""``lcl`` — the kit's command line. Each command group lives beside the code it drives and exposes
``add_arguments(parser)`` and ``main(args) -> int``; only the group that runs is imported."""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "data": ("lcl_core.data.cli", "build the offline world, inspect shards, measure their realism"),
    "pretrain": ("lcl_core.training.cli", "pre-train LCL or a baseline objective"),
    "demo": ("lcl_core.demo", "the quick end-to-end demo on the built-in offline data"),
    "evaluate": ("lcl_core.transfer.cli", "frozen-transfer evaluation of a checkpoint"),
    "chat": ("lcl_core.transfer.chat", "ask a tiny LLaVA-1.5 stage (lcl reproduce table4) a question about an image"),
    "plot": ("lcl_core.curves", "draw the training curves of one or several runs side by side"),
    "reproduce": ("lcl_core.reproduce.cli", "reproduce the paper's tables with seeds, intervals and verdicts"),
    "notebooks": ("lcl_core.notebooks_cli", "execute the notebook sequence with papermill"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        parser = argparse.ArgumentParser(prog="lcl", description="Latent Compression Learning kit")
        sub = parser.add_subparsers(dest="command", metavar="COMMAND")
        for name, (_, help_text) in COMMANDS.items():
            sub.add_parser(name, help=help_text)
        parser.parse_args(argv or ["--help"])
        return 2
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"lcl {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    return int(module.main(parser.parse_args(rest)) or 0)


if __name__ == "__main__":
    sys.exit(main())
