"""The jobs service: evals and replays now, every async job (JOBS work queue) later."""
