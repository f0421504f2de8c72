"""The reasoning side: probes, the per-feature loop, judges, the store, export and the CLI.

Nothing here imports torch at module level; the engine is loaded only when a command needs it.

Entry points for other front ends (the TUI):
    agent.runner.run_features(engine, judge, store, features, config, on_event=..., control=RunControl())
    agent.store.Store(path): get_record / list_records / set_review / clear_review / review_history
    agent.judges.make_judge("offline" | "openai", ...); agent.judges.scripted.ScriptedChat for tests
    agent.events: RunPlanned, RunStarted, FeatureStarted, ProbesFinished, JudgeDecided, FeatureFinished, RunError,
    RunFinished (each with a RunStats snapshot)
    agent.config.RunConfig / SweepConfig; agent.features.parse_features; agent.export.export_records
"""
