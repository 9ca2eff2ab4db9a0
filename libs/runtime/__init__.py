"""Process plumbing every service needs the same way: logging, NATS connection,
environment settings, the health endpoint. No business logic lives here; shared
*types* live in libs/contracts."""
