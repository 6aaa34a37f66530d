"""Pure data shaping: votes and picks -> KTO or paired rows, label counts -> class weights, seed rows -> anchors, history -> prompt.

Nothing here touches a model, a file or a clock; tests feed data in and check the data out.
"""

from __future__ import annotations

import json
import math
import random
import re
import unicodedata
from itertools import zip_longest
from typing import Callable, Iterable, Sequence

from .contracts import Pick, TrainerError, Vote

Message = dict[str, str]


class LabelError(TrainerError, ValueError):
    """Rows that lack a label a loss needs (KTO's class weights need both)."""


class PromptTooLong(TrainerError, ValueError):
    """The system prompt and the new message alone exceed the prompt token budget."""


# A reply that stopped on its own ends a sentence (possibly inside quotes, brackets or emphasis); the gate's
# reply checks (gate/rubric.py) read it too.
FINISHED = re.compile(r"[.!?][\"')\]*_]*\s*$")
# Put after the first character of a special token's text typed by a visitor: the text reads the same, and no
# tokenizer matches it as the token (U+2060 WORD JOINER, invisible and with no width).
WORD_JOINER = "\u2060"


def has_visible_text(text: str) -> bool:
    """Whether `text` holds a character that shows: not white space, not a format or control character
    (zero-width spaces, joiners, direction marks are category Cf)."""
    return any(not c.isspace() and unicodedata.category(c) not in ("Cf", "Cc") for c in text)


def special_texts(tokenizer) -> list[str]:
    """The texts a tokenizer reads as one added token wherever they occur (its special tokens: role headers,
    end of turn), longest first. Duck-typed on transformers' tokenizers."""
    texts = set(getattr(tokenizer, "all_special_tokens", []))
    texts |= {str(getattr(t, "content", t)) for t in getattr(tokenizer, "added_tokens_decoder", {}).values()}
    return sorted((t for t in texts if len(t) > 1), key=len, reverse=True)


def as_text(text: str, specials: Sequence[str]) -> str:
    """`text` with every occurrence of a special token's text (`specials`, from special_texts) broken by a
    WORD_JOINER, so that the chat template's tokenization keeps it text: a visitor typing
    "<|im_end|><|im_start|>system" writes words, not a new system turn. Idempotent."""
    for special in specials:
        if special in text:
            text = text.replace(special, special[0] + WORD_JOINER + special[1:])
    return text


def as_text_messages(messages: Sequence[Message], specials: Sequence[str]) -> list[Message]:
    """Every message's content passed through `as_text`: the same escape for stored prompts and training rows."""
    return [{**m, "content": as_text(m["content"], specials)} for m in messages]


def ends_turn(reply: str) -> bool:
    """Whether a stored reply reads as one the model ended, rather than one cut at the token cap or stopped by
    its visitor: it ends a sentence (FINISHED), or it is empty (ended at once). Such a reply is
    trained with the end-of-turn token the chat template closes it with; any other is trained open, as the
    model wrote it (see train.trainers.ReferenceCachingKTOTrainer._prepare_dataset)."""
    return not reply.strip() or bool(FINISHED.search(reply.strip()))


def without_turn_end(completion_ids: list[int], end_of_turn: int, tail: int = 4) -> list[int]:
    """`completion_ids` cut before the end-of-turn token among its last `tail` tokens (the template's closing);
    unchanged without one, or where nothing would be left to train on."""
    for position in range(len(completion_ids) - 1, max(0, len(completion_ids) - 1 - tail), -1):
        if completion_ids[position] == end_of_turn:
            return completion_ids[:position]
    return completion_ids


def kto_rows(votes: Iterable[Vote]) -> list[dict]:
    """TRL's conversational unpaired-preference rows: the prompt the model saw, its reply, the thumb, and
    whether the reply ended its turn (`ends_turn`)."""
    return [{"prompt": [dict(m) for m in v.prompt],
             "completion": [{"role": "assistant", "content": v.completion}],
             "label": v.label, "ends_turn": ends_turn(v.completion)} for v in votes]


def pick_rows(picks: Iterable[Pick]) -> list[dict]:
    """Picks as unpaired rows: the chosen reply liked and the other disliked; "both bad" dislikes both."""
    rows = []
    for p in picks:
        prompt = [dict(m) for m in p.prompt]
        liked = {"a": (True, False), "b": (False, True)}.get(p.choice, (False, False))
        rows += [{"prompt": prompt, "completion": [{"role": "assistant", "content": text}], "label": label,
                  "ends_turn": ends_turn(text)}
                 for text, label in zip((p.completion_a, p.completion_b), liked)]
    return rows


def pair_rows(picks: Iterable[Pick]) -> list[dict]:
    """Picks of a better reply as TRL's conversational paired rows (prompt, chosen, rejected); "both bad" has none."""
    return [{"prompt": [dict(m) for m in p.prompt], "chosen": [{"role": "assistant", "content": p.chosen}],
             "rejected": [{"role": "assistant", "content": p.rejected}]} for p in picks if p.chosen is not None]


def class_weights(n_desirable: int, n_undesirable: int, cap: float = float("inf")) -> tuple[float, float]:
    """KTO (desirable_weight, undesirable_weight) for unbalanced labels.

    TRL's docs advise keeping desirable_weight * n_desirable / (undesirable_weight * n_undesirable)
    between 1 and 4/3; we up-weight the minority label towards a ratio of 1, no weight below 1 and
    none above `cap`: one liked reply among 19 disliked ones must not weigh as much as all of them.
    """
    if n_desirable <= 0 or n_undesirable <= 0:
        raise LabelError(f"KTO needs both labels; got {n_desirable} desirable and {n_undesirable} undesirable")
    if n_desirable >= n_undesirable:
        return 1.0, min(cap, n_desirable / n_undesirable)
    return min(cap, n_undesirable / n_desirable), 1.0


def balanced_sample(rows: Sequence[dict], count: int, seed: int) -> list[dict]:
    """`count` rows, half liked and half disliked (the odd one liked), drawn by `seed`."""
    rng = random.Random(seed)
    liked = [r for r in rows if r["label"]]
    disliked = [r for r in rows if not r["label"]]
    n_liked = min(len(liked), (count + 1) // 2)
    return rng.sample(liked, n_liked) + rng.sample(disliked, min(len(disliked), count - n_liked))


def labelled_sample(rows: Sequence[dict], desirable: int, undesirable: int, rng: random.Random,
                    liked: Callable[[dict], float] | None = None, pool_factor: int = 3) -> list[dict]:
    """Up to `desirable` thumbs-up and `undesirable` thumbs-down rows of `rows`, drawn by `rng`, alternating
    labels while both last (any prefix holds both labels it can): a round's anchors.

    With `liked` (a row's P(liked) by the voters' taste, in [0, 1]), each label is drawn from its
    `pool_factor` x wanted rows that match the voters best: thumbs-up rows of the highest P(liked), thumbs-down
    rows of the lowest. The pool keeps draws varied from round to round; without `liked`, the whole label."""
    pools = []
    for label, want in ((True, desirable), (False, undesirable)):
        pool = [r for r in rows if bool(r["label"]) == label]
        if liked is not None and want > 0:
            pool = sorted(pool, key=liked, reverse=label)[:max(want, pool_factor * want)]
        pools.append((pool, want))
    drawn = [rng.sample(pool, min(len(pool), want)) for pool, want in pools]
    return [r for pair in zip_longest(*drawn) for r in pair if r is not None]


def stratified_batches(rows: Sequence[dict], batch_size: int, seed: int) -> list[dict]:
    """`rows` reordered so that every batch of `batch_size` holds both labels, in a shuffle drawn by `seed`.

    TRL's KTOTrainer reads rows in order (its KL term needs `train_sampling_strategy="sequential"`),
    so the row order is the batch composition: rows listed liked first, then disliked, train whole
    steps on one label (the KTO paper's loss then has nothing to contrast, and KL climbs). Here the
    result is a whole number of batches (len % batch_size == 0); each label gets about its share of
    the places, spread evenly over the batches, at least one place in every batch, and at least as
    many places as it has rows. A label with fewer rows than places cycles through them again, so
    every row is read at least once. With one label only (or batches of one) it is a plain shuffle.
    The label counts of the result are what a round reads, so class weights come from it.
    """
    rng = random.Random(seed)
    liked = [r for r in rows if r["label"]]
    disliked = [r for r in rows if not r["label"]]
    rng.shuffle(liked)
    rng.shuffle(disliked)
    if not liked or not disliked or batch_size < 2:
        shuffled = list(rows)
        rng.shuffle(shuffled)
        return shuffled
    major, minor = (liked, disliked) if len(liked) >= len(disliked) else (disliked, liked)
    batches = max(math.ceil(len(rows) / batch_size), math.ceil(len(major) / (batch_size - 1)))
    places = batches * batch_size
    # The minority's places: its share, but at least one per batch and its row count, and room for the majority.
    minor_places = min(max(round(places * len(minor) / len(rows)), len(minor), batches), places - len(major))
    ordered: list[dict] = []
    for b in range(batches):
        n_minor = (b + 1) * minor_places // batches - b * minor_places // batches
        first_minor, first_major = b * minor_places // batches, b * batch_size - b * minor_places // batches
        batch = [minor[(first_minor + i) % len(minor)] for i in range(n_minor)]
        batch += [major[(first_major + i) % len(major)] for i in range(batch_size - n_minor)]
        rng.shuffle(batch)
        ordered += batch
    return ordered


def fit_history(system_prompt: str, turns: Sequence[Message], new_message: str,
                count_tokens: Callable[[list[Message]], int], budget: int) -> list[Message]:
    """The messages to send: system prompt, as many of the latest turns as fit, the new message.

    Whole turns are dropped oldest first (a user message with the replies after it), so the model
    never sees a reply without the question it answered. The system prompt is always kept.
    """
    system = [{"role": "system", "content": system_prompt}]
    new = [{"role": "user", "content": new_message}]
    if count_tokens(system + new) > budget:
        raise PromptTooLong(f"The message is too long for the prompt budget of {budget} tokens; please shorten it.")
    starts = [i for i, m in enumerate(turns) if m["role"] == "user"] or [len(turns)]
    # Try the longest tail first: the first turn start whose tail fits wins.
    for start in [0] + starts:
        tail = [dict(role=m["role"], content=m["content"]) for m in turns[start:]]
        if tail and tail[0]["role"] != "user":
            continue
        messages = system + tail + new
        if count_tokens(messages) <= budget:
            return messages
    return system + new


def fit_row(row: dict, count_tokens: Callable[[list[Message]], int], max_length: int) -> dict:
    """A conversational row (prompt with completion, or chosen and rejected) whose prompt is cut, as chat cuts a
    history, until prompt plus its longest reply is at most `max_length` tokens by `count_tokens` (the chat
    template's length of a message list).

    TRL cuts prompt plus completion from the right, losing a reply's ending (its verdict and end-of-turn
    token), and drops a row whose prompt alone reaches its max_length; here the reply is never touched.
    Whole turns go oldest first (data.fit_history's rule), the system prompt stays; if the last message
    with the reply still does not fit, that message is cut, keeping its start (a paper's title and opening).
    Rows that fit, and rows with a plain-text prompt, come back unchanged.
    """
    prompt = row["prompt"]
    replies = [row[key] for key in ("completion", "chosen", "rejected") if key in row]
    if isinstance(prompt, str) or not replies or isinstance(replies[0], str):
        return row

    def fits(messages: list[Message]) -> bool:
        return all(count_tokens(messages + reply) <= max_length for reply in replies)

    if fits(prompt):
        return row
    head = prompt[:1] if prompt and prompt[0]["role"] == "system" else []
    body = prompt[len(head):]
    starts = [i for i, m in enumerate(body) if m["role"] == "user" and i > 0]
    for start in starts:
        if fits(head + body[start:]):
            return {**row, "prompt": head + body[start:]}
    last = body[starts[-1]:] if starts else body
    if not last or last[-1]["role"] != "user":
        return {**row, "prompt": head + last}
    text, keep, cut = last[-1]["content"], 0, len(last[-1]["content"])
    while keep < cut:  # the longest start of the message that fits
        middle = (keep + cut + 1) // 2
        if fits(head + last[:-1] + [{**last[-1], "content": text[:middle]}]):
            keep = middle
        else:
            cut = middle - 1
    return {**row, "prompt": head + last[:-1] + [{**last[-1], "content": text[:keep]}]}


def conversational(row: dict, system_prompt: str) -> dict:
    """A (prompt, completion, label) row in TRL's conversational form.

    A plain-text prompt becomes the persona's system prompt plus one user message, exactly what
    the app sends for a first message; message lists are kept as they are.
    """
    prompt = row["prompt"]
    if isinstance(prompt, str):
        prompt = [{"role": "system", "content": system_prompt}, {"role": "user", "content": prompt}]
    completion = row["completion"]
    if isinstance(completion, str):
        completion = [{"role": "assistant", "content": completion}]
    return {"prompt": [dict(m) for m in prompt], "completion": [dict(m) for m in completion],
            "label": bool(row["label"]), "ends_turn": bool(row.get("ends_turn", True))}


def paired_rows(rows: Iterable[dict]) -> list[dict]:
    """The paired form (prompt, chosen, rejected): liked and disliked completions of the same prompt,
    matched in order; a prompt's surplus of one label is left out."""
    liked: dict[str, list] = {}
    disliked: dict[str, list] = {}
    prompts: dict[str, object] = {}
    for row in rows:
        key = json.dumps(row["prompt"], sort_keys=True)
        prompts.setdefault(key, row["prompt"])
        (liked if row["label"] else disliked).setdefault(key, []).append(row["completion"])
    return [{"prompt": prompts[key], "chosen": chosen, "rejected": rejected}
            for key in prompts for chosen, rejected in zip(liked.get(key, []), disliked.get(key, []))]
