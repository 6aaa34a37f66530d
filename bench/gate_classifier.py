"""Would the gate's reply classifier have told the versions voters liked less from those they liked more?

Run:  .venv/bin/python bench/gate_classifier.py --run NAME=DATA_DIR [--run NAME=DATA_DIR ...]
                                               [--voters NAME=VERSION:DELTA,...]

Each DATA_DIR is the app's data folder of a learning run (bench/learning.py keeps it under
/tmp/bench-learning-*/state). For every version a round made there, its meta.json holds the gate's
sampled probe replies, the candidate's and the serving version's, paired by (paper, seed). This reads
them with trainer/gate/reply_classifier.py fit on the seed eval split (what the gate fits on before any
gate vote), and prints the mean P(liked) of each side and the paired difference with its 95% interval
(rule.paired_excess, the gate's own normal approximation), beside what the gate decided then and,
with --voters, what the learning bench's fresh voters measured for that version.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import publish, table  # noqa: E402
from trainer.config import DEFAULT_PERSONA_FILE, PersonaConfig  # noqa: E402
from trainer.contracts import VersionMeta  # noqa: E402
from trainer.gate.reply_classifier import ReplyClassifier  # noqa: E402
from trainer.gate.rule import Z95, paired_excess, worse_beyond_noise  # noqa: E402
from trainer.store.files import read_preferences  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", required=True, help="NAME=DATA_DIR of a learning run")
    parser.add_argument("--voters", action="append", default=[],
                        help="NAME=VERSION:WHAT,... what fresh voters measured (e.g. run1=v0004:+26/+48/-1)")
    parser.add_argument("--name", default="gate-classifier")
    args = parser.parse_args()

    persona = PersonaConfig.from_toml(DEFAULT_PERSONA_FILE)
    classifier = ReplyClassifier.fit([(r["completion"], r["label"])
                                      for r in read_preferences(persona.seed_file, split="eval")])
    measured = {}
    for item in args.voters:
        run, _, pairs = item.partition("=")
        for pair in pairs.split(","):
            version, _, what = pair.partition(":")
            measured[(run, version)] = what
    rows = []
    for item in args.run:
        run, _, folder = item.partition("=")
        for meta_file in sorted(Path(folder, "versions").glob("v*/meta.json")):
            meta = VersionMeta.read(meta_file)
            if meta.gate is None or not meta.gate.candidate.probe_replies:
                continue
            ours = [classifier.probability(r.text) for r in meta.gate.candidate.probe_replies]
            theirs = [classifier.probability(r.text) for r in meta.gate.serving.probe_replies]
            mean, lower = paired_excess(ours, theirs)
            upper = 2 * mean - lower
            worse = worse_beyond_noise([-p for p in ours], [-p for p in theirs])  # the gate's rule, tolerance 0
            rows.append((run, meta.name, meta.gate.serving.version, len(ours),
                         "served" if meta.gate.passed else "refused",
                         f"{sum(ours) / len(ours):.2f}", f"{sum(theirs) / len(theirs):.2f}",
                         f"{mean:+.2f} [{lower:+.2f}, {upper:+.2f}]", "refuse" if worse else "pass",
                         measured.get((run, meta.name), "")))
    body = table(("run", "version", "against", "probe pairs", "gate then", "P(liked), candidate", "serving",
                  "difference [95%]", "classifier rule", "fresh voters (numbers / verdict / baselines, pts)"), rows)
    body += (f"\n\nThe classifier: fit on the {classifier.liked} liked and {classifier.disliked} disliked replies of "
             f"the seed eval split; intervals {Z95} standard errors of the paired differences.")
    publish(args.name, "Gate: the held-out reply classifier on the probe replies of learning runs",
            "python bench/gate_classifier.py " + " ".join(f"--run {r}" for r in args.run)
            + "".join(f" --voters {v}" for v in args.voters), body)


if __name__ == "__main__":
    main()
