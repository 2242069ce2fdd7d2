"""The cryptographic core of sealbox: pure functions over bytes.

The only package that imports pyca/cryptography.  Imports nothing of
sealbox but the leaf :mod:`sealbox.errors`.
"""
