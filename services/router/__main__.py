"""`python -m services.router`: the router service."""

from libs.contracts.config import load_config
from libs.runtime.process import run_with_health
from services.router.service import RouterService


def main() -> None:
    run_with_health("router", lambda: RouterService(load_config()), "SWITCHBOARD_ROUTER_HEALTH_PORT", 8091)


if __name__ == "__main__":
    main()
