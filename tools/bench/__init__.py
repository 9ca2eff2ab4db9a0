"""`make bench`: the same load against the gateway and straight at the upstream."""
