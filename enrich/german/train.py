"""Train newsflow's German NER pipeline from the open corpora in ``../shared/data/ner`` (``make german-ner``).

Steps: read the corpora, map their labels to PER/LOC/ORG/OTH, hold out every fifth sentence of
GermEval 2014 dev for model selection and reporting (``make german-ner-dev``), write spaCy DocBins,
train ``ner.cfg`` once per seed (three by default), join the models into one majority-vote pipeline
(``ensemble.py``) and, with ``--install``, copy it into ``enrich/models/de_newsflow_ner`` with its
model card. The shipped model (``make german-ner``) uses ``--all-germeval``: the held-out fifth is
trained on too, for the step count the held-out run chose, and the last models are installed.
The GermEval *test* split is never read here: it is for ``newsflow eval ner`` only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from spacy.util import registry

from enrich.german import MODEL_NAME, MODEL_VERSION, gazetteer, lexicon
from enrich.german.corpora import Sentence, read_conll, read_germeval, spans, split_long

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent.parent
CONFIG = HERE / "ner.cfg"
MODEL_CARD = HERE / "MODEL_CARD.md"
INSTALL_DIR = HERE.parent / "models" / "de_newsflow_ner"
HELD_OUT_EVERY = 5

# Which files feed which variant, with their licences (see ../shared/data/README.md).
OPEN_SOURCES: dict[str, tuple[str, ...]] = {
    "mobie": ("mobie-de/train.conll2003", "mobie-de/dev.conll2003"),  # CC BY 4.0
    "europeana": (
        "europeana-de/enp_DE.lft.bio",
        "europeana-de/enp_DE.onb.bio",
        "europeana-de/enp_DE.sbb.bio",
    ),  # CC0
}
WIKIANN_SOURCES: dict[str, tuple[str, ...]] = {"wikiann": ("wikiann-de/train",)}  # licence unclear


class TimeBudgetSpent(Exception):
    """Training ran out of its time budget; the best model so far is on disk."""


def time_budget(minutes: float) -> Callable[[Any, dict[str, Any]], None]:
    """``[training.before_update]``: stop after ``minutes``, so a busy shared machine cannot stretch a run."""
    deadline = time.monotonic() + minutes * 60

    def check(_nlp: Any, _info: dict[str, Any]) -> None:
        if time.monotonic() > deadline:
            raise TimeBudgetSpent(f"stopped after {minutes} minutes")

    return check


registry.callbacks.register("newsflow.time_budget.v1", func=time_budget)


def german_vocab() -> Callable[[Any], Any]:
    """``[initialize.before_init]``: name-list norms and word classes go into the vocab lookups, so the
    shipped model carries them (loading never resolves this callback)."""
    norms, classes = gazetteer.gazetteer(), lexicon.word_classes()

    def fill(nlp: Any) -> Any:
        return lexicon.add_word_classes(gazetteer.add_name_norms(nlp, norms), classes)

    return fill


registry.callbacks.register("newsflow.german_vocab.v1", func=german_vocab)


def split_germeval(sentences: Sequence[Sentence]) -> tuple[list[Sentence], list[Sentence]]:
    """(train, held-out): every fifth sentence is held out, so both cover the same sources."""
    train = [s for i, s in enumerate(sentences) if i % HELD_OUT_EVERY]
    held_out = [s for i, s in enumerate(sentences) if i % HELD_OUT_EVERY == 0]
    return train, held_out


def training_sentences(
    ner_dir: Path,
    with_wikiann: bool,
    germeval_weight: int,
    exclude: Sequence[str] = (),
    all_germeval: bool = False,
) -> tuple[list[Sentence], list[Sentence], dict[str, int]]:
    """All training sentences, the held-out GermEval dev sentences, and a count per source; with
    ``all_germeval``, the held-out sentences are trained on as well."""
    germeval_train, held_out = split_germeval(list(read_germeval(ner_dir / "germeval2014/NER-de-dev.tsv")))
    if all_germeval:
        germeval_train = germeval_train + held_out
    sources = {
        name: files
        for name, files in {**OPEN_SOURCES, **(WIKIANN_SOURCES if with_wikiann else {})}.items()
        if name not in exclude
    }
    train = germeval_train * germeval_weight
    counts = {"germeval-dev-train": len(germeval_train)}
    for name, files in sources.items():
        found = [s for f in files for s in split_long(read_conll(ner_dir / f))]
        counts[name] = len(found)
        train += found
    return train, held_out, counts


def to_docbin(sentences: Iterable[Sentence], vocab: Any) -> Any:
    """A spaCy DocBin of the sentences with their entities set."""
    from spacy.tokens import Doc, DocBin, Span

    docbin = DocBin(attrs=["ORTH", "ENT_IOB", "ENT_TYPE"])
    for sentence in sentences:
        if not sentence.words:
            continue
        doc = Doc(vocab, words=list(sentence.words))
        doc.ents = [Span(doc, s, e, label=label) for s, e, label in sorted(spans(sentence.tags))]
        docbin.add(doc)
    return docbin


def write_corpora(work_dir: Path, train: Sequence[Sentence], dev: Sequence[Sentence]) -> tuple[Path, Path]:
    import spacy

    vocab = spacy.blank("de").vocab
    work_dir.mkdir(parents=True, exist_ok=True)
    train_path, dev_path = work_dir / "train.spacy", work_dir / "dev.spacy"
    to_docbin(train, vocab).to_disk(train_path)
    to_docbin(dev, vocab).to_disk(dev_path)
    return train_path, dev_path


def install(best: Path, counts: dict[str, int]) -> Path:
    """Replace the shipped pipeline with ``best``, with our meta and the model card."""
    meta = {
        "name": MODEL_NAME,
        "version": MODEL_VERSION,
        "license": "CC BY 4.0",
        "sources": [{"name": name, "sentences": n} for name, n in counts.items()],
    }
    if INSTALL_DIR.exists():
        shutil.rmtree(INSTALL_DIR)
    shutil.copytree(best, INSTALL_DIR)
    meta_path = INSTALL_DIR / "meta.json"
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), **meta}, indent=2) + "\n")
    shutil.copy(MODEL_CARD, INSTALL_DIR / "README.md")
    return INSTALL_DIR


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=PROJECT.parent / "shared/data/ner")
    parser.add_argument("--work-dir", type=Path, default=PROJECT / ".newsflow/german-ner")
    parser.add_argument("--with-wikiann", action="store_true", help="add WikiANN (not for shipping)")
    parser.add_argument("--germeval-weight", type=int, default=6, help="repeat GermEval dev-train n times")
    parser.add_argument("--exclude", action="append", default=[], choices=sorted(OPEN_SOURCES))
    parser.add_argument("--max-steps", type=int, default=5000)
    parser.add_argument(
        "--all-germeval",
        action="store_true",
        help="also train on the held-out fifth, for exactly --max-steps (chosen on a held-out run); "
        "ships the last model, and no held-out figure exists for it",
    )
    parser.add_argument(
        "--seeds",
        type=lambda text: [int(seed) for seed in text.split(",")],
        default=[0, 1, 2],
        help="one model per seed; several vote by majority (enrich/german/ensemble.py)",
    )
    parser.add_argument("--max-minutes", type=float, default=25.0, help="training time budget per model")
    parser.add_argument("--install", action="store_true", help="ship the result in enrich/models/")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config override (experiments)"
    )
    args = parser.parse_args(argv)

    from spacy.cli.train import train

    from enrich.ner_eval import evaluate

    variant = "wikiann" if args.with_wikiann else "open"
    work_dir: Path = args.work_dir / variant
    train_set, held_out, counts = training_sentences(
        args.data, args.with_wikiann, args.germeval_weight, args.exclude, args.all_germeval
    )
    train_path, dev_path = write_corpora(work_dir, train_set, held_out)
    sys.stderr.write(f"training sentences per source: {counts}\n")
    overrides = {
        "paths.train": str(train_path),
        "paths.dev": str(dev_path),
        "training.max_steps": args.max_steps,
        "training.before_update.minutes": args.max_minutes,
    }
    if args.all_germeval:  # the "dev" scores are on training data: no early stop, no best pick
        overrides["training.patience"] = 0
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    members = []
    for seed in args.seeds:
        output = work_dir / f"seed-{seed}"
        try:
            train(CONFIG, output, overrides={**overrides, "system.seed": seed})
        except TimeBudgetSpent as stop:
            if args.all_germeval:  # no held-out data to pick a "best so far": a shorter run is another recipe
                sys.stderr.write(f"{stop} before --max-steps; nothing installed\n")
                return 1
            sys.stderr.write(f"{stop}; using the best model so far\n")
        members.append(output / ("model-last" if args.all_germeval else "model-best"))
    import spacy

    from enrich.german.ensemble import assemble
    from enrich.german.rules import add_rules

    best = members[0] if len(members) == 1 else assemble(members, work_dir / "ensemble")
    report: dict[str, Any] = {"variant": variant, "sources": counts, "seeds": args.seeds}
    if args.all_germeval:
        report["held_out_dev"] = "not measured: the held-out sentences are training data in this run"
    else:
        report["held_out_dev_members"] = [evaluate(spacy.load(m), held_out) for m in members]
        report["held_out_dev"] = evaluate(spacy.load(best), held_out)
        report["held_out_dev_with_rules"] = evaluate(add_rules(spacy.load(best)), held_out)
    if args.install:
        if args.with_wikiann:
            parser.error("the WikiANN variant is not shipped (its licence is unclear)")
        report["installed"] = str(install(best, counts))
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
