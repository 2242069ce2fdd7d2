"""The client side: the SDK (``sealbox.Client``, ``sealbox.AsyncClient``) and its flows, login
and profiles, the local cache agent, and ``sealbox run``'s child process and masking; all of it
talks to the relay through the relay-client core (:mod:`sealbox._relay`)."""
