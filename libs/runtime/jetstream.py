"""Creating streams from their contract definitions, idempotently.

Every stream gets SWITCHBOARD_NATS_REPLICAS copies (1 on a single server, 3 on a
cluster); a stream that exists with another replica count is brought in line.
"""

from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from libs.contracts.streams import StreamSpec
from libs.runtime.env import nats_replicas


async def ensure_stream(js: JetStreamContext, spec: StreamSpec) -> None:
    config = StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        storage=StorageType.FILE,
        max_age=spec.max_age_s,
        duplicate_window=spec.duplicate_window_s,
        retention=RetentionPolicy.WORK_QUEUE if spec.work_queue else RetentionPolicy.LIMITS,
        num_replicas=nats_replicas(),
    )
    try:
        await js.add_stream(config)
    except BadRequestError:
        # Exists with a different config (e.g. an older deployment): bring it in line.
        await js.update_stream(config)
