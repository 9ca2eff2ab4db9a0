"""`python -m services.ledger`: the ledger service."""

from libs.runtime.process import run_with_health
from services.ledger.service import LedgerService


def main() -> None:
    run_with_health("ledger", LedgerService, "SWITCHBOARD_LEDGER_HEALTH_PORT", 8093)


if __name__ == "__main__":
    main()
