"""The jobs service's metrics: the lag of its consumers on the JOBS work queue."""

from nats.js import JetStreamContext

from libs.contracts import subjects
from libs.runtime.metrics import Metrics


class JobsMetrics(Metrics):
    def __init__(self) -> None:
        super().__init__("jobs")

    def start(self, js: JetStreamContext) -> None:
        self.watch_consumers(js, ((subjects.STREAM_JOBS, subjects.JOBS_CONSUMER),
                                  (subjects.STREAM_JOBS, subjects.JOBS_POLL_CONSUMER)))
