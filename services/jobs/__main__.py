"""`python -m services.jobs`: evals and replays (later: every async job)."""

from libs.runtime.process import run_with_health
from services.jobs.service import JobsService


def main() -> None:
    run_with_health("jobs", JobsService, "SWITCHBOARD_JOBS_HEALTH_PORT", 8094)


if __name__ == "__main__":
    main()
