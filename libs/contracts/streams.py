"""JetStream streams: one definition, created idempotently by every service
that publishes to or consumes from them."""

from typing import Final

import msgspec

from libs.contracts import subjects


class StreamSpec(msgspec.Struct, frozen=True):
    name: str
    subjects: tuple[str, ...]
    max_age_s: float
    duplicate_window_s: float  # JetStream drops a repeated Nats-Msg-Id inside this window
    work_queue: bool = False  # a message is removed once a consumer acknowledges it


USAGE: Final = StreamSpec(subjects.STREAM_USAGE, (subjects.USAGE_EVENTS,), max_age_s=7 * 86400,
                          duplicate_window_s=600)
EVENTS: Final = StreamSpec(subjects.STREAM_EVENTS, (f"{subjects.EVENTS_PREFIX}.>",), max_age_s=7 * 86400,
                           duplicate_window_s=600)
JOBS: Final = StreamSpec(subjects.STREAM_JOBS, (f"{subjects.JOBS_WORK_PREFIX}.>",), max_age_s=7 * 86400,
                         duplicate_window_s=600, work_queue=True)
WEBHOOKS: Final = StreamSpec(subjects.STREAM_WEBHOOKS, (f"{subjects.WEBHOOKS_DELIVER_PREFIX}.>",),
                             max_age_s=7 * 86400, duplicate_window_s=600, work_queue=True)
