"""`tandem nlu ...`: evaluate the intent classifier, train an adapter (or fine-tune), prune an encoder.

Heavy modules (numpy models, torch) are imported inside the commands, so `tandem --help`
stays fast and works without the nlu extra.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import click

from bot.core.errors import ConfigError
from bot.resources import default_folder


def _settings_data_dir(_ctx, _param, value: Path | None) -> Path:
    """The folder given, else the settings' data folder: where `tandem run` finds what these commands
    cache and train, from whatever folder they are run."""
    if value is not None:
        return value
    from bot.settings import load_settings

    try:
        return Path(load_settings().data_dir)
    except ConfigError as exc:
        raise click.BadParameter(f"no --data-dir given, and the settings do not load: {exc}") from exc


def _data_dir_option(help_text: str):
    return click.option("--data-dir", type=click.Path(path_type=Path), default=None, callback=_settings_data_dir,
                        help=f"{help_text} (default: the settings' data folder, where the bot looks).")


def _catalogue_for(test_rows, train_rows, shots, zero_shot, seed):
    from bot.nlu.datasets import OOS, catalogue_from_data, sample_shots

    labels = sorted({r.label for r in [*test_rows, *(train_rows or [])]} - {OOS})
    if zero_shot or train_rows is None:
        return catalogue_from_data(labels)
    return catalogue_from_data(labels, sample_shots(train_rows, shots, seed))


def _default_split_file(path: Path, given: Path | None) -> Path | None:
    """A CLINC-style JSON file holds its own train/val splits; a CSV has none unless given."""
    if given is not None:
        return given
    return path if path.suffix == ".json" else None


def _default_intents() -> Path:
    """The catalogue the commands work on unless told: ./intents, else the shipped one."""
    try:
        return default_folder("intents")
    except ConfigError as exc:
        raise click.UsageError(f"{exc}; or name a catalogue with --intents") from exc


@click.group()
def nlu() -> None:
    """Intent understanding: evaluate, train, prune."""


@nlu.command("eval")
@click.option("--test", "test_file", type=click.Path(exists=True, path_type=Path), required=True,
              help="CSV (text,label) or CLINC150 data_full.json; label `oos` is out of scope.")
@click.option("--split", default="test", show_default=True, help="JSON split to test on (test = test + oos_test).")
@click.option("--train", "train_file", type=click.Path(exists=True, path_type=Path),
              help="Examples for the catalogue (default: the JSON file's train split).")
@click.option("--train-split", default="train", show_default=True)
@click.option("--shots", type=int, help="Training examples per label (default: all).")
@click.option("--zero-shot", is_flag=True, help="Catalogue from label names alone.")
@click.option("--val", "val_file", type=click.Path(exists=True, path_type=Path),
              help="Data to calibrate the out-of-scope threshold on (default: the JSON file's val split).")
@click.option("--val-split", default="val", show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--model", "models", multiple=True, help="Encoder: minilm, use, e5 or a folder; repeat to compare.")
@_data_dir_option("Where embeddings are cached and trained adapters are found")
@click.option("--no-adapter", is_flag=True, help="Ignore adapters trained by `tandem nlu train`.")
@click.option("--limit", type=int, help="Evaluate a random subset of this many test utterances.")
@click.option("--latency-sample", default=200, show_default=True, help="Utterances timed one at a time.")
@click.option("--threads", default=1, show_default=True, help="torch threads for the encoder.")
@click.option("--cache-texts", is_flag=True,
              help="Cache test/val embeddings in the data folder (repeat runs skip encoding; no throughput figure).")
@click.option("--expand", "expand_count", default=0, show_default=True,
              help="Label expansion: the generative model writes this many examples for each intent without any.")
@click.option("--lm", "lm_model", default="bundled:qwen2.5-1.5b", show_default=True,
              help="The generative model for --expand (any lm.model value).")
@click.option("--lm-threads", type=int, help="CPU threads of the generative model (default: all cores but one).")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write the figures as JSON.")
def eval_command(test_file, split, train_file, train_split, shots, zero_shot, val_file, val_split, seed, models,
                 data_dir, no_adapter, limit, latency_sample, threads, cache_texts, expand_count, lm_model,
                 lm_threads, json_out) -> None:
    """Accuracy, macro-F1, out-of-scope recall/precision, errors and latency of the intent classifier."""
    from bot.nlu.cache import EmbeddingCache
    from bot.nlu.classifier import IntentModel
    from bot.nlu.config import NluConfig
    from bot.nlu.datasets import load_utterances
    from bot.nlu.evaluation import evaluate, format_report

    test = load_utterances(test_file, split)
    if limit and limit < len(test):
        test = random.Random(seed).sample(test, limit)
    train_path = None if zero_shot else _default_split_file(test_file, train_file)
    train = load_utterances(train_path, train_split) if train_path else None
    val_path = _default_split_file(test_file, val_file)
    val = load_utterances(val_path, val_split) if val_path else None
    catalogue = _catalogue_for(test, train, shots, zero_shot, seed)
    if expand_count:
        catalogue = _expanded(catalogue, lm_model, expand_count, "en", data_dir, lm_threads)
    click.echo(f"catalogue: {len(catalogue)} intents, {sum(len(i.texts('examples')) for i in catalogue)} examples; "
               f"test: {len(test)} utterances" + (f"; calibrating on {len(val)}" if val else ""))
    reports = []
    for spec in models or ("minilm",):
        config = NluConfig(encoder=spec, torch_threads=threads, use_trained=not no_adapter)
        model = IntentModel.load(catalogue, config, data_dir)
        if model.adapter is not None:
            click.echo(f"{spec}: using trained adapter {model.adapter_path(data_dir)}")
        reports.append(evaluate(model, test, name=spec, val=val, progress=True, latency_sample=latency_sample,
                                cache=EmbeddingCache(data_dir) if cache_texts else None))
    click.echo(format_report(reports))
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps([r.to_json() for r in reports], indent=2, default=str), encoding="utf-8")
        click.echo(f"wrote {json_out}")


@nlu.command("cascade")
@click.option("--test", "test_file", type=click.Path(exists=True, path_type=Path), required=True,
              help="CSV (text,label) or JSON with splits, labelled with the catalogue's intents (`oos`: nothing claims it).")
@click.option("--split", default="test", show_default=True)
@click.option("--intents", type=click.Path(exists=True, path_type=Path), default=_default_intents,
              show_default="./intents when there is one, else the shipped catalogue")
@click.option("--encoder", default=None, help="nlu.encoder (default: the shipped default).")
@click.option("--language-encoder", "language_encoders", multiple=True, metavar="LANG=ENCODER",
              help="nlu.encoders_by_language entry, e.g. ru=e5; repeat; `none` for none (default: the shipped default).")
@click.option("--limit", type=int, help="Route a random subset of this many messages.")
@click.option("--seed", default=0, show_default=True)
@_data_dir_option("Where embeddings are cached and trained adapters are found")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write the figures as JSON.")
def cascade_command(test_file, split, intents, encoder, language_encoders, limit, seed, data_dir, json_out) -> None:
    """Top-1 accuracy of the whole cascade on the catalogue, and what routed each message (rules, classifier,
    fuzzy, chat act, fallback)."""
    import asyncio

    from bot.nlu.cascade import evaluate_cascade, format_cascade
    from bot.nlu.catalogue import IntentCatalogue
    from bot.nlu.config import NluConfig
    from bot.nlu.datasets import load_utterances

    test = load_utterances(test_file, split)
    if limit and limit < len(test):
        test = random.Random(seed).sample(test, limit)
    update: dict = {}
    if encoder:
        update["encoder"] = encoder
    if language_encoders:
        pairs = [item for item in language_encoders if item != "none"]
        if any("=" not in item for item in pairs):
            raise click.BadParameter("expected LANG=ENCODER, e.g. ru=e5", param_hint="--language-encoder")
        update["encoders_by_language"] = dict(item.split("=", 1) for item in pairs)
    config = NluConfig(**update)
    catalogue = IntentCatalogue.load(intents)
    name = f"{config.encoder} {config.encoders_by_language or '{}'}"
    click.echo(f"catalogue: {len(catalogue)} intents from {intents}; test: {len(test)} messages; "
               f"encoder {config.encoder}, by language {config.encoders_by_language}")
    report = asyncio.run(evaluate_cascade(config, catalogue, data_dir, test, name=name, progress=True))
    click.echo(format_cascade([report]))
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False), encoding="utf-8")
        click.echo(f"wrote {json_out}")


@nlu.command("train")
@click.option("--intents", type=click.Path(exists=True, path_type=Path), default=_default_intents,
              show_default="./intents when there is one, else the shipped catalogue",
              help="Catalogue to train on (ignored with --train).")
@click.option("--train", "train_file", type=click.Path(exists=True, path_type=Path),
              help="Train on labelled data (CSV or CLINC JSON) instead of the catalogue.")
@click.option("--train-split", default="train", show_default=True)
@click.option("--shots", type=int, help="Examples per label from --train (default: all).")
@click.option("--seed", default=0, show_default=True)
@click.option("--val", "val_file", type=click.Path(exists=True, path_type=Path),
              help="Calibrate the out-of-scope center on this data (default: the JSON file's val split).")
@click.option("--val-split", default="val", show_default=True)
@click.option("--model", "spec", default="minilm", show_default=True, help="Encoder: minilm, use, e5 or a folder.")
@click.option("--method", type=click.Choice(["adapter", "encoder"]), default="adapter", show_default=True,
              help="adapter: seconds, on frozen embeddings; encoder: fine-tune a torch encoder (minutes), then an adapter on it.")
@click.option("--epochs", type=int, help="Default: 30 (adapter), 3 (encoder).")
@click.option("--threads", default=2, show_default=True)
@_data_dir_option("Where the trained adapter goes")
def train_command(intents, train_file, train_split, shots, seed, val_file, val_split, spec, method, epochs, threads,
                  data_dir) -> None:
    """Train on the catalogue's examples and descriptions; the result is used automatically."""
    import numpy as np

    from bot.nlu.adapter import train_adapter
    from bot.nlu.cache import EmbeddingCache
    from bot.nlu.catalogue import IntentCatalogue
    from bot.nlu.classifier import IntentModel, catalogue_texts, trained_dir
    from bot.nlu.config import NluConfig
    from bot.nlu.datasets import load_utterances
    from bot.nlu.evaluation import calibrate

    if train_file is not None:
        rows = load_utterances(train_file, train_split)
        catalogue = _catalogue_for([], rows, shots, False, seed)
    else:
        catalogue = IntentCatalogue.load(intents)
    val_path = _default_split_file(train_file, val_file) if train_file else val_file
    val = load_utterances(val_path, val_split) if val_path else None
    # The adapter is trained on what the classifier will run: a fine-tuned copy where there is one.
    config = NluConfig(encoder=spec, torch_threads=threads, use_trained=True)
    texts, owners, _ = catalogue_texts(catalogue)
    if method == "encoder":
        from bot.nlu.encoders import fused_parts, resolve_torch_path
        from bot.nlu.finetune import finetune_encoder

        if fused_parts(spec):
            raise click.UsageError(f"--method encoder fine-tunes one torch encoder: train --model "
                                   f"{fused_parts(spec)[0]} --method encoder, then --model {spec} for its adapter")

        out = trained_dir(data_dir, spec)
        stats = finetune_encoder(resolve_torch_path(spec), out, texts, owners, epochs=epochs or 3, threads=threads,
                                 seed=seed, progress=True, meta={"fingerprint": catalogue.fingerprint()})
        if val:
            model = IntentModel.load(catalogue, config.model_copy(update={"encoder": str(out), "use_trained": False}),
                                     data_dir)
            stats["center"] = calibrate(model, val, progress=True)
            (out / "tandem_nlu.json").write_text(json.dumps(stats, indent=2), encoding="utf-8")
        click.echo(f"fine-tuned encoder saved to {out}: {stats}")
        # Then an adapter on top, as on a frozen encoder (CLINC150 10-shot: BENCHMARKS.md, "Attempts").
        epochs = None
    model = IntentModel.load(catalogue, config, data_dir)
    adapter = train_adapter(model.raw_vectors, np.array(owners), catalogue.names, epochs=epochs or 30,
                            threads=threads, seed=seed, progress=True)
    if val:
        adapted = IntentModel(catalogue, model.encoder, model.raw_vectors, config, model.scorer.center, adapter)
        adapter.center = calibrate(adapted, val, progress=True, cache=EmbeddingCache(data_dir))
    path = adapter.save(model.adapter_path(data_dir))
    click.echo(f"adapter saved to {path}: {adapter.stats}, center {adapter.center}")


def _expanded(catalogue, lm_model: str, count: int, language: str, data_dir: Path, threads: int | None = None):
    """The catalogue with model-written examples for its example-less intents (progress bar, cached)."""
    import asyncio

    from tqdm import tqdm

    from bot.models.config import LmConfig
    from bot.models.runtime import build_language_model
    from bot.nlu.expansion import LabelExpander

    async def run():
        model = build_language_model(LmConfig(model=lm_model, n_threads=threads), data_dir)
        await model.start()
        try:
            with tqdm(desc="writing examples", unit="intent", leave=False) as bar:
                def step(done: int, total: int) -> None:
                    bar.total = total
                    bar.update(1)

                return await LabelExpander(model, data_dir, count=count, language=language).expand(catalogue, step)
        finally:
            await model.close()

    return asyncio.run(run())


@nlu.command("expand")
@click.option("--intents", type=click.Path(exists=True, path_type=Path), default=_default_intents,
              show_default="./intents when there is one, else the shipped catalogue",
              help="The catalogue (a YAML file or a folder of them).")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="YAML file for the generated examples (review it, then merge what is right).")
@click.option("--count", default=8, show_default=True, help="Examples per intent.")
@click.option("--language", type=click.Choice(["en", "ru"]), default="en", show_default=True)
@click.option("--lm", "lm_model", default="bundled:qwen2.5-1.5b", show_default=True, help="Any lm.model value.")
@click.option("--lm-threads", type=int, help="CPU threads of the generative model (default: all cores but one).")
@_data_dir_option("Where the generative model's files are prepared")
def expand_command(intents, out, count, language, lm_model, lm_threads, data_dir) -> None:
    """Have the generative model write examples for intents that have none (zero-shot label expansion)."""
    import yaml

    from bot.nlu.catalogue import IntentCatalogue

    catalogue = IntentCatalogue.load(intents)
    before = {i.name for i in catalogue if i.texts("examples")}
    expanded = _expanded(catalogue, lm_model, count, language, data_dir, lm_threads)
    written = {i.name: {"examples": {language: list(i.texts("examples", language))}}
               for i in expanded if i.name not in before and i.texts("examples", language)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("# Examples written by " + lm_model + ": read them before you merge them into intents/.\n"
                   + yaml.safe_dump({"intents": written}, allow_unicode=True, sort_keys=True), encoding="utf-8")
    click.echo(f"{len(written)} of {len(catalogue) - len(before)} intents without examples got some; wrote {out}")


@nlu.command("prune")
@click.option("--model", "spec", default="minilm", show_default=True, help="A torch encoder: minilm or a folder.")
@click.option("--drop", default=3, show_default=True, help="How many top transformer layers to drop.")
@click.option("--out", type=click.Path(path_type=Path), help="Default: <data-dir>/nlu/pruned/<name>-drop<K>.")
@_data_dir_option("Where the pruned encoder goes")
def prune_command(spec, drop, out, data_dir) -> None:
    """Copy a sentence-transformers encoder without its top K layers ("Poor Man's BERT")."""
    from bot.nlu.encoders import resolve_torch_path
    from bot.nlu.pruning import prune_encoder

    source = resolve_torch_path(spec)
    out = out or data_dir / "nlu" / "pruned" / f"{'minilm' if spec == 'minilm' else source.name}-drop{drop}"
    stats = prune_encoder(source, out, drop)
    click.echo(f"pruned encoder: {stats['kept']} of {stats['layers']} layers kept, saved to {out}")
    click.echo(f"compare: tandem nlu eval --test FILE --model {spec} --model {out}")
