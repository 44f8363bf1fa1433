"""Disk and time of ``lcl data fetch-images`` per 1,000 MMC4 documents, fetched from a server on 127.0.0.1.

    python benchmarks/bench_fetch_images.py [--docs 1000] [--image-size 256] [--thread-count 32] [--out DIR]

The documents are the real MMC4 sample's (``../shared/fixtures/mmc4-sample``, 107 pages, 3.9 images each),
repeated under new shard names up to ``--docs``, each image URL pointed at the local server. The server
hands out a 640×480 JPEG (quality 90; a smooth picture with shapes, about the size of a web photo) per
URL. Loopback has no network latency and no failures: the time is img2dataset's own work (decode, resize,
encode, write) and the kit's, a lower bound for the web, where latency and dead links dominate.
Prints wall time, images, output bytes, and both per 1,000 documents, as JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lcl_core.data.fetch import FetchOptions, fetch_images
from lcl_core.paths import shared_fixture


def web_photo(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.linspace(0, 1, 640), np.linspace(0, 1, 480))
    base = np.stack([x * rng.uniform(80, 255), y * rng.uniform(80, 255), (1 - x) * rng.uniform(80, 255)], axis=-1)
    image = Image.fromarray(base.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = rng.integers(0, 600), rng.integers(0, 440)
        draw.ellipse([x0, y0, x0 + rng.integers(20, 200), y0 + rng.integers(20, 200)],
                     fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--thread-count", type=int, default=32)
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    sample = shared_fixture("mmc4-sample", "docs_no_face_shard_151_v3.jsonl").read_text().splitlines()
    photos = [web_photo(seed) for seed in range(64)]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_):
            pass

        def do_GET(self):
            body = photos[hash(self.path) % len(photos)]
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    work = args.out or Path(tempfile.mkdtemp(prefix="lcl-fetch-bench-"))
    (work / "shards").mkdir(parents=True, exist_ok=True)
    written, shard = 0, 0
    while written < args.docs:
        lines = []
        for line in sample[: args.docs - written]:
            document = json.loads(line)
            for info in document["image_info"]:
                info["raw_url"] = f"http://127.0.0.1:{server.server_address[1]}/{shard}/{info['image_name']}"
            lines.append(json.dumps(document))
        (work / "shards" / f"docs_no_face_shard_{shard}_v3.jsonl").write_text("\n".join(lines) + "\n")
        written, shard = written + len(lines), shard + 1
    start = time.perf_counter()
    summary = fetch_images(work / "shards", work / "images", options=FetchOptions(
        image_size=args.image_size, thread_count=args.thread_count), say=lambda message: None)
    seconds = time.perf_counter() - start
    server.shutdown()
    images_bytes = sum(p.stat().st_size for p in (work / "images").rglob("*.jpg"))
    shards_bytes = sum(p.stat().st_size for p in (work / "shards").iterdir())
    per = 1000 / args.docs
    print(json.dumps({"documents": args.docs, "images": summary["on_disk"], "failed": summary["failed"],
                      "image_size": args.image_size, "seconds": round(seconds, 1),
                      "seconds_per_1000_documents": round(seconds * per, 1),
                      "image_megabytes_per_1000_documents": round(images_bytes * per / 1e6, 1),
                      "shard_megabytes_per_1000_documents": round(shards_bytes * per / 1e6, 1),
                      "served_jpeg_kilobytes": round(sum(map(len, photos)) / len(photos) / 1e3, 1)}, indent=1))


if __name__ == "__main__":
    main()
