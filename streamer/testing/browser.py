"""A real headless Chromium for tests and benchmarks of the live view, driven by
selenium with the system's browser and driver (Debian: ``chromium`` and
``chromium-driver``): nothing is downloaded."""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

__all__ = ["BROWSER_PACKAGES", "browser_available", "chromium", "playback", "wait_playing"]

BROWSER_PACKAGES = "chromium chromium-driver"
_BINARIES = ("/usr/bin/chromium", "/usr/bin/chromedriver")


def browser_available() -> str | None:
    """None when Chromium and its driver are here, else what is missing."""
    missing = [b for b in _BINARIES if not (os.path.exists(b) or shutil.which(os.path.basename(b)))]
    if missing:
        return f"{', '.join(missing)} missing: apt-get install {BROWSER_PACKAGES}"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium missing: pip install 'streamer[test]'"
    return None


def chromium(width: int = 1280, height: int = 900) -> Any:
    """A headless Chromium that plays video without a user gesture."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _BINARIES[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--autoplay-policy=no-user-gesture-required", f"--window-size={width},{height}", "--mute-audio",
                "--disable-background-timer-throttling",
                "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(_BINARIES[1]), options=options)


_PLAYBACK = """
const tile = document.querySelector(`.tile[data-stream="${arguments[0]}"]`);
if (!tile) return null;
const v = tile.querySelector("video");
const q = v.getVideoPlaybackQuality();
return {width: v.videoWidth, height: v.videoHeight, frames: q.totalVideoFrames, dropped: q.droppedVideoFrames,
        ready: v.readyState, paused: v.paused, state: tile.dataset.state || "", now: performance.now() / 1000};
"""


def playback(driver: Any, sid: str) -> dict | None:
    """The tile of ``sid``: its video's size and frames shown, and the state it says."""
    return driver.execute_script(_PLAYBACK, sid)


def wait_playing(driver: Any, sid: str, timeout: float = 30.0) -> dict:
    """Waits until the tile of ``sid`` shows video frames."""
    deadline = time.monotonic() + timeout
    while True:
        info = playback(driver, sid)
        if info and info["frames"] > 0 and info["width"] > 0:
            return info
        if time.monotonic() > deadline:
            raise AssertionError(f"{sid}: no video after {timeout}s: {info}")
        time.sleep(0.2)
