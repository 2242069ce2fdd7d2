"""The ``sealbox`` command: a thin layer over the client and approver packages."""
