"""The status line and the dashboard's summary, rendered as Markdown from the typed status."""

from __future__ import annotations

import time

from ..contracts import AppStatus, HubStatus, VersionMeta


def _loop_state(status: AppStatus) -> str:
    loop = status.loop
    if loop.state == "training":
        left = f", about {loop.seconds_left:.0f} s to its verdict" if loop.seconds_left is not None else ""
        return f"training, step {loop.step} of {loop.total_steps or '?'}{left}"
    return loop.state


def learning_curve_text(status: AppStatus, last: int = 4) -> str:
    """The like share of the votes on each of the `last` voted versions' replies, oldest first."""
    voted = [(name, counts) for name, counts in status.votes_by_version.items() if counts.desirable_share is not None]
    return " → ".join(f"`{name}` {counts.desirable_share:.0%} of {counts.total}"
                      for name, counts in voted[-last:])


def hub_line(hub: HubStatus, now: float | None = None) -> str:
    """Where votes are kept: on the Hub (and how fresh), or on this disk only, and why."""
    if hub.state in ("off", "local-only"):
        return f"⚠️ **Local only:** {hub.detail or 'votes and versions are kept on this disk only'}."
    if hub.state == "synced" and hub.last_push_at is not None:
        ago = max(0, (now or time.time()) - hub.last_push_at)
        waiting = f", {hub.events_waiting} changes since" if hub.events_waiting else ""
        return f"**Kept on the Hub:** `{hub.repo}`, last push {ago:.0f} s ago{waiting}."
    state = {"restoring": "reading it back", "connecting": "connecting", "retrying": "retrying"}.get(hub.state,
                                                                                                     hub.state)
    detail = f": {hub.detail}" if hub.detail else ""
    return (f"**Kept on the Hub:** `{hub.repo}` ({state}{detail}; {hub.events_waiting} changes kept here until "
            f"then).")


def status_line(status: AppStatus) -> str:
    """The line above the tabs: what serves, what waits, what the trainer does, and how the last round went."""
    loop = status.loop
    lines = [
        f"**Serving:** `{status.serving}` &nbsp; **Votes waiting:** {status.votes_waiting.desirable} 👍 / "
        f"{status.votes_waiting.undesirable} 👎{f', {status.picks_waiting} picks' if status.picks_waiting else ''} "
        f"{f'({status.votes_over_caps} over a voter cap wait for later rounds) ' if status.votes_over_caps else ''}"
        f"(a round starts at {status.min_votes}{', both kinds' if status.needs_both_labels else ''}) "
        f"&nbsp; **Trainer:** {_loop_state(status)}",
    ]
    if status.persona_note:
        lines.append(f"⚠️ {status.persona_note[0].upper()}{status.persona_note[1:]}.")
    curve = learning_curve_text(status)
    if curve:
        lines.append(f"Liked, of the votes on each version's replies: {curve}")
    if loop.last_version and not loop.last_rejection:
        swap = f", swap {loop.last_swap_ms:.3f} ms" if loop.last_swap_ms is not None else ""
        lines.append(f"Last round: `{loop.last_version}` in {loop.last_round_seconds:.0f} s{swap}.")
    if loop.last_rejection:
        lines.append(f"The gate kept `{loop.last_version}` from serving: {loop.last_rejection}")
    if loop.last_error:
        lines.append(f"⚠️ Last round failed, the previous version kept serving: `{loop.last_error}`")
    if status.hub.state != "synced":  # the usual case needs no words above the chat
        lines.append(hub_line(status.hub))
    return "\n\n".join(lines)


def dashboard_summary(status: AppStatus, serving: VersionMeta) -> str:
    """The dashboard's first lines: the serving version's gate scores, the trainer, the last rejection."""
    gate = serving.gate
    scores = (f"held-out AUC {gate.candidate.auc:.3f}, margin {gate.candidate.margin:.3f}, "
              f"KL {gate.candidate.kl:.4f}") if gate else "no gate scores (shipped or base)"
    loop = status.loop
    lines = [f"**Serving `{status.serving}`**: {scores}. **Trainer:** {_loop_state(status)}", hub_line(status.hub)]
    if status.persona_note:
        lines.append(f"⚠️ {status.persona_note[0].upper()}{status.persona_note[1:]}.")
    if loop.last_rejection:
        lines.append(f"Last round `{loop.last_version}` was kept from serving: {loop.last_rejection}")
    return "\n\n".join(lines)
