"""Reviewer #2, learning live: chat with the harshest peer reviewer, vote, and watch him learn.

Run:  python app.py            (settings: see README.md; the model loads here, at start-up)

This file wires the UI to the handlers below and nothing else; the logic lives in `trainer/`.
"""

import logging
import os
import signal
from dataclasses import dataclass

import gradio as gr

from trainer.admin import AdminError
from trainer.config import AppSettings
from trainer.contracts import to_dict
from trainer.learning import NotEnoughVotes
from trainer.loop import RoundHeld
from trainer.runtime import Runtime
from trainer.serve.chat import ChatError, ChatSession, Comparison
from trainer.serve.voters import Identity, identify
from trainer.store.versions import VersionError
from trainer.store.votes import VoteError
from trainer.ui.dashboard import DashboardView, dashboard_view
from trainer.ui.recent import Recent
from trainer.ui.status import status_line

STATUS_REFRESH_SECONDS = 2.0
DASHBOARD_REFRESH_SECONDS = 5.0


def session_key(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "local"


def identity(runtime: Runtime, request: gr.Request | None) -> Identity:
    """The visitor behind `request`, for counting votes (serve/voters.py): the signed-in user, else the session
    and the client's address (X-Forwarded-For on a Space), hashed."""
    headers = getattr(request, "headers", None) or {}
    client = getattr(request, "client", None)
    return identify(runtime.votes.identity_key, session_key(request), getattr(request, "username", None),
                    headers.get("x-forwarded-for"), getattr(client, "host", None))


def row_index(value: object) -> int:
    """A chatbot row index from the API's text field: "2", 2 or 2.0 -> 2; anything else is a VoteError that
    says what is expected (Gradio's Number field answered a string with a generic error)."""
    text = str(value if value is not None else "").strip()
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if not number.is_integer():
        raise VoteError(f"A vote needs a message index, a whole number such as 2; got {value!r}.")
    return int(number)


class Handlers:
    """The UI's event handlers, bound to one runtime (Gradio reads their type hints, so no partials)."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        # Shared by every open tab's timers: ten tabs cost the decode loop what one does.
        changed = lambda: (runtime.loop.status(), runtime.server.current.name)  # noqa: E731
        self._status_line = Recent(lambda: status_line(runtime.status()), STATUS_REFRESH_SECONDS / 2, changed)
        self._dashboard = Recent(self._dashboard_now, DASHBOARD_REFRESH_SECONDS / 2, changed)

    def respond(self, message: str, session: ChatSession | None, request: gr.Request):
        chat = self.runtime.chat
        session = session or chat.new_session()
        try:
            for session in chat.reply(session, message, session_key(request), identity(self.runtime, request)):
                yield session.chatbot(), session, ""
        except ChatError as err:
            raise gr.Error(str(err)) from None

    def stop(self, request: gr.Request) -> None:
        self.runtime.chat.stop(session_key(request))

    def on_like(self, session: ChatSession | None, like: gr.LikeData, request: gr.Request) -> str:
        index = like.index[0] if isinstance(like.index, (list, tuple)) and like.index else like.index
        return self.vote(session, index, like.liked, request)

    def vote(self, session: ChatSession | None, index: str, liked: str, request: gr.Request) -> str:
        """Vote on the reply at chatbot row `index` (a whole number, sent as a number or as text): liked = like /
        dislike / "" to retract."""
        chat = self.runtime.chat
        try:
            return chat.vote(session or chat.new_session(), row_index(index), liked, session_key(request))
        except VoteError as err:
            raise gr.Error(str(err)) from None

    def compare(self, message: str, request: gr.Request):
        """Two replies to one message, streamed side by side: (reply A, reply B, which versions wrote them, state)."""
        runtime = self.runtime
        try:
            for comparison in runtime.chat.compare(message, session_key(request), runtime.comparisons.pair(),
                                                   identity(runtime, request)):
                yield comparison.texts[0], comparison.texts[1], comparison_note(comparison), comparison
        except ChatError as err:
            raise gr.Error(str(err)) from None

    def pick(self, comparison: Comparison | None, choice: str, request: gr.Request) -> str:
        """Pick the better of the last two replies: choice = a / b / neither ("both bad")."""
        try:
            return self.runtime.chat.pick(comparison, choice, session_key(request))
        except VoteError as err:
            raise gr.Error(str(err)) from None

    def pick_a(self, comparison: Comparison | None, request: gr.Request) -> str:
        return self.pick(comparison, "a", request)

    def pick_b(self, comparison: Comparison | None, request: gr.Request) -> str:
        return self.pick(comparison, "b", request)

    def pick_neither(self, comparison: Comparison | None, request: gr.Request) -> str:
        return self.pick(comparison, "neither", request)

    def _admin(self, action, token: str, profile: gr.OAuthProfile | None, *args):
        try:
            return action(token, *args, username=getattr(profile, "username", None))
        except (AdminError, NotEnoughVotes, RoundHeld, VersionError) as err:
            raise gr.Error(str(err)) from None

    def train_now(self, token: str, profile: gr.OAuthProfile | None) -> str:
        return self._admin(self.runtime.admin.train_now, token, profile)

    def pause(self, token: str, profile: gr.OAuthProfile | None) -> str:
        return self._admin(self.runtime.admin.pause, token, profile)

    def resume(self, token: str, profile: gr.OAuthProfile | None) -> str:
        return self._admin(self.runtime.admin.resume, token, profile)

    def rollback(self, token: str, version: str, profile: gr.OAuthProfile | None) -> str:
        return self._admin(self.runtime.admin.rollback, token, profile, version)

    def export_votes(self, token: str, profile: gr.OAuthProfile | None) -> str:
        return str(self._admin(self.runtime.admin.export_votes, token, profile))

    def dashboard(self) -> DashboardView:
        return self._dashboard.get()

    def _dashboard_now(self) -> DashboardView:
        runtime = self.runtime
        # Every meta.json is read once per refresh.
        return dashboard_view(runtime.status(), runtime.versions.list(), runtime.versions.current(), runtime.votes)

    def status_json(self) -> dict:
        return to_dict(self.runtime.status())

    def status_markdown(self) -> str:
        return self._status_line.get()


def comparison_note(comparison: Comparison) -> str:
    a, b = comparison.versions
    source = f"both from the serving version {a}, sampled twice" if a == b else \
        f"A from the serving version {a}, B from the candidate {b} (not serving yet)"
    if comparison.failed:
        return f"Replies {source}. Generation failed: {comparison.failed}"
    return f"Replies {source}." + ("" if comparison.done else " Writing…")


@dataclass
class DashboardPanel:
    """The dashboard tab's components; `show` maps a DashboardView onto them."""

    summary: gr.Markdown
    progress: gr.Slider
    step_metrics: gr.LinePlot
    reward_quantiles: gr.LinePlot
    pair_ratio_quantiles: gr.LinePlot
    version_metrics: gr.BarPlot
    learning_curve: gr.BarPlot
    votes_per_hour: gr.BarPlot
    versions: gr.Dataframe
    version_choice: gr.Dropdown

    def outputs(self) -> list:
        return [self.summary, self.progress, self.step_metrics, self.reward_quantiles, self.pair_ratio_quantiles,
                self.version_metrics,
                self.learning_curve, self.votes_per_hour, self.versions, self.version_choice]

    def show(self, view: DashboardView) -> dict:
        return {self.summary: view.summary,
                self.progress: gr.update(value=view.step, maximum=max(view.total_steps, 1)),
                self.step_metrics: view.step_metrics, self.reward_quantiles: view.reward_quantiles,
                self.pair_ratio_quantiles: view.pair_ratio_quantiles,
                self.version_metrics: view.version_metrics, self.learning_curve: view.learning_curve,
                self.votes_per_hour: view.votes_per_hour,
                self.versions: view.versions, self.version_choice: gr.update(choices=view.version_names)}


def build_app(runtime: Runtime) -> gr.Blocks:
    persona = runtime.settings.persona
    handle = Handlers(runtime)
    with gr.Blocks(title=f"{persona.name}, learning live") as demo:
        gr.Markdown(f"# {persona.name}, learning live\nAsk for a review, then vote 👍 on the replies that sound "
                    "like the reviewer everybody dreads and 👎 on the ones that don't. Every few votes he "
                    "trains on them, in the background, and the new version serves the next reply.")
        status = gr.Markdown(handle.status_markdown())
        session = gr.State(None)
        with gr.Tab("Chat"):
            chatbot = gr.Chatbot(value=runtime.chat.new_session().chatbot(), label=persona.name, height=480,
                                 feedback_options=("Like", "Dislike"))
            with gr.Row():
                message = gr.Textbox(placeholder="Paste a title and abstract…", show_label=False, scale=8)
                send = gr.Button("Send", variant="primary", scale=1)
                stop = gr.Button("Stop", scale=1)
            gr.Examples(examples=persona.examples, inputs=message)
            vote_note = gr.Markdown()
        with gr.Tab("Compare"):
            gr.Markdown(f"Ask for two replies to the same message and pick the one that sounds more like "
                        f"{persona.name}. Picks train the bot too: as pairs (DPO, IPO, AOT) or as one liked and one "
                        "disliked reply.")
            with gr.Row():
                compare_message = gr.Textbox(placeholder="Paste a title and abstract…", show_label=False, scale=8)
                compare_send = gr.Button("Two replies", variant="primary", scale=1)
            compare_source = gr.Markdown()
            with gr.Row():
                reply_a = gr.Textbox(label="Reply A", lines=10, interactive=False)
                reply_b = gr.Textbox(label="Reply B", lines=10, interactive=False)
            with gr.Row():
                pick_a = gr.Button("A is better")
                pick_b = gr.Button("B is better")
                pick_neither = gr.Button("Both bad")
            pick_note = gr.Markdown()
            comparison = gr.State(None)
        with gr.Tab("Dashboard"):
            summary = gr.Markdown()
            progress = gr.Slider(label="Round progress (steps)", minimum=0, maximum=1, step=1, interactive=False)
            with gr.Row():
                steps_plot = gr.LinePlot(x="step", y="value", color="series", title="Latest round: loss and rewards")
                quantile_plot = gr.LinePlot(x="quantile", y="reward", color="series",
                                            title="Held-out implicit rewards by quantile: serving vs candidate")
                pair_plot = gr.LinePlot(x="quantile", y="log ratio", color="series",
                                        title="Held-out pairs: chosen-to-rejected log-likelihood ratio by quantile, "
                                              "against the base")
            with gr.Row():
                curve_plot = gr.BarPlot(x="bar", y="value", color="metric", y_lim=[0, 1],
                                        title="Learning curve: liked share of votes on each version's replies, "
                                              "and its replies' check score")
                version_plot = gr.BarPlot(x="bar", y="value", color="metric", title="AUC and KL per version")
                votes_plot = gr.BarPlot(x="hour", y="votes", color="label", title="Votes per hour (UTC)")
            versions_table = gr.Dataframe(label="Versions", interactive=False)
        with gr.Accordion("Admin", open=False):
            if os.environ.get("SPACE_ID"):  # OAuth sign-in exists only on a Space
                gr.LoginButton()
            token = gr.Textbox(label="Admin token", type="password")
            with gr.Row():
                train = gr.Button("Train now")
                pause = gr.Button("Pause trainer")
                resume = gr.Button("Resume trainer")
            with gr.Row():
                version_choice = gr.Dropdown(label="Version", choices=[i.name for i in runtime.versions.list()])
                rollback = gr.Button("Serve this version")
                export = gr.Button("Export votes")
            admin_note = gr.Markdown()
            export_file = gr.File(label="Votes (KTO rows, JSONL)", interactive=False)
        details = gr.JSON(visible=False)

        chat_event = gr.on([message.submit, send.click], handle.respond, [message, session],
                           [chatbot, session, message], api_name="chat",
                           concurrency_limit=runtime.settings.chat.concurrency, concurrency_id="decode")
        stop.click(handle.stop, None, None, cancels=[chat_event], api_name="stop", queue=False)
        chatbot.like(handle.on_like, [session], vote_note, api_visibility="private")
        # The same vote, addressable by row index for programmatic clients (gradio_client, tests).
        hidden_index = gr.Textbox(visible=False)  # text: a bad index gets our message, not the field's
        hidden_liked = gr.Textbox(visible=False)
        gr.Button(visible=False).click(handle.vote, [session, hidden_index, hidden_liked], vote_note,
                                       api_name="vote")
        gr.on([compare_message.submit, compare_send.click], handle.compare, compare_message,
              [reply_a, reply_b, compare_source, comparison], api_name="compare",
              # One limit for chat and comparisons together (CHAT_CONCURRENCY), not one each.
              concurrency_limit=runtime.settings.chat.concurrency, concurrency_id="decode")
        pick_a.click(handle.pick_a, comparison, pick_note, api_visibility="private")
        pick_b.click(handle.pick_b, comparison, pick_note, api_visibility="private")
        pick_neither.click(handle.pick_neither, comparison, pick_note, api_visibility="private")
        # The same pick by name (a / b / neither) for programmatic clients.
        hidden_choice = gr.Textbox(visible=False)
        gr.Button(visible=False).click(handle.pick, [comparison, hidden_choice], pick_note, api_name="pick")
        train.click(handle.train_now, token, admin_note, api_name="train_now")
        pause.click(handle.pause, token, admin_note, api_name="pause")
        resume.click(handle.resume, token, admin_note, api_name="resume")
        rollback.click(handle.rollback, [token, version_choice], admin_note, api_name="rollback")
        export.click(handle.export_votes, token, export_file, api_name="export_votes")
        gr.Button(visible=False).click(handle.status_json, None, details, api_name="status")
        panel = DashboardPanel(summary, progress, steps_plot, quantile_plot, pair_plot, version_plot, curve_plot,
                               votes_plot, versions_table, version_choice)

        def refresh_dashboard() -> dict:
            return panel.show(handle.dashboard())

        gr.Timer(STATUS_REFRESH_SECONDS).tick(handle.status_markdown, None, status, api_visibility="private",
                                              queue=False)
        gr.Timer(DASHBOARD_REFRESH_SECONDS).tick(refresh_dashboard, None, panel.outputs(), api_visibility="private",
                                                 queue=False)
        demo.load(refresh_dashboard, None, panel.outputs(), api_visibility="private", queue=False)
    return demo


def launch_options(runtime: Runtime) -> dict:
    """Blocks.launch arguments the app needs wherever it runs: the export folder (under DATA_DIR, which may be
    outside the working folder and the temp folder, where Gradio serves files from by default)."""
    return {"allowed_paths": [str(runtime.admin.exports)]}


def stop_serving(signum, frame) -> None:
    """SIGTERM (what a Space restart sends) stops the server the way Ctrl-C does, so `main` can flush."""
    raise KeyboardInterrupt


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    runtime = Runtime.start(AppSettings.from_env())
    signal.signal(signal.SIGTERM, stop_serving)
    try:
        build_app(runtime).queue(default_concurrency_limit=1).launch(**launch_options(runtime))
    finally:
        runtime.close()  # pushes what the Hub does not have yet


if __name__ == "__main__":
    main()
