"""The UI handlers render every trainer state: fresh, after a served round, after a rejected one."""

import app
from trainer.runtime import Runtime

from .test_runtime import vote_on_replies


def render(handlers: app.Handlers) -> tuple:
    return handlers.status_markdown(), handlers.dashboard()


def test_status_and_dashboard_render_in_every_state(settings, tiny_base):
    runtime = Runtime(settings, tiny_base)
    handlers = app.Handlers(runtime)
    status, board = render(handlers)
    assert "**Serving:** `base`" in status and board[6].empty is False  # the table lists the base

    vote_on_replies(runtime, 4)
    runtime.loop.run_round()
    status, board = render(handlers)
    assert "Last round: `v0001`" in status and list(board[6]["version"]) == ["v0001", "base"]
    assert not board[2].empty, "per-step metrics of the latest round"

    settings.gate.enabled, settings.gate.max_kl = True, 0.0  # this gate refuses every trained adapter
    vote_on_replies(runtime, 4)
    runtime.loop.run_round()
    status, board = render(handlers)
    assert "The gate kept `v0002` from serving" in status and "**Serving:** `v0001`" in status
    table = board[6].set_index("version")
    assert table.loc["v0002", "gate"] == "rejected" and "over the cap" in table.loc["v0002", "why not served"]
    assert set(board[5]["series"]) == {"v0001 liked", "v0001 disliked", "v0002 liked", "v0002 disliked"}
    assert set(board[3]["metric"]) == {"held-out AUC", "KL to base"}
    runtime.close()
