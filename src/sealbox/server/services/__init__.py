"""The relay's domain operations: each takes the relay and ``now``, and knows nothing of HTTP."""
