"""The `samcache` command: a thin click layer over the Python API in samcache.pipeline.

Options are generated from the config classes (``configs/``): their types, defaults, choices
and help live there. Each command imports what it runs on (torch, the models, Zarr) only when it
runs, so that `samcache --help` answers at once. Every failure the user can cause becomes one line
on stderr and a non-zero exit (``cli_group.py``).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import click

from samcache.errors import SamcacheError, SamcacheWarning
from samcache.messages import RANDOM_WEIGHTS_NOTE, RANDOM_WEIGHTS_NOTE_SOME, count
from samcache.plugins import load_plugins
from samcache.procs import install_signal_handlers
from samcache.pipeline.cli_group import OneLineGroup, show_warning
from samcache.pipeline.cli_options import command_options
from samcache.pipeline.configs import (ClicksConfig, DeleteSplitConfig, DemoConfig, EvaluateConfig, EverythingConfig,
                                       ExportConfig, ExtractConfig,
                                       HeadConfig, ImportConfig, InfoConfig, ReportConfig, SweepConfig, SynthConfig,
                                       UpgradeConfig, VerifyConfig, ZeroShotConfig)


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="samcache")
def cli() -> None:
    """samcache: run SAM's image encoder once, cache embeddings in Zarr, reuse them for
    zero-shot decoding of prompts (Phase 1: points, boxes, clicks, SAM 3 text) and semantic-head training
    (Phase 2)."""
    warnings.showwarning = show_warning  # samcache's warnings as one 'warning: ...' line each
    warnings.simplefilter("always", SamcacheWarning)
    load_plugins()  # SAMCACHE_PLUGINS: registrations from outside, before the command reads any registry


@cli.command()
@command_options(SynthConfig, config_option=False)
def synth(cfg: SynthConfig, quiet: bool):
    """Write deterministic synthetic street scenes in a dataset's official layout (default Cityscapes)."""
    from samcache.choices import parse_size
    from samcache.data.synth import write_synthetic

    splits = {k: v for k, v in {"train": cfg.train, "val": cfg.val, "test": cfg.test}.items() if v > 0}
    if not splits:
        raise SamcacheError("nothing to write: give --train, --val or --test a count above 0")
    paths = write_synthetic(cfg.out_dir, splits, size=parse_size(cfg.size), seed=cfg.seed, progress=not quiet,
                            overwrite=cfg.overwrite, dataset=cfg.dataset)
    click.echo(f"wrote {count(len(paths), 'synthetic image')} ({', '.join(f'{k} {v}' for k, v in splits.items())}) "
               f"to {cfg.out_dir} in the {cfg.dataset} layout")


@cli.command()
@command_options(ExtractConfig)
def extract(cfg: ExtractConfig, quiet: bool):
    """Stage 1: encode each image once and store embeddings + labels in the Zarr cache.

    Re-running resumes (done images are skipped) and appends images new to the split.
    """
    from samcache.pipeline.extract import extract as run

    result = run(cfg, progress=not quiet)
    if cfg.checkpoint is None:
        click.echo(f"note: {RANDOM_WEIGHTS_NOTE}")
    if result.moved:
        click.echo(result.moved)
    for split in result.stale_splits:
        click.echo(f"warning: split {split} was built with another fingerprint; rebuild it too", err=True)
    if result.dropped:
        click.echo(f"dropped {len(result.dropped)} image(s) never encoded whose files are gone from the data "
                   f"folder (no longer expected): {', '.join(result.dropped[:5])}"
                   + (" ..." if len(result.dropped) > 5 else ""))
    if result.gone_done:
        click.echo(f"note: {len(result.gone_done)} cached image(s) are no longer in the data folder; "
                   f"their cached rows are kept")
    if result.damage:
        click.echo(f"warning: {result.damage}", err=True)
    click.echo(result.summary_line())
    if result.failed:
        for message in result.failed:
            click.echo(f"failed: {message}", err=True)
        raise SamcacheError(f"{len(result.failed)} image(s) failed and are not marked done (fix or remove them, "
                            f"then re-run); first: {result.failed[0]}")


@cli.command()
@command_options(InfoConfig)
def info(cfg: InfoConfig, quiet: bool):
    """Print the splits, counts, done/total, fingerprint and size on disk of a cache."""
    from samcache.pipeline.info import describe_cache

    click.echo(describe_cache(cfg.cache))


@cli.command()
@command_options(VerifyConfig, config_option=False)
def verify(cfg: VerifyConfig, quiet: bool):
    """Read every row of every array of a split: list damaged rows (exit 1), or say it is clean.

    With --repair, damaged rows are marked not done, and a plain `samcache extract` re-encodes them.
    """
    from samcache.pipeline.verify import summary, verify as run

    click.echo(summary(cfg, run(cfg, progress=not quiet, echo=click.echo)))


@cli.command()
@command_options(ExportConfig, config_option=False)
def export(cfg: ExportConfig, quiet: bool):
    """Write a Zarr cache (all splits, or --split ...) as one HDF5 file, for quotas that count files.

    CACHE is the Zarr cache to export; OUT the .h5 (or .hdf5) file to write (new, or an earlier export
    with --overwrite). Each split is copied under its lock: a split being extracted is refused.
    """
    from samcache.cache.hdf5 import export_h5

    _not_in_a_run("OUT", cfg.out)
    result = export_h5(cfg.cache, cfg.out, cfg.split, cfg.compression, cfg.overwrite)
    click.echo(f"exported {', '.join(result['splits'])} to {cfg.out}: {result['bytes'] / 2**20:.1f} MiB "
               f"({result['compression']})")


def _not_in_a_run(name: str, path: str) -> None:
    from samcache.pipeline.run_folder import enclosing_run

    run = enclosing_run(Path(path).parent)
    if run is not None:
        raise SamcacheError(f"{name} {path} lies inside the run folder {run}; write it elsewhere")


@cli.command("import")
@command_options(ImportConfig, config_option=False)
def import_(cfg: ImportConfig, quiet: bool):
    """Turn an exported HDF5 file back into a Zarr cache: every chunk and attribute value as exported.

    H5 is a file written by `samcache export`; CACHE the new Zarr store to create (a new or empty path).
    """
    from samcache.cache.hdf5 import import_h5

    _not_in_a_run("CACHE", cfg.cache)
    result = import_h5(cfg.h5, cfg.cache)
    click.echo(f"imported {', '.join(result['splits'])} into {cfg.cache}")


@cli.command("delete-split")
@command_options(DeleteSplitConfig)
def delete_split(cfg: DeleteSplitConfig, quiet: bool):
    """Delete one split of a Zarr cache (refused while it is being extracted or exported; needs --yes)."""
    from samcache.cache.deletion import delete_cache_split, split_summary

    if not cfg.yes:
        images, nbytes = split_summary(cfg.cache, cfg.split)
        raise SamcacheError(f"this deletes split {cfg.split} of {cfg.cache} ({count(images, 'image')}, "
                            f"{nbytes / 2**20:.1f} MiB); pass --yes to delete it")
    done = delete_cache_split(cfg.cache, cfg.split)
    what = "deleted" if done.finished else "finished deleting the interrupted"
    click.echo(f"{what} split {done.split} of {cfg.cache} ({count(done.images, 'image')}, "
               f"{done.nbytes / 2**20:.1f} MiB freed)")


@cli.command()
@command_options(UpgradeConfig, config_option=False)
def upgrade(cfg: UpgradeConfig, quiet: bool):
    """Upgrade a format-1 or format-2 cache to format 3 in place (attributes only; no array is rewritten)."""
    from samcache.cache.schema import FORMAT_VERSION
    from samcache.cache.store import upgrade as run

    changed = run(cfg.cache)
    click.echo(f"upgraded {cfg.cache} to format {FORMAT_VERSION}, rewriting attributes only (no array): "
               f"{'; '.join(changed)}" if changed else f"{cfg.cache} is already format {FORMAT_VERSION}; nothing to do")


@cli.command("zero-shot")
@command_options(ZeroShotConfig)
def zero_shot(cfg: ZeroShotConfig, quiet: bool):
    """Phase 1: prompts (points, boxes; SAM 3: class names as text) decoded from the cache; per-class IoU."""
    from samcache.pipeline.zero_shot import run_zero_shot, summary_table

    record = run_zero_shot(cfg, progress=not quiet)
    click.echo(summary_table(record))
    click.echo(f"{count(record['prompts'], 'prompt')} on {count(record['images'], 'image')} in {record['seconds']:.1f} s "
               f"({record['prompts_per_s']:.1f} prompts/s); results in {record['out']}")


@cli.command()
@command_options(SweepConfig)
def sweep(cfg: SweepConfig, quiet: bool):
    """Score composition settings of SAM 3 text prompts from stored decoder outputs, without the model.

    RUNS are `zero-shot --prompt text --keep-scores` run folders (one per prompt set); every combination of
    the values given is scored (sweep.csv, sweep_heatmap.png), each cell equal to a full zero-shot run.
    """
    from samcache.pipeline.report_sweep import MEANINGLESS
    from samcache.pipeline.sweep import run_sweep

    record = run_sweep(cfg, progress=not quiet)
    click.echo(record["table"])
    if record["random_weights"]:
        click.echo(MEANINGLESS)
    click.echo(f"{count(record['settings'], 'setting')} on {count(record['images'], 'image')} in "
               f"{record['seconds']:.1f} s; best {record['best']} (mIoU {record['best_miou']:.4f}); "
               f"results in {record['out']}")


@cli.command()
@command_options(EverythingConfig)
def everything(cfg: EverythingConfig, quiet: bool):
    """Phase 1 + 2: SAM's automatic mask generator on the cache (upstream's pipeline, no encoder): masks/ of
    COCO RLE records per image; --refine-with a head: each mask takes the head's majority class, scored."""
    from samcache.pipeline.everything import run_everything, summary_table

    record = run_everything(cfg, progress=not quiet)
    click.echo(summary_table(record))
    click.echo(f"{count(record['images'], 'image')} in {record['seconds']:.1f} s; results in {record['out']}")


@cli.command()
@command_options(ClicksConfig)
def clicks(cfg: ClicksConfig, quiet: bool):
    """Phase 1, interactive: per-object clicks as in the SAM paper (mIoU@k, NoC@85/90) from the cache."""
    from samcache.pipeline.clicks import run_clicks, summary_table

    record = run_clicks(cfg, progress=not quiet)
    click.echo(summary_table(record))
    click.echo(f"{count(record['clicks'], 'click')} on {count(record['objects'], 'object')} of "
               f"{count(record['images'], 'image')} in "
               f"{record['seconds']:.1f} s ({record['clicks_per_s']:.1f} clicks/s); results in {record['out']}")


@cli.command("train-head")
@command_options(HeadConfig)
def train_head(cfg: HeadConfig, quiet: bool):
    """Phase 2: train the semantic head on cached embeddings (the encoder never runs)."""
    from samcache.pipeline.evaluate import head_table
    from samcache.pipeline.head_checkpoints import describe_epochs
    from samcache.pipeline.provenance import describe
    from samcache.pipeline.train_head import train_head as run

    record = run(cfg, progress=not quiet)
    sessions = len(record["sessions"])
    click.echo(f"{cfg.head} head on {record['classes']}, {count(record['epochs'], 'epoch')} "
               f"({record['epochs_run']} run now), preload={record['preload']}, {record['seconds']:.1f} s"
               + (f" in {sessions} sessions" if sessions > 1 else ""))
    click.echo(f"scored on {describe(record['provenance'])}")
    click.echo(head_table(record["summary"], record["random_weights"]))
    click.echo(describe_epochs(record))
    click.echo(f"results in {record['out']}")


@cli.command()
@command_options(EvaluateConfig)
def evaluate(cfg: EvaluateConfig, quiet: bool):
    """Re-evaluate a saved head on a cache split (dataset-level IoU, as cityscapesScripts).

    --head is a head_epoch_N.pt file, or a train-head run folder (its best epoch by val mIoU, or --epoch last).
    """
    from samcache.pipeline.evaluate import head_table, run_evaluate
    from samcache.pipeline.provenance import describe

    record = run_evaluate(cfg, progress=not quiet)
    if record["head_choice"]:
        click.echo(f"evaluated {record['head_choice']}")
    click.echo(f"scored on {describe(record['provenance'])}")
    click.echo(head_table(record["summary"], record["random_weights"]))
    click.echo(f"results in {record['out']}")


def _print_report(report: dict) -> None:
    from samcache.pipeline.provenance import TRAIN_IS_VAL_NOTE

    click.echo("\nPhase 1 vs Phase 2 (per class):\n\n" + report["iou_table"])
    click.echo("\nCost (seed_reencode_s: what re-running the encoder per stage would have cost):\n"
               + report["cost_table"])
    click.echo("\nRuns (split, model, images scored of the split's):\n" + report["runs_text"])
    if report["random_weights"]:
        click.echo("\n" + (RANDOM_WEIGHTS_NOTE_SOME if report["random_mixed"] else RANDOM_WEIGHTS_NOTE))
    if report.get("train_is_val"):
        click.echo("\n" + TRAIN_IS_VAL_NOTE)
    if report.get("gallery"):
        click.echo("\n" + report["gallery"])
    click.echo("\nreport: " + "  ".join(report["files"]))


@cli.command()
@command_options(ReportConfig, config_option=False)
def report(cfg: ReportConfig, quiet: bool):
    """Compare zero-shot, clicks, train-head and evaluate runs: IoU and click tables, charts, cost.

    RUNS are run folders; writes report.md, report.csv, report_iou.png (and report_clicks.png), and report.html:
    the same as one web page, with training curves and a per-image gallery.
    """
    from samcache.pipeline.config import new_run_dir
    from samcache.pipeline.report import build_report

    _print_report(build_report(cfg.runs, cfg.out or new_run_dir("report"), cfg.overwrite, cfg.gallery))


@cli.command()
@command_options(DemoConfig)
def demo(cfg: DemoConfig, quiet: bool):
    """The whole pipeline on the embedded default: synth -> extract -> zero-shot x2 -> clicks -> head -> SAM's
    automatic masks refining the head -> report."""
    from samcache.pipeline.demo import run_demo

    result = run_demo(cfg, progress=not quiet)
    _print_report(result)
    click.echo(f"pictures: {cfg.out}/zero-shot-*/visualizations/  {cfg.out}/clicks/visualizations/  "
               f"{cfg.out}/head/visualizations/" + ("  " + str(Path(cfg.out) / "head-sam-masks" / "visualizations/")
                                                    if any(Path(r).name == "head-sam-masks" for r in result["run_dirs"])
                                                    else ""))
    click.echo(f"demo finished in {result['seconds']:.0f} s with the {result['model_type']} model")
    click.echo(f"open the report in a browser: {Path(result['out']).resolve() / 'report.html'}")


def main() -> None:
    install_signal_handlers()
    cli(prog_name="samcache", obj={"hard_exit": True})


if __name__ == "__main__":
    sys.exit(main())
