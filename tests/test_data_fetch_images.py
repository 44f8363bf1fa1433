"""``lcl data fetch-images`` as a user meets it, offline: an HTTP server on 127.0.0.1 serves images, 404s, a slow
answer, a redirect, an HTML page, a cut-off transfer and images too small and too large; the real MMC4 sample
(its URLs pointed at the server) and OBELICS / OmniCorpus-CC / MINT-1T HTML parquet name them. The fetch is
killed midway and resumed, then the readers and ``lcl pretrain`` read what arrived.

img2dataset runs in its own environment (``~/.cache/lcl/img2dataset-1.47.0``), made by the command on first use
from the package registry; without a registry the module skips and says so."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lcl_core.cli import main as lcl
from lcl_core.data import MintHtmlDataset, MMC4Dataset, ObelicsDataset, OmniCorpusDataset
from lcl_core.data.fetch import STAGING, EnvironmentUnavailable, default_environment, ensure_environment
from lcl_core.data.streaming import url_image_name
from lcl_core.data.writers import OBELICS_SCHEMA
from lcl_core.tokenizer import load_tokenizer

from real_data_helpers import (MINT_HTML_SCHEMA, MMC4_SAMPLE, OMNICORPUS_SCHEMA, mint_html_row,
                               obelics_row, omnicorpus_row, png_bytes, smoke_model, smoke_pretrain, write_parquet)

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 2  # seconds img2dataset waits; the slow route answers after SLOW
SLOW = 5
SERVED_BEFORE_HOLD = 3  # good images the server hands out before it holds every request (the first run is killed then)
# what each route does -> the reason fetch-images must count (None: the image arrives)
ROUTES = {"img": None, "redirect": None, "missing": "http_404", "slow": "timeout", "page": "not_an_image",
          "cut": "truncated", "tiny": "too_small", "huge": "too_large"}


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.images_started = 0
        self.gate = threading.Event()  # set: stop holding
        self.completed: Counter = Counter()  # path -> image responses sent whole

    def url(self, route: str, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{route}/{name}"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        server: Server = self.server
        route, _, name = self.path.strip("/").partition("/")
        seed = sum(map(ord, name))
        with server.lock:
            hold = not server.gate.is_set() and server.images_started >= SERVED_BEFORE_HOLD
            if not hold and route == "img":  # the images that arrive (a redirect's target is one)
                server.images_started += 1
        if hold:  # only the first run's requests are held, and it is killed before the gate opens: drop them
            server.gate.wait(60)
            self.close_connection = True
            return
        if route == "missing":
            return self.send_error(404)
        if route == "redirect":
            self.send_response(302)
            self.send_header("Location", f"/img/{name}")
            return self.end_headers()
        if route == "slow":
            time.sleep(SLOW)
        if route == "page":
            return self._send(b"<html><body>not an image</body></html>", "text/html")
        body = png_bytes(seed, {"tiny": (3, 3), "huge": (300, 300)}.get(route, (40, 32)))
        if route == "cut":
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            return  # the connection closes short of Content-Length
        self._send(body, "image/png")
        if route != "slow":  # the slow answer comes after the client gave up
            with server.lock:
                server.completed[self.path] += 1

    def _send(self, body: bytes, kind: str):
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the slow answer's client gave up


@pytest.fixture(scope="module")
def server():
    with Server() as running:
        thread = threading.Thread(target=running.serve_forever, daemon=True)
        thread.start()
        yield running
        running.gate.set()
        running.shutdown()


@pytest.fixture(scope="module")
def environment():
    try:
        return ensure_environment(default_environment(), say=lambda message: None)
    except EnvironmentUnavailable as error:
        pytest.skip(f"img2dataset cannot be installed here (needs the package registry once): {error}")


def route_of(k: int) -> str:
    """Documents' images cycle through the routes, good ones twice as often."""
    return ["img", "missing", "img", "slow", "redirect", "page", "img", "cut", "tiny", "huge"][k % 10]


@pytest.fixture(scope="module")
def sources(tmp_path_factory, server):
    """The first 8 real MMC4 documents (URLs pointed at the server) and 4 pages of each parquet format.
    Returns (folder, {format: [per document: [(target, route)]]})."""
    if not MMC4_SAMPLE.is_file():
        pytest.skip(f"the real MMC4 sample is absent ({MMC4_SAMPLE})")
    folder = tmp_path_factory.mktemp("sources")
    expected: dict[str, list[list[tuple[str, str]]]] = {}
    lines, k = [], 0
    expected["mmc4"] = []
    for line in MMC4_SAMPLE.read_text().splitlines()[:8]:
        document = json.loads(line)
        targets = []
        for info in document["image_info"]:
            route = route_of(k)
            info["raw_url"] = server.url(route, f"m{k}.png")
            targets.append((f"docs_no_face_shard_151_v3/{info['image_name']}", route))
            k += 1
        expected["mmc4"].append(targets)
        lines.append(json.dumps(document))
    (folder / "mmc4").mkdir()
    (folder / "mmc4" / "docs_no_face_shard_151_v3.jsonl").write_text("\n".join(lines) + "\n")

    def pages(prefix: str):
        nonlocal k
        documents = []
        for d in range(4):
            routes = [route_of(k + j) for j in range(2 + d % 2)]
            urls = [server.url(route, f"{prefix}{k + j}.png") for j, route in enumerate(routes)]
            k += len(routes)
            documents.append((urls, routes))
        expected[prefix] = [[(url_image_name(u), r) for u, r in zip(urls, routes)] for urls, routes in documents]
        return documents

    texts = ["A red square sits on grass.", "Below it, a note about the weather.", "The end of the page."]
    write_parquet(folder / "obelics" / "obelics-0.parquet",
                  [obelics_row(texts, urls) for urls, _ in pages("obelics")], OBELICS_SCHEMA)
    write_parquet(folder / "omnicorpus" / "train-00000-of-00001.parquet",
                  [omnicorpus_row(texts, urls, doc_id=f"doc{d}") for d, (urls, _) in enumerate(pages("omnicorpus"))],
                  OMNICORPUS_SCHEMA)
    write_parquet(folder / "mint" / "shard_0000.parquet",
                  [mint_html_row(texts, urls, url=f"http://example.org/{d}") for d, (urls, _) in
                   enumerate(pages("mint"))], MINT_HTML_SCHEMA)
    return folder, expected


def fetch_argv(folder: Path, out: Path) -> list[str]:
    return ["data", "fetch-images", str(folder / "mmc4"), str(folder / "obelics"), str(folder / "omnicorpus"),
            str(folder / "mint"), "--out", str(out), "--timeout", str(TIMEOUT), "--thread-count", "4",
            "--min-image-size", "8", "--max-image-area", "40000", "--image-size", "32"]


@pytest.fixture(scope="module")
def fetched(tmp_path_factory, server, environment, sources):
    """Run fetch-images, kill it (its whole process group) once the server has handed out
    SERVED_BEFORE_HOLD images and img2dataset wrote them, then run it again to the end.
    Returns (image folder, what the second run printed)."""
    folder, _ = sources
    out = tmp_path_factory.mktemp("images")
    first = subprocess.Popen([sys.executable, "-m", "lcl_core.cli", *fetch_argv(folder, out)], cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while len(list((out / STAGING).glob("out/*/*.json"))) < SERVED_BEFORE_HOLD and time.monotonic() < deadline:
        assert first.poll() is None, first.stdout.read().decode()
        time.sleep(0.1)
    written = len(list((out / STAGING).glob("out/*/*.json")))
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    first.stdout.close()
    assert written == SERVED_BEFORE_HOLD, "the first run never wrote the images it was handed"
    server.gate.set()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert lcl(fetch_argv(folder, out)) == 0
    return out, printed.getvalue()


def test_fetch_counts_every_failure_by_reason_and_resumes_without_fetching_twice(fetched, sources, server, capsys):
    out, printed = fetched
    _, expected = sources
    targets = {target: route for documents in expected.values() for document in documents
               for target, route in document}
    good = {target for target, route in targets.items() if ROUTES[route] is None}
    summary = json.loads((out / "fetch-summary.json").read_text())
    assert summary["failed"] == dict(Counter(ROUTES[route] for route in targets.values() if ROUTES[route]))
    assert summary["images_wanted"] == len(targets) and summary["on_disk"] == len(good)
    assert summary["taken_in_from_interrupted_run"] == SERVED_BEFORE_HOLD
    assert summary["fetched_now"] == len(good) - SERVED_BEFORE_HOLD
    assert {t for t in targets if (out / t).is_file()} == good
    # nothing fetched twice: every image that arrived was sent once (the redirect's target included); a failure the
    # killed run had not yet recorded (img2dataset writes a shard's statuses at its end) is tried again
    arrived_sent = [n for path, n in server.completed.items() if path.startswith("/img/")]
    assert arrived_sent == [1] * len(good)
    assert not (out / STAGING).exists()
    assert f"{len(good)} of {len(targets)} images on disk" in printed
    assert "failed timeout" in printed and "raise --timeout" in printed and f"--images {out}" in printed
    documents = [document for documents in expected.values() for document in documents]
    arrived = [sum(ROUTES[route] is None for _, route in document) for document in documents]
    assert summary["documents_with_no_image"] == arrived.count(0)
    assert summary["documents_with_all_images"] == sum(n == len(d) for n, d in zip(arrived, documents))

    requests_before = sum(server.completed.values())  # a run with nothing left to do asks the server nothing
    assert lcl(fetch_argv(sources[0], out)) == 0
    again = json.loads((out / "fetch-summary.json").read_text())
    assert again["fetched_now"] == 0 and again["on_disk_before"] == len(good) and again["failed"] == summary["failed"]
    assert sum(server.completed.values()) == requests_before
    assert "img2dataset" not in capsys.readouterr().out


def test_readers_yield_exactly_the_documents_whose_images_arrived(fetched, sources):
    out, _ = fetched
    folder, expected = sources
    tokenizer = load_tokenizer("clip")
    options = dict(image_size=16, num_image_tokens=1, context_length=8192, shuffle=False, image_root=out)
    readers = {"mmc4": MMC4Dataset(folder / "mmc4", tokenizer, sim_threshold=0.0, max_images=100,
                                   one_image_per_sentence=False, **options),
               "obelics": ObelicsDataset(folder / "obelics", tokenizer, **options),
               "omnicorpus": OmniCorpusDataset(folder / "omnicorpus", tokenizer, **options),
               "mint": MintHtmlDataset(folder / "mint", tokenizer, **options)}
    for name, reader in readers.items():
        arrived = [sum(ROUTES[route] is None for _, route in document) for document in expected[name]]
        images_per_record = {sample["position"]["record"]: len(sample["images"]) for sample in reader}
        assert images_per_record == {record: n for record, n in enumerate(arrived) if n}, name
        assert reader.records_skipped == Counter({"no_usable_image": arrived.count(0)}), name


@pytest.mark.parametrize("source", ["mmc4", "obelics", "omnicorpus", "mint"])
def test_smoke_training_on_fetched_images(fetched, sources, tmp_path, source, capsys):
    out, _ = fetched
    folder, _ = sources
    texts = [line for line in (folder / "mmc4" / "docs_no_face_shard_151_v3.jsonl").read_text().splitlines()]
    tokenizer, config = smoke_model(tmp_path, texts)
    filters = ["--max-unsafe", "0.5"] if source == "omnicorpus" else []  # the pages' images score 0.01
    assert lcl(smoke_pretrain(folder, source, tmp_path / "run", tokenizer, config, "--images", str(out), *filters)) == 0
    assert "done:" in capsys.readouterr().out
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
    spec = json.loads((tmp_path / "run" / "run.json").read_text())["spec"]
    assert spec["omnicorpus_filters"] == ({"max_unsafe": 0.5} if filters else None)
