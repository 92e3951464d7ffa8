"""The `samcache` command: a thin click layer over the Python API in samcache.pipeline."""

from __future__ import annotations

import sys

import click

from samcache.errors import SamcacheError


class _Group(click.Group):
    """Bad input becomes one line on stderr, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SamcacheError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("\ninterrupted; finished images are kept, re-run the same command to resume", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="samcache")
def cli() -> None:
    """samcache: run SAM's image encoder once, cache embeddings in Zarr, reuse them for
    zero-shot point-prompted decoding (Phase 1) and semantic-head training (Phase 2)."""


def _flags(**kw):
    """Flags left off are None, so the config file and defaults decide."""
    return {k: (True if v is True else None) if isinstance(v, bool) else v for k, v in kw.items()}


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
        return w, h
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT, got {text!r}") from None


@cli.command()
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--train", "n_train", type=int, default=24, show_default=True, help="Train images.")
@click.option("--val", "n_val", type=int, default=8, show_default=True, help="Val images.")
@click.option("--test", "n_test", type=int, default=0, show_default=True, help="Test images.")
@click.option("--size", default="2048x1024", show_default=True, help="WIDTHxHEIGHT of every image.")
@click.option("--seed", type=int, default=0, show_default=True)
def synth(out_dir, n_train, n_val, n_test, size, seed):
    """Write deterministic synthetic street scenes in the Cityscapes layout."""
    from samcache.data.synth import write_synthetic

    splits = {k: v for k, v in {"train": n_train, "val": n_val, "test": n_test}.items() if v > 0}
    paths = write_synthetic(out_dir, splits, size=_size(size), seed=seed)
    click.echo(f"wrote {len(paths)} synthetic images ({', '.join(f'{k} {v}' for k, v in splits.items())}) to {out_dir}")


@cli.command()
@click.option("--data", type=click.Path(), help="Cityscapes root (holds leftImg8bit/ and gtFine/).")
@click.option("--cache", type=str, help="Zarr cache path (local path or fsspec URL).")
@click.option("--split", type=str, help="Split to extract (train, val, test, ...).")
@click.option("--model-type", type=click.Choice(["vit_h", "vit_l", "vit_b", "tiny"]))
@click.option("--checkpoint", type=click.Path(), help="Official SAM .pth checkpoint (not for tiny).")
@click.option("--seed", type=int, help="Weights seed of the tiny model.")
@click.option("--dtype", type=click.Choice(["float16", "float32"]), help="Stored embedding dtype.")
@click.option("--batch-size", type=int)
@click.option("--device", type=str, help="auto, cpu or cuda.")
@click.option("--num-workers", type=int, help="DataLoader workers decoding images.")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), help="Encoder compute precision.")
@click.option("--codec", type=str, help="Compression codec of the arrays.")
@click.option("--rebuild", is_flag=True, help="Recompute the split from scratch.")
@click.option("--limit", type=int, help="Only the first N images (sorted order).")
@click.option("--dask", type=str, help="local:N for a LocalCluster, or tcp://HOST:8786.")
@click.option("--resources", type=str, help="Dask worker resources each task needs, e.g. GPU=1.")
@click.option("--config", "config_file", type=click.Path(), help="YAML config file.")
def extract(config_file, **options):
    """Stage 1: encode each image once and store embeddings + labels in the Zarr cache.

    Re-running resumes (done images are skipped) and appends images new to the split.
    """
    from samcache.pipeline.config import resolve
    from samcache.pipeline.extract import ExtractConfig, extract as run

    cfg = resolve(ExtractConfig, "extract", config_file, **_flags(**options))
    result = run(cfg)
    if cfg.model_type == "tiny" or cfg.checkpoint is None:
        click.echo("note: RANDOM weights (tiny model): embeddings exercise the pipeline, not SAM's accuracy")
    for split in result.stale_splits:
        click.echo(f"warning: split {split} was built with another fingerprint; rebuild it too", err=True)
    click.echo(result.summary_line())
    if result.failed:
        for message in result.failed:
            click.echo(f"failed: {message}", err=True)
        raise SamcacheError(f"{len(result.failed)} image(s) failed and are not marked done (re-run to retry them); "
                            f"first: {result.failed[0]}")


@cli.command()
@click.option("--cache", required=True, type=str, help="Zarr cache path.")
def info(cache):
    """Print the splits, counts, done/total, fingerprint and size on disk of a cache."""
    from samcache.pipeline.info import describe_cache

    click.echo(describe_cache(cache))


@cli.command("zero-shot")
@click.option("--cache", type=str, help="Zarr cache path.")
@click.option("--split", type=str, help="Split to evaluate (default val).")
@click.option("--checkpoint", type=click.Path(), help="SAM checkpoint; only its prompt encoder + decoder load.")
@click.option("--model-type", type=click.Choice(["vit_h", "vit_l", "vit_b", "tiny"]), help="Default: the cache's.")
@click.option("--prompt", type=click.Choice(["random", "center", "per-instance", "multi", "box"]))
@click.option("--points", type=int, help="multi: positive points per class.")
@click.option("--negatives", type=int, help="multi: negative points from other classes.")
@click.option("--multimask", type=click.Choice(["best-score", "oracle", "single"]))
@click.option("--classes", type=click.Choice(["seed5", "cityscapes19"]))
@click.option("--seed", type=int, help="Prompt sampling seed.")
@click.option("--visualize", type=int, help="Overlays to draw.")
@click.option("--out", type=click.Path(), help="Run folder (default runs/<timestamp>-zero-shot-...).")
@click.option("--device", type=str)
@click.option("--images-per-batch", type=int, help="Images whose prompts share a decoder call.")
@click.option("--limit", type=int, help="Only the first N images.")
@click.option("--config", "config_file", type=click.Path(), help="YAML config file.")
def zero_shot(config_file, **options):
    """Phase 1: point-prompted SAM decoding from cached embeddings; per-class IoU and mIoU."""
    from samcache.pipeline.config import resolve
    from samcache.pipeline.zero_shot import ZeroShotConfig, run_zero_shot, summary_table

    record = run_zero_shot(resolve(ZeroShotConfig, "zero_shot", config_file, **_flags(**options)))
    click.echo(summary_table(record))
    click.echo(f"{record['prompts']} prompts on {record['images']} images in {record['seconds']:.1f} s "
               f"({record['prompts_per_s']:.1f} prompts/s); results in {record['out']}")


@cli.command("train-head")
@click.option("--cache", type=str, help="Zarr cache path.")
@click.option("--train-split", type=str)
@click.option("--val-split", type=str)
@click.option("--classes", type=click.Choice(["seed5", "cityscapes19"]))
@click.option("--epochs", type=int)
@click.option("--batch-size", type=int)
@click.option("--lr", type=float)
@click.option("--width", type=int, help="Channels of the two 3x3 conv layers.")
@click.option("--num-workers", type=int, help="DataLoader workers when not preloaded.")
@click.option("--preload", type=click.Choice(["auto", "ram", "gpu", "off"]))
@click.option("--flip", is_flag=True, help="Random horizontal flips of embedding + target.")
@click.option("--seed", type=int)
@click.option("--out", type=click.Path(), help="Run folder (default runs/<timestamp>-head).")
@click.option("--resume", type=click.Path(), help="Continue RUN_DIR from its last epoch.")
@click.option("--save-predictions", is_flag=True, help="Official-style labelIds PNGs of the last epoch.")
@click.option("--visualize", type=int)
@click.option("--device", type=str)
@click.option("--limit", type=int, help="Only the first N train images.")
@click.option("--config", "config_file", type=click.Path(), help="YAML config file.")
def train_head(config_file, **options):
    """Phase 2: train the semantic head on cached embeddings (the encoder never runs)."""
    from pathlib import Path

    from samcache.pipeline.config import resolve
    from samcache.pipeline.evaluate import head_table
    from samcache.pipeline.train_head import HeadConfig, train_head as run

    if options["resume"] and config_file is None:
        config_file = Path(options["resume"]) / "config.yaml"  # the run's own config, flags on top
        if not config_file.is_file():
            raise SamcacheError(f"--resume {options['resume']}: no config.yaml there")
    record = run(resolve(HeadConfig, "train_head", config_file, **_flags(**options)))
    click.echo(f"head on {record['classes']}, {record['epochs']} epochs ({record['epochs_run']} run now), "
               f"preload={record['preload']}, {record['seconds']:.1f} s")
    click.echo(head_table(record["summary"]))
    if record["random_weights"]:
        click.echo("RANDOM-weight embeddings: these numbers show the pipeline working, not SAM's accuracy.")
    click.echo(f"results in {record['out']}")


@cli.command()
@click.option("--head", required=True, type=click.Path(), help="RUN_DIR/head_epoch_N.pt")
@click.option("--cache", type=str, help="Zarr cache path.")
@click.option("--split", type=str, help="Split to evaluate (default val).")
@click.option("--batch-size", type=int)
@click.option("--num-workers", type=int)
@click.option("--device", type=str)
@click.option("--out", type=click.Path(), help="Default RUN_DIR/eval-<split>-epochN.")
@click.option("--save-predictions", is_flag=True)
@click.option("--visualize", type=int)
@click.option("--config", "config_file", type=click.Path(), help="YAML config file.")
def evaluate(config_file, **options):
    """Re-evaluate a saved head on a cache split (dataset-level IoU, as cityscapesScripts)."""
    from samcache.pipeline.config import resolve
    from samcache.pipeline.evaluate import EvaluateConfig, evaluate_head, head_table

    record = evaluate_head(resolve(EvaluateConfig, "evaluate", config_file, **_flags(**options)))
    click.echo(head_table(record["summary"]))
    click.echo(f"results in {record['out']}")


def _print_report(report: dict) -> None:
    click.echo("\nPer-class IoU (dataset-level), Phase 1 zero-shot vs Phase 2 head:\n" + report["iou_table"])
    click.echo("\nCost (seed_reencode_s: what re-running the encoder per stage would have cost):\n"
               + report["cost_table"])
    if report["random_weights"]:
        click.echo("\nRANDOM weights: these numbers come from a randomly initialised model. They show the "
                   "pipeline working end to end, not SAM's accuracy.")
    click.echo("\nreport: " + "  ".join(report["files"]))


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), help="Default runs/<timestamp>-report.")
def report(run_dirs, out):
    """Compare zero-shot and head runs: IoU table, bar chart, cost table (report.md/.csv/.png)."""
    from samcache.pipeline.config import new_run_dir
    from samcache.pipeline.report import build_report

    _print_report(build_report(list(run_dirs), out or new_run_dir("report")))


@cli.command()
@click.option("--out", type=click.Path(file_okay=False), help="Folder for data, cache, runs, report.")
@click.option("--train", type=int, help="Synthetic train images.")
@click.option("--val", type=int, help="Synthetic val images.")
@click.option("--size", type=str, help="WIDTHxHEIGHT of the synthetic images.")
@click.option("--epochs", type=int, help="Head training epochs.")
@click.option("--model-type", type=click.Choice(["auto", "vit_h", "vit_l", "vit_b", "tiny"]),
              help="auto: vit_h if checkpoints/sam_vit_h_4b8939.pth exists, else tiny.")
@click.option("--checkpoint", type=click.Path(), help="SAM checkpoint for vit_*.")
@click.option("--device", type=str)
@click.option("--config", "config_file", type=click.Path(), help="YAML config file (its 'demo' section).")
def demo(config_file, **options):
    """Run everything on the embedded default: synth -> extract -> zero-shot x2 -> head -> report."""
    from samcache.pipeline.config import resolve
    from samcache.pipeline.demo import DemoConfig, run_demo

    cfg = resolve(DemoConfig, "demo", config_file, **_flags(**options))
    result = run_demo(cfg)
    _print_report(result)
    click.echo(f"pictures: {cfg.out}/zero-shot-*/visualizations/  {cfg.out}/head/visualizations/")
    click.echo(f"demo finished in {result['seconds']:.0f} s with the {result['model_type']} model")


def main() -> None:
    cli(prog_name="samcache")


if __name__ == "__main__":
    sys.exit(main())
