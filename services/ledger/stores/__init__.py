"""The ledger's usage stores: ClickHouse in production, SQLite embedded, the same queries side by side."""

from pathlib import Path

from services.ledger.stores.base import UsageStore
from services.ledger.stores.clickhouse import ClickHouseUsageStore
from services.ledger.stores.sqlite import SqliteUsageStore

__all__ = ["ClickHouseUsageStore", "SqliteUsageStore", "UsageStore", "open_store"]


def open_store(clickhouse_url: str | None, sqlite_path: Path) -> UsageStore:
    """The configured store, not yet opened: the caller awaits open() inside its own startup."""
    if clickhouse_url:
        return ClickHouseUsageStore(clickhouse_url)
    return SqliteUsageStore(sqlite_path)
