"""The sealbox protocol: pure and sans-IO.

Statement types, the approver directory, certificates, the store and access
flows, and the request state table.  Every function takes ``now`` (and, at a
private ``_…_from_parts`` layer, its randomness) as arguments and performs
no I/O, so the relay, the clients and the approvers all drive the same code
and the test vectors can be reproduced byte for byte.

Imports only :mod:`sealbox.crypto` (and the leaf :mod:`sealbox.errors`).
"""
