"""The webhooks service: arrives with its own issue (see ../shared/ARCHITECTURE.md)."""
