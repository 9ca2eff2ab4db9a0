"""The ledger's metrics: its consumer's lag on USAGE and the usage events it stored."""

from collections.abc import Callable, Iterator

from nats.js import JetStreamContext
from prometheus_client.metrics_core import CounterMetricFamily, Metric

from libs.contracts import subjects
from libs.runtime.metrics import Metrics


class LedgerMetrics(Metrics):
    def __init__(self, stored: Callable[[], int]) -> None:
        super().__init__("ledger")
        # The ingestor counts what it stored already; read at scrape time (one ledger process per
        # store: `switchboard up` never runs two, and a replica elsewhere is its own scrape target).
        self.at_scrape(_Stored(stored))

    def start(self, js: JetStreamContext) -> None:
        self.watch_consumers(js, ((subjects.STREAM_USAGE, subjects.LEDGER_CONSUMER),))


class _Stored:
    def __init__(self, stored: Callable[[], int]) -> None:
        self._stored = stored

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily("switchboard_ledger_events_stored",
                                  "Usage events this ledger process wrote to the usage store (a redelivered "
                                  "event it already held is not counted where the store can tell).",
                                  value=self._stored())
