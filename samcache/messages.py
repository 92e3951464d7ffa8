"""User-facing wording that appears in more than one place, kept in one place."""

RANDOM_WEIGHTS_TAG = "RANDOM weights"
RANDOM_WEIGHTS_NOTE = (f"{RANDOM_WEIGHTS_TAG}: these numbers come from a randomly initialised model; they show the "
                       "pipeline working end to end, not SAM's accuracy.")
RANDOM_WEIGHTS_NOTE_SOME = ("Runs marked RANDOM have randomly initialised weights: their numbers show the pipeline "
                            "working end to end, not SAM's accuracy.")  # a report mixing random and real weights
RANDOM_WEIGHTS_TITLE = f"[{RANDOM_WEIGHTS_TAG}: pipeline demo, not SAM accuracy]"  # plot titles
RANDOM_WEIGHTS_TITLE_SOME = f"[runs marked RANDOM: {RANDOM_WEIGHTS_TAG}, not SAM accuracy]"  # a mixed report
# a first mask picked against the ground truth (the SAM paper's oracle): never to be read as SAM's own result
ORACLE_FIRST_MASK = " (ORACLE first mask: best of 3 against ground truth)"

# What is true after Ctrl-C / SIGTERM, per command (formatted with the command's own values).
INTERRUPT_ADVICE = {
    "extract": "interrupted; images already marked done are kept: re-run the same command to resume",
    "zero-shot": "interrupted; zero-shot does not resume and wrote no results: re-run the command",
    "clicks": "interrupted; clicks does not resume and wrote no results: re-run the command",
    "train-head-kept": ("interrupted; {kept} kept in {out}: continue with "
                        "`samcache train-head --resume {out}`"),
    "train-head-none": "interrupted before the first epoch finished; nothing was kept: re-run the command",
    "evaluate": "interrupted; evaluate wrote no results: re-run the command",
    "everything": "interrupted; everything does not resume and wrote no results (an earlier run in its folder is kept): "
                  "re-run the command",
    "report": "interrupted; the report was not written: re-run the command",
    "demo": "interrupted; re-run the same demo command: the data and images already cached are reused",
    "synth": "interrupted; re-run the same command: images already written are kept",
    "verify": "interrupted; nothing was marked (rows a --repair already marked stay marked): re-run the command",
    "default": "interrupted",
}


def random_weights_suffix(random: bool) -> str:
    """Appended to titles and one-line summaries made from random weights."""
    return f"  [{RANDOM_WEIGHTS_TAG}]" if random else ""


def count(n: int, word: str) -> str:
    """'1 image', '2 images' (every count a user reads)."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
