"""The videos we write play in a real browser: headless Chromium loads each in a <video> element,
reports its duration and size and draws its first frame onto a canvas; the page posts what it saw
back to a localhost server run by the test. The mp4v file that OpenCV writes without PyAV is the
negative: Chromium refuses it (MediaError 4, MEDIA_ERR_SRC_NOT_SUPPORTED).

Needs Debian's `chromium` (apt-get install chromium; .ci/run installs it). Where it is missing the
tests skip, saying so, except under CI=true, where they fail."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from runtime.writers import OpenCvMp4Writer, write_frames
from tests.test_runtime_writers import clip

pytestmark = pytest.mark.browser

FPS, FRAMES = 25, 10
WAIT_S = 60
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

PAGE = """<!doctype html><html><body><script>
async function probe(src) {
  const video = document.createElement("video");
  video.muted = true;
  video.preload = "auto";
  const seen = await new Promise(resolve => {
    video.addEventListener("loadeddata", () => resolve({ok: true}));
    video.addEventListener("error", () => resolve({ok: false, error: video.error && video.error.code}));
    video.src = src;
  });
  Object.assign(seen, {src, duration: video.duration, width: video.videoWidth, height: video.videoHeight});
  if (seen.ok) {
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    const context = canvas.getContext("2d");
    context.drawImage(video, 0, 0);
    seen.pixel = Array.from(context.getImageData(seen.width >> 1, seen.height >> 1, 1, 1).data);
  }
  return seen;
}
(async () => {
  const results = [];
  for (const src of SOURCES) results.push(await probe(src));
  await fetch("/results", {method: "POST", body: JSON.stringify(results)});
})();
</script></body></html>
"""


def chromium() -> str:
    """The Chromium executable; fails under CI=true where there is none, else skips saying why."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail(
            "CI=true but Chromium is not installed; .ci/run installs it (apt-get install -y chromium)"
        )
    pytest.skip(
        "headless Chromium is not installed here (apt-get install chromium); browser playback untested"
    )


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the test's folder; a POST to /results hands the page's findings to the test."""

    results: list[bytes]

    def do_POST(self) -> None:
        self.results.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


def play_in_chromium(folder: Path, sources: list[str]) -> dict[str, dict]:  # type: ignore[type-arg]
    """What headless Chromium reports for each video file in `folder`, by name."""
    executable = chromium()
    (folder / "page.html").write_text(PAGE.replace("SOURCES", json.dumps(sources)))
    results: list[bytes] = []
    handler = type("Handler", (_Handler,), {"results": results})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=folder))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/page.html"
    try:
        with tempfile.TemporaryDirectory(prefix="dtvnet-chromium-") as profile:
            browser = subprocess.Popen(
                [executable, *FLAGS, f"--user-data-dir={profile}", url],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                deadline = time.monotonic() + WAIT_S
                while not results and browser.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.1)
            finally:
                browser.terminate()
                try:
                    _, stderr = browser.communicate(timeout=20)
                except subprocess.TimeoutExpired:
                    browser.kill()
                    _, stderr = browser.communicate()
    finally:
        server.shutdown()
        server.server_close()
    assert results, f"Chromium reported nothing within {WAIT_S} s; its stderr ends:\n{stderr[-2000:]}"
    return {seen["src"]: seen for seen in json.loads(results[0])}


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:  # type: ignore[type-arg]
    """Our H.264 mp4 and VP9 webm and OpenCV's mp4v, as Chromium saw them (one browser run)."""
    folder = tmp_path_factory.mktemp("browser")
    frames = clip(FRAMES, 33, 49)  # odd sides, cropped to 48 x 32 for yuv420p
    write_frames(frames, folder / "h264.mp4", fps=FPS)
    write_frames(frames, folder / "vp9.webm", fps=FPS)
    mp4v = OpenCvMp4Writer(folder / "mp4v.mp4", FPS)  # what the writer falls back to without PyAV
    for frame in frames:
        mp4v.write(frame)
    mp4v.close()
    return play_in_chromium(folder, ["h264.mp4", "vp9.webm", "mp4v.mp4"])


@pytest.mark.parametrize("name", ["h264.mp4", "vp9.webm"])
def test_chromium_plays_our_videos(played: dict[str, dict], name: str):  # type: ignore[type-arg]
    seen = played[name]
    assert seen["ok"], f"Chromium refused {name}: MediaError {seen.get('error')}"
    assert seen["duration"] == pytest.approx(FRAMES / FPS, abs=0.5 / FPS)
    assert (seen["width"], seen["height"]) == (48, 32)
    first = clip(1)[0][16, 24]  # the first frame's colour, at the pixel the page read
    assert np.abs(np.array(seen["pixel"][:3]) - first).max() <= 12, seen["pixel"]


def test_chromium_refuses_mp4v(played: dict[str, dict]):  # type: ignore[type-arg]
    """The negative that shows the test can fail: MPEG-4 Part 2 is not a codec browsers play."""
    seen = played["mp4v.mp4"]
    assert not seen["ok"] and seen["error"] == 4  # MEDIA_ERR_SRC_NOT_SUPPORTED
