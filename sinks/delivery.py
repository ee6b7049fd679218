"""Network event sinks: webhook (HTTP POST), MQTT and Redis Streams.

Every event goes first into the sink's :class:`~sinks.outbox.Outbox`, then a delivery
thread sends the oldest ones in batches and removes them once the endpoint acknowledged
(HTTP 2xx, MQTT QoS 1 PUBACK, Redis reply). While the endpoint is down the thread retries
with capped exponential backoff and events wait on disk: video processing never waits
for the network. Delivery is at least once, in order; event ids let consumers drop the
duplicates a crash between sending and acknowledging can cause.
"""

from __future__ import annotations

import base64
import collections
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sinks.events import event_json
from sinks.outbox import Outbox
from streamer.errors import ConfigError, SinkError
from streamer.protocols import Sink
from streamer.types import DeliveryStats, Detections, Event, Frame
from streamer.urls import redact

log = logging.getLogger(__name__)

__all__ = ["DeliverySink", "WebhookTransport", "MqttTransport", "RedisTransport"]


class Transport:
    """How a :class:`DeliverySink` talks to one kind of endpoint.

    ``start(entries)`` sends a batch of ``(key, payload)`` and returns a handle;
    ``finish(handle)`` waits for its acknowledgement (raising when none came), and up
    to ``window`` batches may be started before the oldest is finished. Transports
    whose ``start`` already waits for the answer keep the defaults.
    """

    scheme: tuple[str, ...] = ()
    window = 1

    def key(self, event: Event) -> str:
        """The topic or stream key an event goes to."""
        return ""

    def probe(self) -> None:
        """Raise if the endpoint is not reachable now."""

    def start(self, entries: Sequence[tuple[str, str]]) -> Any:
        raise NotImplementedError

    def finish(self, handle: Any) -> None:
        """Wait until the batch ``start`` returned ``handle`` for is acknowledged."""

    def reset(self) -> None:
        """After a failure: forget what was in flight (the sink sends again from the oldest
        unacknowledged event)."""

    def close(self) -> None:
        """Release the connection."""


class Refused(SinkError):
    """The endpoint refused a batch for good (it would refuse it again): a poison event.

    ``refused``, when given, maps the batch's entries (by index) the endpoint refused to
    why; it then accepted all the others (a Redis pipeline answers each command apart).
    Without it the whole batch was refused and it is tried again one event at a time."""

    def __init__(self, reason: str, refused: dict[int, str] | None = None) -> None:
        super().__init__(reason)
        self.refused = refused


class Dropped(OSError):
    """The endpoint closed the connection while a batch was in flight (a broker does so
    for a packet over its maximum size): the same event dropping it again and again is
    refused for good."""


class WebhookTransport(Transport):
    """POSTs each batch as a JSON array to ``url``; any 2xx acknowledges it."""

    scheme = ("http", "https")
    window = 1  # one batch at a time: its response is the acknowledgement

    def __init__(self, url: str, timeout: float = 5.0, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(url)
        self.headers = {"Content-Type": "application/json"}
        if parts.username is not None:  # user:password@ in the URL is HTTP Basic auth, not part of the host
            user, password = unquote(parts.username), unquote(parts.password or "")
            self.headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        self.headers.update(headers or {})
        self.url = url
        self.timeout = timeout

    def start(self, entries: Sequence[tuple[str, str]]) -> None:
        body = ("[" + ",".join(p for _, p in entries) + "]").encode()
        request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                if not 200 <= response.status < 300:
                    raise OSError(f"HTTP {response.status}")
        except urllib.error.HTTPError as exc:
            # 4xx says this request will never be accepted (but 408 and 429: try later)
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                raise Refused(f"HTTP {exc.code} {exc.reason}") from None
            raise

    def probe(self) -> None:
        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        socket.create_connection((parts.hostname, port), self.timeout).close()


class MqttTransport(Transport):
    """Publishes each event with QoS 1 to ``topic`` (``{source_id}`` and ``{type}`` are
    filled in); a batch is acknowledged when the broker acknowledged every message."""

    scheme = ("mqtt", "mqtts")

    def __init__(self, url: str, topic: str = "streamer/{source_id}/{type}", qos: int = 1,
                 timeout: float = 5.0, client_id: str | None = None) -> None:
        import paho.mqtt.client as mqtt

        self._mqtt, self._url, self._client_id = mqtt, urlsplit(url), client_id or ""
        parts = self._url
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self.topic, self.qos, self.timeout = topic, qos, timeout
        self._client = self._new_client()
        self._connected = False
        self._disconnects = 0  # connections lost so far: a batch in flight when one is lost will get no PUBACK

    def _new_client(self) -> Any:
        parts, mqtt = self._url, self._mqtt
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self._client_id)
        if parts.username:  # percent-encoded in the URL (p%40ss is p@ss), as for webhook and Redis
            password = unquote(parts.password) if parts.password is not None else None
            client.username_pw_set(unquote(parts.username), password)
        if parts.scheme == "mqtts":
            client.tls_set()
        # No limit in paho (its default of 20 makes batches wait on round trips, and its
        # bookkeeping grows with the limit): our window of batches bounds what is in flight.
        client.max_inflight_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self._refusal: str | None = None  # why the broker refused the last connection (its CONNACK's reason)
        return client

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:
        self._disconnects += 1

    def reset(self) -> None:
        # paho would publish its unacknowledged messages again on reconnecting: the sink
        # sends them itself, and one the broker drops the connection for must not go again
        # behind its back once it is set aside. A new client holds nothing.
        self.close()
        self._client = self._new_client()

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        # A refusal (bad user name or password, not authorised) is the broker's CONNACK:
        # kept to say why nothing is delivered; paho's loop keeps trying to connect.
        self._refusal = str(reason) if reason.is_failure else None
        # Each batch ends waiting for acknowledgements: without TCP_NODELAY its last
        # small packet waits for a delayed ACK (about 40 ms a batch).
        sock = client.socket()
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _connect(self) -> None:
        if not self._connected:
            self._client.connect(self.host, self.port, keepalive=30)
            self._client.loop_start()
            self._connected = True

    def probe(self) -> None:
        self._connect()
        self._wait_connected()

    def _wait_connected(self) -> None:
        """Wait (up to the timeout) for the network loop's connection; raise saying why there is none."""
        deadline = time.monotonic() + self.timeout
        while not self._client.is_connected():
            if self._refusal is not None:
                raise OSError(f"the broker refused the connection: {self._refusal}")
            if time.monotonic() > deadline:
                raise OSError("not connected to the broker")
            time.sleep(0.05)

    window = 4  # batches published while earlier ones await their PUBACKs

    def key(self, event: Event) -> str:
        return self.topic.format(source_id=event.source_id, type=event.type)

    def start(self, entries: Sequence[tuple[str, str]]) -> list:
        """Publish a batch; returns what :meth:`finish` waits on."""
        self._connect()
        self._wait_connected()  # the network loop reconnects by itself; wait a little for it
        bad = [why for topic, payload in entries if (why := _unpublishable(topic, payload))]
        if bad:  # checked before anything is sent: the others go again one at a time, not twice
            raise Refused(bad[0])
        disconnects = self._disconnects
        return [self._client.publish(topic, payload, qos=self.qos) for topic, payload in entries], disconnects

    def finish(self, handle: tuple[list, int]) -> None:
        """Wait until the broker acknowledged every message of a batch."""
        infos, disconnects = handle
        deadline = time.monotonic() + self.timeout
        for info in infos:
            while not info.is_published():
                if self._disconnects != disconnects:
                    raise Dropped("the broker closed the connection while the batch was in flight")
                if time.monotonic() > deadline:
                    raise OSError("the broker did not acknowledge in time")
                info.wait_for_publish(min(0.05, max(0.0, deadline - time.monotonic())))

    def close(self) -> None:
        if self._connected:
            self._client.loop_stop()
            self._client.disconnect()
            self._connected = False


class RedisTransport(Transport):
    """Appends each event to a Redis Stream with ``XADD`` (field ``event``: the JSON),
    trimmed to about ``maxlen`` entries; a batch is one pipeline."""

    scheme = ("redis", "rediss")

    def __init__(self, url: str, stream: str = "streamer:{source_id}", maxlen: int | None = 100_000,
                 timeout: float = 5.0) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self.stream, self.maxlen = stream, maxlen

    def probe(self) -> None:
        self._redis.ping()

    window = 1  # one batch at a time: the pipeline's replies are the acknowledgement

    def key(self, event: Event) -> str:
        return self.stream.format(source_id=event.source_id, type=event.type)

    def start(self, entries: Sequence[tuple[str, str]]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for stream, payload in entries:
            pipe.xadd(stream, {"event": payload}, maxlen=self.maxlen, approximate=True)
        # Not a transaction: each XADD is answered apart, and those answered with an
        # error were not applied while the others were.
        replies = pipe.execute(raise_on_error=False)
        errors = {i: r for i, r in enumerate(replies) if isinstance(r, Exception)}
        for reply in errors.values():
            if not _redis_permanent(reply):
                raise reply  # the whole batch again later (the applied ones twice: at least once)
        if errors:
            raise Refused(_reason(next(iter(errors.values()))), {i: _reason(e) for i, e in errors.items()})

    def close(self) -> None:
        self._redis.close()


DROPS = 3  # connections lost in a row with one event in flight that set it aside

TRANSPORTS: dict[str, type[Transport]] = {"webhook": WebhookTransport, "mqtt": MqttTransport, "redis": RedisTransport}


class DeliverySink(Sink):
    """Events to a network endpoint through a durable outbox.

    Args:
        kind: ``webhook``, ``mqtt`` or ``redis``.
        url: Endpoint (credentials in it never appear in logs or errors).
        outbox: The outbox file; events left there by an earlier run go out first.
        batch: Events per send (default 1000 for MQTT, 100 otherwise).
        backoff: First retry delay in seconds; doubles up to ``max_backoff``.
        drain_timeout: Seconds ``close()`` waits for the outbox to empty; what is left
            stays on disk for the next run.
        options: Transport options (topic, qos, stream, maxlen, timeout, headers).
    """

    def __init__(self, kind: str, url: str, outbox: str | Path, batch: int | None = None, backoff: float = 0.5,
                 max_backoff: float = 30.0, drain_timeout: float = 10.0, **options) -> None:
        if kind not in TRANSPORTS:
            raise ConfigError(f"unknown event sink {kind!r}; choose one of {', '.join(TRANSPORTS)}")
        scheme = urlsplit(url).scheme
        if scheme not in TRANSPORTS[kind].scheme:
            schemes = " or ".join(s + "://" for s in TRANSPORTS[kind].scheme)
            raise ConfigError(f"{kind} sink: URL {redact(url)!r} must start with {schemes}")
        self.kind, self.label = kind, redact(url)
        self.transport = TRANSPORTS[kind](url, **options)
        self.outbox = Outbox(outbox)
        # Each batch waits for its acknowledgements: MQTT's per-message PUBACKs make one
        # round trip per batch, so its batches are larger.
        batch = batch or (1000 if kind == "mqtt" else 100)
        self.batch, self.backoff, self.max_backoff, self.drain_timeout = batch, backoff, max_backoff, drain_timeout
        self.delivered = 0
        self.failures = 0
        self.dead = 0  # events the endpoint refused for good, kept in the outbox's dead letters
        self.error = ""  # why the last send failed, while no later one succeeded
        self._drops = (0, 0)  # (first seq of the oldest batch, connections lost in a row with it in flight)
        self._final: DeliveryStats | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._drain_deadline = float("inf")

    def open(self) -> None:
        waiting = len(self.outbox)
        if waiting:
            log.info("%s: %d event(s) from an earlier run wait in %s; delivering them first",
                     self.label, waiting, self.outbox.path)
        try:
            self.transport.probe()
        except Exception as exc:  # a down endpoint is expected to come back
            log.warning("%s sink %s: not reachable now (%s); events are kept in %s and delivered when it is",
                        self.kind, self.label, _reason(exc), self.outbox.path)
        self._thread = threading.Thread(target=self._run, name=f"deliver-{self.kind}", daemon=True)
        self._thread.start()

    def write(self, frame: Frame, tracks: Detections, events: Sequence[Event]) -> None:
        self.write_events(events)

    def write_events(self, events: Sequence[Event]) -> None:
        if events:
            key = self.transport.key
            self.outbox.append([(key(e), event_json(e)) for e in events])
            self._wake.set()

    def _run(self) -> None:
        """Send the oldest events, up to the transport's window of batches in flight;
        acknowledge them in order; on any failure start again from the oldest
        unacknowledged event after a backoff (so a retry may repeat events: at least once)."""
        delay = self.backoff
        in_flight: collections.deque = collections.deque()  # (first seq, last seq, events, handle)
        sent = 0  # highest seq handed to the transport
        alone = 0  # up to this seq events go one at a time: their batch was refused for good
        while True:
            if self._stop.is_set() and self._draining_over():
                return
            try:
                # events one at a time are alone on the wire, so that what fails is theirs
                while len(in_flight) < (1 if sent < alone else self.transport.window):
                    entries = self.outbox.peek(1 if sent < alone else self.batch, after=sent)
                    if not entries:
                        break
                    try:
                        handle = self.transport.start([(k, p) for _, k, p in entries])
                    except Refused as exc:
                        if in_flight:  # set aside only once nothing is in flight: finish those first
                            break
                        sent, alone = self._refused(entries, exc, alone)
                        continue
                    in_flight.append((entries[0][0], entries[-1][0], len(entries), handle))
                    sent = entries[-1][0]
                if not in_flight:
                    if self._stop.is_set():
                        return
                    self._wake.wait(0.2)
                    self._wake.clear()
                    continue
                _, last, count, handle = in_flight[0]
                self.transport.finish(handle)
                in_flight.popleft()
                self.outbox.ack(last)
                self.delivered += count
                self.error = ""
                delay = self.backoff
            except Exception as exc:
                if isinstance(exc, Dropped) and in_flight:  # finish() of the oldest batch: it was in flight
                    alone = self._dropped(in_flight[0], exc, alone)
                in_flight.clear()
                self.transport.reset()
                sent = 0
                self.failures += 1
                self.error = _reason(exc)
                if self.failures == 1 or delay >= self.max_backoff:
                    log.warning("%s sink %s: delivery failed (%s); retrying in %.1fs, %d event(s) waiting on disk",
                                self.kind, self.label, _reason(exc), delay, len(self.outbox))
                if self._stop.is_set():  # closing: retry until the drain deadline
                    time.sleep(max(0.0, min(delay, self._drain_deadline - time.monotonic())))
                else:
                    self._stop.wait(delay)
                delay = min(delay * 2, self.max_backoff)

    def delivery(self) -> DeliveryStats:
        if self._final is not None:  # closed: as it ended
            return self._final
        return DeliveryStats(f"{self.kind} {self.label}", len(self.outbox), self.delivered, self.failures, self.dead,
                             self.error)

    def _refused(self, entries: list, exc: Refused, alone: int) -> tuple[int, int]:
        """A batch refused for good: its events are tried one at a time; a single one
        refused goes to the dead letters with the reason, and delivery goes on. Where the
        endpoint said which entries it refused (and took the others), those alone go."""
        if exc.refused is not None:
            return self._refused_some(entries, exc.refused), alone
        if len(entries) > 1:
            log.warning("%s sink %s: a batch of %d events was refused (%s); sending them one at a time to set "
                        "the refused ones aside", self.kind, self.label, len(entries), exc)
            return entries[0][0] - 1, entries[-1][0]
        self.outbox.bury(entries, str(exc))
        self.dead += 1
        log.warning("%s sink %s: an event was refused for good (%s); it is kept in the dead letters of %s "
                    "(%d so far) and delivery goes on", self.kind, self.label, exc, self.outbox.path, self.dead)
        return entries[0][0], alone

    def _dropped(self, head: tuple, exc: Dropped, alone: int) -> int:
        """The connection was lost with ``head``, the oldest batch, in flight. The same batch
        losing it ``DROPS`` times in a row is sent one event at a time; the same single
        event losing it ``DROPS`` times in a row is refused for good (a broker that only
        restarts does not lose the connection on one event each time)."""
        first, last, count, _ = head
        n = self._drops[1] + 1 if self._drops[0] == first else 1
        self._drops = (first, n) if n < DROPS else (0, 0)
        if n < DROPS:
            return alone
        if count > 1:
            log.warning("%s sink %s: the connection was lost %d times in a row with the same batch in flight; "
                        "sending its %d events one at a time", self.kind, self.label, n, count)
            return max(alone, last)
        entries = self.outbox.peek(1, after=first - 1)
        if entries and entries[0][0] == first:
            why = f"{exc} {n} times in a row with this event (over the broker's maximum packet size?)"
            self.outbox.bury(entries, why)
            self.dead += 1
            log.warning("%s sink %s: an event was refused for good (%s); it is kept in the dead letters of %s "
                        "(%d so far) and delivery goes on", self.kind, self.label, why, self.outbox.path, self.dead)
        return alone

    def _refused_some(self, entries: list, refused: dict[int, str]) -> int:
        for reason in sorted(set(refused.values())):
            self.outbox.bury([entries[i] for i, why in refused.items() if why == reason], reason)
        self.outbox.ack(entries[-1][0])  # the others were accepted
        self.delivered += len(entries) - len(refused)
        self.dead += len(refused)
        log.warning("%s sink %s: %d event(s) of a batch of %d were refused for good (%s); they are kept in the "
                    "dead letters of %s (%d so far) and delivery goes on", self.kind, self.label, len(refused),
                    len(entries), next(iter(refused.values())), self.outbox.path, self.dead)
        return entries[-1][0]

    def _draining_over(self) -> bool:
        return time.monotonic() > self._drain_deadline

    def begin_close(self) -> None:
        """Start the final drain now (so that several sinks drain at the same time)."""
        if not self._stop.is_set():
            self._drain_deadline = time.monotonic() + self.drain_timeout
            self._stop.set()
            self._wake.set()

    def close(self) -> None:
        if self._thread is None:
            return
        self.begin_close()
        self._thread.join(self.drain_timeout + 5.0)
        self._thread = None
        self._final = self.delivery()
        left = self._final.pending
        if left:
            log.warning("%s sink %s: %d event(s) not delivered; they stay in %s for the next run",
                        self.kind, self.label, left, self.outbox.path)
        self.transport.close()
        self.outbox.close()


# Redis error replies that a later try may not get: the server is out of memory until
# trimming or consumers free some (OOM), loading its data (LOADING), running a script (BUSY),
# a replica or read-only until a failover (READONLY, MASTERDOWN, NOREPLICAS), failing to
# save (MISCONF), a cluster moving slots (MOVED, ASK, TRYAGAIN, CLUSTERDOWN), at its client
# limit, or refusing the connection's login (NOAUTH, WRONGPASS: every event alike, so they
# wait for it to be fixed rather than all going to the dead letters). Any other error reply
# is about this command and its key, which a retry sends unchanged: WRONGTYPE (the key
# holds another type), NOPERM (the user's ACL denies this key), ERR (a bad argument), and
# so permanent. redis-py turns some codes into classes (and drops the code from the text).
_REDIS_TRANSIENT_CODES = ("BUSY ", "MISCONF ", "NOREPLICAS ", "LOADING ", "CLUSTERDOWN ", "TRYAGAIN ")


def _redis_permanent(exc: Exception) -> bool:
    from redis import exceptions as e

    transient = (e.ConnectionError, e.TimeoutError, e.OutOfMemoryError, e.ReadOnlyError, e.TryAgainError,
                 e.MovedError, e.AskError, e.ClusterDownError, e.MasterDownError, e.AuthenticationError)
    if not isinstance(exc, e.ResponseError) or isinstance(exc, transient):
        return False
    return not str(exc).startswith(_REDIS_TRANSIENT_CODES)


# MQTT's own bounds (a topic of at most 65535 bytes, no wildcards or NUL; a payload of at
# most 268435455 bytes): paho raises for these at publish, and so would every retry.
def _unpublishable(topic: str, payload: str) -> str | None:
    raw = topic.encode("utf-8", "surrogatepass")
    if not raw or len(raw) > 65535 or any(c in topic for c in "+#\x00"):
        return f"topic {topic[:80]!r} cannot be published to (empty, over 65535 bytes, or holding +, # or NUL)"
    if len(payload) > 268435455 // 4 and len(payload.encode()) > 268435455:  # at most 4 bytes a character
        return "an event of over 268435455 bytes: more than an MQTT message can carry"
    return None


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
