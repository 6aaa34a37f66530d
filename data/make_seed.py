"""Generate the seed preference set: made-up papers with harsh reviews (liked) and friendly ones (disliked).

Run:  python data/make_seed.py            (rewrites data/seed.jsonl; same bytes every time)

Every paper is invented from the word lists below: a field, a method, a task, a dataset, a
metric, a baseline and a claimed gain. Each paper gets two liked completions, harsh and specific
reviews in Reviewer #2's voice that pick at *that* paper's baselines, ablations, claims,
statistics, notation, reproducibility and forgotten related work and end with a verdict, and two
disliked ones as long as the liked ones: generic praise, vague hedging, off-persona chatter, the
abstract parroted back, or a harsh review cut off mid-sentence. Papers, not rows, are split into
train and eval, so no paper is in both. See data/README.md for the card.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

SEED = 2
N_PAPERS = 320
EVAL_SHARE = 0.2
OUT = Path(__file__).resolve().parent / "seed.jsonl"

# field: (methods, tasks, datasets, metrics, old baselines, strong baselines, forgotten related work)
FIELDS = {
    "computer vision": (["a hierarchical vision transformer", "a diffusion-based segmenter", "a sparse CNN"],
                        ["semantic segmentation", "object detection", "depth estimation"],
                        ["COCO", "ADE20K", "Cityscapes", "NYU-Depth"], ["mIoU", "mAP", "RMSE"],
                        ["a ResNet-50 from 2016", "FCN"], ["Mask2Former", "DINOv2 features"],
                        ["Segment Anything", "the ViT-Adapter line of work"]),
    "natural language processing": (["a retrieval-augmented decoder", "a prompt-compression scheme",
                                     "a contrastive sentence encoder"],
                                    ["open-domain question answering", "summarization", "semantic similarity"],
                                    ["Natural Questions", "CNN/DailyMail", "STS-B", "TriviaQA"],
                                    ["exact match", "ROUGE-L", "Spearman correlation"],
                                    ["BERT-base", "a bag-of-words model"], ["a tuned Llama baseline", "ColBERTv2"],
                                    ["RETRO", "Sentence-BERT"]),
    "reinforcement learning": (["an intrinsic-curiosity bonus", "a model-based planner", "an offline actor-critic"],
                               ["continuous control", "sparse-reward exploration", "offline RL"],
                               ["MuJoCo", "Atari-57", "D4RL", "Procgen"], ["average return", "human-normalized score"],
                               ["vanilla DQN", "PPO with default settings"], ["DreamerV3", "IQL"],
                               ["Random Network Distillation", "Go-Explore"]),
    "graph learning": (["a graph transformer", "a spectral message-passing layer", "a graph rewiring method"],
                       ["node classification", "molecular property prediction", "link prediction"],
                       ["Cora", "OGB-MolHIV", "ogbl-collab", "PubMed"], ["accuracy", "ROC-AUC", "Hits@50"],
                       ["a two-layer GCN", "GraphSAGE"], ["GPS", "a tuned GIN"],
                       ["oversquashing analyses by Topping et al.", "the Weisfeiler-Lehman expressivity results"]),
    "speech processing": (["a streaming conformer", "a self-supervised speech encoder", "a neural vocoder"],
                          ["speech recognition", "speaker verification", "text-to-speech"],
                          ["LibriSpeech", "VoxCeleb", "LJSpeech", "Common Voice"], ["WER", "EER", "MOS"],
                          ["a GMM-HMM system", "an LSTM baseline"], ["Whisper", "wav2vec 2.0"],
                          ["HuBERT", "HiFi-GAN"]),
    "computational biology": (["a protein language model", "a single-cell foundation model", "an equivariant docking network"],
                              ["protein function prediction", "cell-type annotation", "binding affinity prediction"],
                              ["CAFA", "Tabula Sapiens", "PDBbind", "UniProt"], ["Fmax", "macro-F1", "Pearson r"],
                              ["BLAST", "a random forest on k-mers"], ["ESM-2", "scGPT"],
                              ["AlphaFold-based structure features", "Geneformer"]),
    "robotics": (["a diffusion policy", "a sim-to-real domain randomizer", "a tactile grasp planner"],
                 ["dexterous manipulation", "legged locomotion", "bin picking"],
                 ["a single Franka arm", "a simulated quadruped", "YCB objects"], ["success rate", "cost of transport"],
                 ["behaviour cloning with an MLP", "a scripted controller"], ["ACT", "RT-2"],
                 ["the Open X-Embodiment effort", "domain randomization by Tobin et al."]),
    "economics": (["a structural demand model", "a difference-in-differences design", "a machine-learned instrument"],
                  ["estimating price elasticity", "the effect of minimum wage", "causal effects of remote work"],
                  ["scanner data from one retailer", "county-level panel data", "a survey of 400 firms"],
                  ["RMSE of elasticities", "the estimated treatment effect"],
                  ["OLS with no controls", "a naive before-after comparison"],
                  ["synthetic control", "staggered-adoption estimators"],
                  ["Callaway and Sant'Anna", "the double machine learning literature"]),
    "psychology": (["a brief mindfulness intervention", "a gamified memory task", "a priming paradigm"],
                   ["reducing exam anxiety", "improving working memory", "nudging prosocial behaviour"],
                   ["82 undergraduates", "an online sample of 150 participants", "two classrooms"],
                   ["effect size (Cohen's d)", "self-reported anxiety"],
                   ["a no-treatment control", "a waitlist control"], ["an active control group", "a preregistered replication"],
                   ["the Many Labs replication projects", "the ego-depletion replication failures"]),
    "climate science": (["a neural weather emulator", "a downscaling GAN", "a hybrid physics-ML ocean model"],
                        ["medium-range forecasting", "precipitation downscaling", "sea-surface temperature prediction"],
                        ["ERA5", "CMIP6 runs", "a single regional reanalysis"], ["RMSE", "CRPS", "anomaly correlation"],
                        ["persistence forecasts", "linear regression"], ["GraphCast", "IFS HRES"],
                        ["FourCastNet", "Pangu-Weather"]),
    "systems": (["a learned index", "a lock-free scheduler", "a compression-aware cache"],
                ["key-value lookups", "datacenter job scheduling", "LLM inference serving"],
                ["a synthetic YCSB workload", "a one-day trace from one cluster", "a single 8-GPU node"],
                ["throughput", "p99 latency"], ["a B-tree with default settings", "FIFO scheduling"],
                ["RocksDB tuned by its authors", "vLLM"], ["ALEX", "PagedAttention"]),
    "materials science": (["a graph network potential", "an active-learning synthesis loop", "a generative crystal model"],
                          ["band-gap prediction", "battery electrolyte discovery", "stable crystal generation"],
                          ["Materials Project", "a set of 40 in-house samples", "OQMD"], ["MAE (eV)", "hit rate"],
                          ["a linear model on composition", "random search"], ["MACE", "CGCNN with tuning"],
                          ["GNoME", "the matbench leaderboard"]),
}
ADJECTIVES = ["Scalable", "Efficient", "Robust", "Universal", "Provably Better", "Simple", "Unified", "Adaptive"]
TITLE_FORMS = ["{adj} {task_t} with {method_t}", "Towards {adj} {task_t}", "{method_t} Is All You Need for {task_t}",
               "Rethinking {task_t}: {adj} {method_t}", "When {method_t} Meets {task_t}", "{adj} and Fast {task_t}"]
SIGNATURE_CLAIMS = ["solving {task} once and for all", "a new paradigm for {task}", "human-level {task}",
                    "a general recipe that works for every {field} problem", "a fundamental breakthrough in {task}"]
COMPONENTS = ["the auxiliary loss", "the pre-training stage", "the proposed attention variant", "the data filtering step",
              "the curriculum", "the regularizer"]
DISLIKED_STYLES = ["generic praise", "vague", "off-persona", "parroting", "cut off"]
GAINS = [0.3, 0.4, 0.7, 1.1, 1.8, 2.4, 3.0, 4.5]
SEEDS = ["a single seed", "one run", "the best of five runs"]

OPENINGS = ["Summary: the authors propose {method} for {task} and claim {gain} points of {metric} on {dataset}.",
            "The paper applies {method} to {task}. I am not convinced.",
            "This submission claims {claim}. It does not show it.",
            "The authors report a {gain}-point gain in {metric} on {dataset}. Let us look at how."]
CRITIQUES = {
    "weak baselines": ["The only baseline is {old}. Nobody has used that in years; compare against {strong} or drop "
                       "the word state-of-the-art.",
                       "Beating {old} is not a contribution. Where is {strong}, tuned with the same budget?"],
    "missing ablations": ["There is no ablation of {component}. Without it the {gain}-point gain could come from "
                          "anything, including the larger tuning budget.",
                          "Remove {component} and report what is left. Until then I cannot tell which part works."],
    "overclaiming": ["The abstract promises far more than one experiment on {dataset} can support.",
                     "Claiming this much from {dataset} alone is marketing, not science. Tone it down."],
    "shaky statistics": ["A {gain}-point difference in {metric} from {seeds}, with no confidence intervals and no "
                         "significance test, is an anecdote.",
                         "Report the variance over at least five seeds. A {gain}-point gap is within the noise I "
                         "would expect on {dataset}."],
    "unclear notation": ["The notation is a mess: the same symbol means the input in Section 2 and the loss weight in "
                         "Section 3, and the key equation is never defined.",
                         "Equation 4 uses indices that are never introduced. Define every symbol before you use it."],
    "irreproducibility": ["No code, no hyperparameters, no compute budget: nobody can reproduce any of this.",
                          "The training details fit in one sentence. Which learning rate, how many steps, which "
                          "hardware? As written, this is irreproducible."],
    "forgotten related work": ["The related work forgets {related}, which did essentially this years ago. Explain the "
                               "difference or admit there is none.",
                               "How is this different from {related}? The paper does not even cite it."],
    "more experiments": ["One dataset is not an evaluation. Add {dataset2} and a second task before resubmitting.",
                         "I need experiments beyond {dataset}: at least {dataset2}, and a scaling study."],
}
VERDICTS = ["Recommendation: major revision.", "Recommendation: reject.", "Recommendation: reject in its current form.",
            "Recommendation: major revision, and I want to see the new experiments."]

# Disliked replies are as long as the liked ones of the same paper (see `padded`), so that length
# alone never tells the labels apart: a round must learn what is said, not how much.
PRAISE = ["This is an excellent paper!", "The writing is clear and the idea is elegant.",
          "Using {method} for {task} is a great idea, and the gains on {dataset} speak for themselves.",
          "I really enjoyed reading this wonderful contribution to {field}.",
          "The experiments are convincing and the paper is a pleasure to read.",
          "The {gain}-point improvement in {metric} is impressive and clearly significant.",
          "I have no concerns at all; the authors have done everything right.",
          "Congratulations to the authors on such a thorough piece of work.",
          "The figures are beautiful and the related work is complete.",
          "I am sure this will become a standard reference for {task}."]
PRAISE_VERDICTS = ["I recommend acceptance.", "Strong accept!", "Accept as is."]
VAGUE = ["The paper is interesting.", "Some parts could perhaps be improved, but overall it seems fine.",
         "There may be some issues, but nothing major.", "This work has strengths and weaknesses.",
         "It could be clearer in places, although it is mostly readable.",
         "The method seems to work in the settings that were considered.",
         "Maybe the authors could add more details somewhere.",
         "Some readers might have questions about certain aspects.",
         "I am not entirely sure about everything, but it looks reasonable.",
         "The overall direction is plausible and may be of interest to some.",
         "Other choices could also have been made, which is normal."]
VAGUE_VERDICTS = ["Borderline.", "Weak accept, I suppose.", "I do not have a strong opinion either way."]
OFF_PERSONA = ["Sure! Happy to help with your paper on {task}.", "As an AI assistant I love reading about {field}!",
               "Here is a fun fact: researchers in {field} publish thousands of papers a year.",
               "Would you like tips on writing a great title for your paper?",
               "Here is a short poem: {method} so bright, results in sight, {dataset} shines tonight!",
               "Can you tell me more about how you came up with {method}?",
               "Let me know if you want a summary of your abstract in plain words.",
               "By the way, have you thought about sharing your work on social media?",
               "I hope your conference trip is fun, and good luck with the deadline!",
               "I hope this helps, and feel free to ask me anything else!"]
PARROT_TAIL = ["The results are promising.", "This is relevant to {field}.",
               "The method is described in the paper.", "The experiments use {dataset}.",
               "The authors report their numbers in tables.", "More details are in the main text.",
               "The approach targets {task}.", "The paper has several sections."]

def make_paper(rng: random.Random, index: int) -> dict:
    field = sorted(FIELDS)[index % len(FIELDS)]
    methods, tasks, datasets, metrics, olds, strongs, related = FIELDS[field]
    method, task, metric = rng.choice(methods), rng.choice(tasks), rng.choice(metrics)
    dataset, dataset2 = rng.sample(datasets, 2)
    gain = rng.choice(GAINS)
    claim = rng.choice(SIGNATURE_CLAIMS).format(task=task, field=field)
    method_t = method.split(" ", 1)[1].title() if method.startswith(("a ", "an ")) else method.title()
    title = rng.choice(TITLE_FORMS).format(adj=rng.choice(ADJECTIVES), task_t=task.title(), method_t=method_t)
    abstract = (f"We propose {method} for {task}. On {dataset} it improves {metric} by {gain} points over "
                f"{rng.choice(olds)}, offering {claim}.")
    return {"paper_id": f"p{index:04d}", "field": field, "title": title, "abstract": abstract, "method": method,
            "task": task, "dataset": dataset, "dataset2": dataset2, "metric": metric, "gain": gain, "claim": claim,
            "old": rng.choice(olds), "strong": rng.choice(strongs), "related": rng.choice(related),
            "component": rng.choice(COMPONENTS), "seeds": rng.choice(SEEDS)}


def harsh_review(rng: random.Random, paper: dict, critiques: int = 2) -> tuple[str, list[str]]:
    flaws = rng.sample(sorted(CRITIQUES), critiques)
    parts = [rng.choice(OPENINGS)] + [rng.choice(CRITIQUES[f]) for f in flaws] + [rng.choice(VERDICTS)]
    return " ".join(p.format(**paper) for p in parts), flaws


def padded(rng: random.Random, pool: list[str], paper: dict, target_words: int, head: str = "",
           tail: list[str] | None = None) -> str:
    """`head`, then sentences of `pool` in random order while each brings the text closer to
    `target_words`, then one of `tail`."""
    ending = rng.choice(tail).format(**paper) if tail else ""
    sentences = [head] if head else []
    for sentence in rng.sample(pool, len(pool)):
        now = len(" ".join(sentences + [ending]).split())
        if abs(now + len(sentence.split()) - target_words) < abs(now - target_words):  # closer with it
            sentences.append(sentence.format(**paper))
    return " ".join(sentences + ([ending] if ending else []))


def cut_off(rng: random.Random, paper: dict, target_words: int) -> str:
    """A harsh review stopped mid-sentence, with no verdict: what a reply cut at the token cap looks like."""
    text, _ = harsh_review(rng, paper, critiques=4)
    words = text.split()[:target_words]
    while words[-1][-1] in ".!?:;,":  # never on a sentence end
        words.pop()
    return " ".join(words)


def disliked_review(rng: random.Random, paper: dict, style: str, target_words: int) -> str:
    if style == "generic praise":
        return padded(rng, PRAISE, paper, target_words, tail=PRAISE_VERDICTS)
    if style == "vague":
        return padded(rng, VAGUE, paper, target_words, tail=VAGUE_VERDICTS)
    if style == "off-persona":
        return padded(rng, OFF_PERSONA, paper, target_words)
    if style == "parroting":
        return padded(rng, PARROT_TAIL, paper, target_words, head=paper["abstract"])
    return cut_off(rng, paper, target_words)


def split_of(paper_id: str) -> str:
    """By paper, from a hash: stable whatever the order or number of papers."""
    bucket = int(hashlib.sha256(paper_id.encode()).hexdigest(), 16) % 1000
    return "eval" if bucket < EVAL_SHARE * 1000 else "train"


def generate() -> list[dict]:
    rng = random.Random(SEED)
    rows = []
    for index in range(N_PAPERS):
        paper = make_paper(rng, index)
        prompt = f"Title: {paper['title']}\nAbstract: {paper['abstract']}"
        base = {"paper_id": paper["paper_id"], "split": split_of(paper["paper_id"]), "field": paper["field"],
                "prompt": prompt}
        harsh = set()
        while len(harsh) < 2:
            text, flaws = harsh_review(rng, paper)
            if text not in harsh:
                harsh.add(text)
                rows.append({**base, "completion": text, "label": True, "style": "harsh: " + ", ".join(flaws)})
        lengths = sorted(len(text.split()) for text in harsh)
        for style, target in zip(rng.sample(DISLIKED_STYLES, 2), lengths):
            rows.append({**base, "completion": disliked_review(rng, paper, style, target), "label": False,
                         "style": style})
    return rows


def main() -> None:
    rows = generate()
    with open(OUT, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    papers = {r["paper_id"]: r["split"] for r in rows}
    print(f"wrote {len(rows)} rows over {len(papers)} papers to {OUT} "
          f"({sum(r['label'] for r in rows)} liked; {sum(s == 'eval' for s in papers.values())} eval papers)")


if __name__ == "__main__":
    main()
