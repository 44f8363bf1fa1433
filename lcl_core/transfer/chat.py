"""``lcl chat RUN [--image FILE] "question"``: ask a tiny LLaVA-1.5 stage (``lcl reproduce table4``'s runs) one
question about an image, as the benchmarks ask it. Bad input — a folder that is no such run, a missing,
unreadable or non-image file, an empty question — gets one line on stderr and exit status 2."""

from __future__ import annotations

import sys
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("run", type=Path, help="a finished dialogue run folder (dialogue-instruct-…) or its final/")
    parser.add_argument("question", help="what to ask, e.g. \"What colour is the star?\"")
    parser.add_argument("--image", type=Path, help="the image to ask about (any format PIL reads)")
    parser.add_argument("--max-new-tokens", type=int, default=16, help="the longest answer, in tokens (default 16)")


def main(args) -> int:
    from ..checkpoint import load_pretrained
    from ..data.streaming import Skip, decode_image
    from ..llava import DialogueModel
    from .dialogue_eval import ask

    def refuse(message: str) -> int:
        print(f"lcl chat: error: {message}", file=sys.stderr)
        return 2

    if not args.question.strip():
        return refuse("the question is empty")
    try:
        model, tokenizer = load_pretrained(args.run)
    except (FileNotFoundError, ValueError) as error:
        return refuse(f"{args.run} is not a finished run or model folder ({error})")
    if not isinstance(model, DialogueModel):
        return refuse(f"{args.run} is a pre-training run with no dialogue stage; `lcl reproduce table4` trains the "
                      "tiny LLaVA-1.5 on top of such runs (its dialogue-instruct-… folders answer questions)")
    image = None
    if args.image is not None:
        if not args.image.is_file():
            return refuse(f"no image file at {args.image}")
        try:
            image = decode_image(args.image, lambda reason: None)
        except Skip as skip:
            return refuse(f"{args.image} cannot be used as an image ({skip.reason.replace('_', ' ')})")
        if model.vision is None:
            print("lcl chat: this model was trained without images (the blind control): the image is not shown to it",
                  file=sys.stderr)
    print(ask(model, tokenizer, args.question, image, max_new_tokens=args.max_new_tokens))
    return 0
