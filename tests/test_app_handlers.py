"""The UI handlers render every trainer state: fresh, after a served round, after a rejected one."""

import app


def render(handlers: app.Handlers) -> tuple:
    return handlers.status_markdown(), handlers.dashboard()


def test_status_and_dashboard_render_in_every_state(runtime, settings, vote_on_replies):
    handlers = app.Handlers(runtime)
    status, board = render(handlers)
    assert "**Serving:** `base`" in status and list(board.versions["version"]) == ["base"]
    assert "no gate scores" in board.summary and board.version_names == ["base"]

    vote_on_replies(runtime, 4)
    runtime.loop.run_round()
    status, board = render(handlers)
    assert "Last round: `v0001`" in status and list(board.versions["version"]) == ["v0001", "base"]
    assert not board.step_metrics.empty, "per-step metrics of the latest round"
    assert handlers.status_json()["loop"]["rounds"] == 1
    # vote_on_replies votes like / dislike in turn: half of the votes on the base's replies are likes.
    assert "`base` 50% of 4" in status
    assert handlers.status_json()["votes_by_version"] == {"base": {"desirable": 2, "undesirable": 2}}
    assert board.versions.set_index("version").loc["base", "liked (votes on its replies)"] == "50% of 4"
    assert list(board.learning_curve["bar"]) == ["base liked"]

    settings.gate.enabled, settings.gate.auc_tolerance = True, -1.0  # this gate refuses every candidate
    vote_on_replies(runtime, 4)
    runtime.loop.run_round()
    status, board = render(handlers)
    assert "The gate kept `v0002` from serving" in status and "**Serving:** `v0001`" in status
    assert "kept from serving" in board.summary
    table = board.versions.set_index("version")
    assert table.loc["v0002", "gate"] == "rejected" and "held-out AUC" in table.loc["v0002", "why not served"]
    assert set(board.reward_quantiles["series"]) == {"v0001 liked", "v0001 disliked", "v0002 liked",
                                                     "v0002 disliked"}
    assert set(board.version_metrics["metric"]) == {"held-out AUC", "KL to base"}
    # The AOT paper's paired panel: the seed eval rows' pairs under the base, the serving version and the candidate.
    assert set(board.pair_ratio_quantiles["series"]) == {"base", "v0001", "v0002"}
    assert table.loc["v0002", "loss"] == "kto" and 0 <= table.loc["v0002", "pair accuracy"] <= 1
    # The second round was gated: the checks of its candidate's and of the serving v0001's replies are shown.
    curve = board.learning_curve.set_index("bar")["value"]
    gate = runtime.versions.get("v0002").meta.gate
    assert curve["v0002 reply"] == gate.candidate.rubric and curve["v0001 reply"] == gate.serving.rubric
    assert "`v0001` 50% of 4" in status and "`base` 50% of 4 → `v0001` 50% of 4" in status
    assert board.versions.set_index("version").loc["v0002", "reply checks"] == f"{gate.candidate.rubric:.0%}"


def test_open_tabs_share_one_status_and_dashboard_computation(runtime, vote_on_replies):
    handlers = app.Handlers(runtime)
    for _ in range(10):  # ten tabs' timers firing together
        handlers.status_markdown(), handlers.dashboard()
    assert handlers._status_line.computed == 1 and handlers._dashboard.computed == 1
    vote_on_replies(runtime, 4)
    runtime.loop.run_round()
    assert "Last round: `v0001`" in handlers.status_markdown(), "a round's end shows at once, not a refresh later"
    assert list(handlers.dashboard().versions["version"]) == ["v0001", "base"]
