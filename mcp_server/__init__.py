"""The Deploy MCP process: CLI, configuration, server assembly, authentication, the Postgres store.

This is the top layer: it imports `tools` and `workflows`, never the other way round.
"""
