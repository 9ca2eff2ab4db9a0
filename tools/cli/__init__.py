"""The `switchboard` command: start the whole gateway on one machine."""
