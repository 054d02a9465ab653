"""What ``GET /metrics`` shows, in Prometheus' text format (prometheus_client).

The counters live in this process (``pixelgate serve`` is one process); the queue depth is read from the
database at each scrape, so it counts the tasks of every process sharing it.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Seconds: from a sub-second emulator answer to a 4K Pro image that queued behind others.
TASK_BUCKETS = (0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800)

requests = Counter(
    "pixelgate_requests", "HTTP requests answered, by dialect and status", ["dialect", "status"]
)
request_seconds = Histogram(
    "pixelgate_request_duration_seconds", "Time to answer a request (whole body sent)", ["dialect"]
)
tasks_finished = Counter(
    "pixelgate_tasks_finished", "Tasks that ended, by model and outcome", ["model", "outcome"]
)
task_seconds = Histogram(
    "pixelgate_task_duration_seconds",
    "From accepted to finished, for tasks that completed, by model and channel",
    ["model", "channel"],
    buckets=TASK_BUCKETS,
)
queue_depth = Gauge("pixelgate_queue_depth", "Tasks waiting or running, across processes", ["status"])
upstream_errors = Counter(
    "pixelgate_upstream_errors",
    "Failed upstream calls, by channel and kind (the error code)",
    ["channel", "kind"],
)
retries = Counter("pixelgate_retries", "Upstream attempts after an image's first, by channel", ["channel"])
cooldowns = Counter("pixelgate_cooldowns", "Times a channel started cooling down after failures", ["channel"])
channel_state = Gauge(
    "pixelgate_channel_state",
    "1 for the state each channel is in now (ready, rate_limited, cooling_down, half_open, probing, disabled), "
    "0 for the others; in this process",
    ["channel", "state"],
)
channel_in_flight = Gauge(
    "pixelgate_channel_in_flight", "Images being made at each channel now, by this process", ["channel"]
)
batches_finished = Counter(
    "pixelgate_batches_finished", "Batch jobs that ended, by dialect and final state", ["dialect", "state"]
)
batch_lines_finished = Counter(
    "pixelgate_batch_lines_finished",
    "Lines of ended batch jobs, by dialect and outcome (succeeded or failed)",
    ["dialect", "outcome"],
)
credits_reserved = Counter(
    "pixelgate_credits_reserved_usd", "Estimated cost reserved when tasks were accepted"
)
credits_settled = Counter(
    "pixelgate_credits_settled_usd", "Cost settled for tasks that made images (failures settle at 0)"
)
