"""``sealbox mcp``: an MCP server through which an AI agent uses secrets without seeing them.

:mod:`sealbox.mcp.server` (the tools), :mod:`sealbox.mcp.session` (one MCP
session: its cache of released values and its requests),
:mod:`sealbox.mcp.runner` (running a command, its output masked and bounded),
:mod:`sealbox.mcp.prompt` (the one-time local page ``store_secret`` sends a
person to).
"""
