"""The reasoning side: probes, the per-feature loop, judges, the store, export and the CLI.

Nothing here imports torch at module level; the engine is loaded only when a command needs it.
"""
