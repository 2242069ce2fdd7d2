"""Approver devices: key custody, and creating the vault's first approver."""
