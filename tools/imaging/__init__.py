"""The container image: its entrypoint and how `make image` builds it."""
