"""The one relay-client core: what every device that talks to a relay shares.

The SDK, the CLI, login and both approvers (terminal and automated) talk to
the relay through this package and nothing else:

- :mod:`.calls`: sans-IO calls and replies, and reading the relay's answers
  strictly (one :class:`~sealbox.errors.RelayRefused`, its text made safe);
- :mod:`.drive`: the blocking and asyncio drivers that send calls over httpx,
  sign or authorise them, honour ``Retry-After`` and ride out a relay restart
  where a call may wait;
- :mod:`.directory`: fetching and verifying the approver directory from the
  pinned link 0, never moving its head back;
- :mod:`.httpsig`: RFC 9421 request signing with a device key;
- :mod:`.text` and :mod:`.files`: text safe to print, private files.

``sealbox.client`` and ``sealbox.approver`` both build on it; neither imports
the other (a test pins this).
"""
