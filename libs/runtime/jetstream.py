"""Creating streams from their contract definitions, idempotently."""

from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from libs.contracts.streams import StreamSpec


async def ensure_stream(js: JetStreamContext, spec: StreamSpec) -> None:
    config = StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        storage=StorageType.FILE,
        max_age=spec.max_age_s,
        duplicate_window=spec.duplicate_window_s,
        retention=RetentionPolicy.WORK_QUEUE if spec.work_queue else RetentionPolicy.LIMITS,
    )
    try:
        await js.add_stream(config)
    except BadRequestError:
        # Exists with a different config (e.g. an older deployment): bring it in line.
        await js.update_stream(config)
