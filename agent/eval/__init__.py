"""Evaluation of explanations: how often each mode names the ground truth (the toy world), against the
paper's controls, and measures that need no ground truth (forced choice, CLIP similarity).

    agent.eval.runner.evaluate(Inputs(engine, EvalCache(dir), features, truth, embedder, ...), EvalConfig())
        -> metrics (a JSON-able dict; ``metrics.json`` of a report)
    agent.eval.report.write_report(metrics, dir) -> dir/report.md (+ PNG plots, metrics.json)
    agent.eval.metrics: wilson, rate, word_hit, derangement, summarize
    agent.eval.forced_choice: make_trials, embedding_choice, LLMChooser, forced_choice
    agent.eval.clip_score: load_clip, clip_similarity

The CLI is ``steer-agent eval`` (agent/cli/eval.py). Nothing here imports torch at module level.
"""
