"""The reasoning side: probes, the per-feature loop, judges, the store, export and the CLI.

Nothing here imports torch at module level; the engine is loaded only when a command needs it.

Entry points for other front ends (the TUI):
    agent.session.Session(world=WorldSpec(...), store=..., judge=JudgeConfig(...), scale=ScaleOut(...)): the
    composition root every command and the TUI open (with ...: engines, store, judge, ground truth, norms);
    session.prepare(RunRequest(...)) -> PreparedRun, session.run(prepared, on_event=...), session.probe(...)
    agent.run.run_features(engine, judge, store, features, config, on_event=..., control=RunControl(),
    topk=None) -- config.evidence "topk" | "hybrid" | "all" adds the top-k / hybrid descriptions
    agent.store.store.Store(path): get_record / list_records / set_review / clear_review / review_history /
    add_manual_probe / manual_probes (a record's ``manual`` list)
    agent.session.prepare_run(RunRequest(...), Engines()) -> PreparedRun: the checks Session.prepare runs, cheapest
    first (ChoiceError names the field to fix)
    agent.world: WorldSpec, load_engine(spec), Engines (one engine per world), same_world(spec, store.world())
    agent.judges.build_judge(JudgeConfig(...)); agent.judges.check_judge(judge) before a run (raises
    JudgeUnreachable / JudgeFatalError); agent.judges.scripted.ScriptedChat for tests
    agent.topk: topk_dir(store) / record_topk / require_topk (TopKMissing), feature_views(root, f, n, kind) ->
    TopView(image, caption), base_image(spec), feature_stats -- pictures without importing steering
    agent.run.events: RunPlanned, RunStarted, FeatureStarted, ProbesFinished, JudgeDecided, FeatureFinished, RunError,
    RunFinished (each with a RunStats snapshot)
    agent.run.config.RunConfig / SweepConfig; agent.run.features.parse_features; agent.store.export.export_records
"""
