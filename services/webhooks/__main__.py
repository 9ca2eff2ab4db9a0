"""`python -m services.webhooks`: signed delivery of every event, with retries."""

from libs.runtime.process import run_with_health
from services.webhooks.service import WebhooksService


def main() -> None:
    run_with_health("webhooks", WebhooksService, "SWITCHBOARD_WEBHOOKS_HEALTH_PORT", 8095)


if __name__ == "__main__":
    main()
