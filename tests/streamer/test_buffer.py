import threading
import time

import pytest

from streamer.buffer import BufferGroup, Closed, RingBuffer


def one_buffer(size, policy="block", **kwargs):
    """A buffer and its consumer side: a group holding it alone (no buffer will join)."""
    group = BufferGroup(sealed=True)
    return group.add(size, policy, **kwargs), group


def test_block_policy_is_lossless_across_threads():
    buf, group = one_buffer(3, "block")
    got = []

    def consume():
        while True:
            try:
                got.extend(group.get_batch(1, 0.0))
            except Closed:
                return

    t = threading.Thread(target=consume)
    t.start()
    for i in range(200):
        assert buf.put(i)
    buf.close()
    t.join(5)
    assert got == list(range(200)) and buf.dropped == 0 and buf.high_water <= 3


def test_drop_oldest_counts_drops():
    buf, group = one_buffer(3, "drop_oldest")
    for i in range(10):
        assert buf.put(i)
    assert buf.dropped == 7 and len(buf) == 3
    assert group.get_batch(3, 0.0) == [7, 8, 9]


def test_block_put_times_out_when_full():
    buf = RingBuffer(1, "block")
    assert buf.put(1)
    start = time.monotonic()
    assert buf.put(2, timeout=0.05) is False
    assert time.monotonic() - start >= 0.04


def test_close_drains_then_raises():
    buf, group = one_buffer(4)
    buf.put("a")
    buf.put("b")
    buf.close()
    assert buf.put("c") is False
    assert group.get_batch(8, 0.01) == ["a", "b"]
    with pytest.raises(Closed):
        group.get_batch(8, 0.01)


def test_get_batch_waits_at_most_max_wait():
    buf, group = one_buffer(8)
    buf.put(1)
    start = time.monotonic()
    assert group.get_batch(4, 0.05) == [1]
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize("size, policy", [(0, "block"), (2, "newest")])
def test_bad_arguments(size, policy):
    with pytest.raises(ValueError):
        RingBuffer(size, policy)


def test_group_takes_round_robin_across_sources():
    group = BufferGroup(sealed=True)
    a, b, c = group.add(8), group.add(8), group.add(8)
    for i in range(5):
        a.put(("a", i))
    b.put(("b", 0))
    c.put(("c", 0))
    c.put(("c", 1))
    assert group.get_batch(6, 0.0) == [("a", 0), ("b", 0), ("c", 0), ("a", 1), ("c", 1), ("a", 2)]
    assert group.get_batch(6, 0.0) == [("a", 3), ("a", 4)]
    for buf in (a, b):
        buf.close()
    # waits for the open buffer; a put there wakes it within the wait
    threading.Timer(0.1, lambda: c.put(("c", 2))).start()
    start = time.monotonic()
    assert group.get_batch(4, 0.0) == [("c", 2)] and time.monotonic() - start < 1.0
    c.close()
    with pytest.raises(Closed):
        group.get_batch(4, 0.0)


def test_drop_oldest_never_drops_what_is_not_droppable():
    buf, group = one_buffer(2, "drop_oldest", droppable=lambda x: isinstance(x, int))
    buf.put("down")
    buf.put(1)
    buf.put(2)  # full: drops 1, keeps the status item
    buf.put("up")  # full: drops 2
    assert group.get_batch(2, 0.0) == ["down", "up"] and buf.dropped == 2


def test_group_takes_buffers_added_while_reading_and_ends_once_sealed():
    group = BufferGroup()
    a = group.add(4)
    a.put("a0")
    a.close()
    assert group.get_batch(4, 0.0) == ["a0"]
    # a is drained and closed, but the group is not sealed: a later buffer is waited for
    threading.Timer(0.1, lambda: group.add(4).put("b0")).start()
    assert group.get_batch(4, 0.0) == ["b0"] and group.buffers and group.buffers[0] is not a
    group.buffers[0].close()
    threading.Timer(0.1, group.seal).start()
    start = time.monotonic()
    with pytest.raises(Closed):
        group.get_batch(4, 0.0)
    assert 0.05 < time.monotonic() - start < 1.0
