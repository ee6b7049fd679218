"""Process memory figures and handing freed memory back."""

import threading

import numpy as np
import pytest

from streamer import metrics
from streamer.metrics import release_memory, rss_bytes


@pytest.mark.skipif(metrics._TRIM is None, reason="malloc_trim is glibc's; nothing to hand back elsewhere")
def test_release_memory_hands_back_what_threads_freed():
    kept = []

    def frames():  # 1,000 frame-sized blocks (200 KB: from a thread's arena), a tenth kept
        blocks = [np.ones(25_000) for _ in range(1000)]
        kept.extend(blocks[::10])

    threads = [threading.Thread(target=frames) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    before = rss_bytes()
    release_memory()
    after = rss_bytes()
    assert len(kept) == 400 and before - after > 400 * 2**20, (before / 2**20, after / 2**20)
