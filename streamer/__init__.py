"""streamer: streaming video analytics (decode, batched detection, tracking, events)."""

import os

# torch's CPU thread pool is OpenMP's, whose idle workers spin: when other work shares the
# cores (decoding, encoding, another process) the spinning workers and the barrier between
# operators lose most of their time. Passive waiting, set before torch is first imported
# (later it has no effect), measured on 2 cores with YOLOv8n at 640x480, batch 4: 42.6
# images/s quiet and 26.2 beside a one-core busy loop, against 51.7 and 13.7 spinning.
# An OMP_WAIT_POLICY already set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
