"""Approver devices: key custody, creating the vault's first approver and pairing others, one
``answer()`` for the terminal and the automated approver, and the automated approver's rules;
all of it talks to the relay through the relay-client core (:mod:`sealbox._relay`)."""
