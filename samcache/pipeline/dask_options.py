"""`extract --dask` and `--resources`: parsed without importing Dask, so that a bad value is refused at once."""

from __future__ import annotations

import re

from samcache.errors import SamcacheError


def parse_dask_address(text: str) -> tuple[str, int | None]:
    """'local:N' -> ('local', N); 'slurm:N' -> ('slurm', N); 'tcp://host:port' (or tls://, ucx://, inproc://)
    -> (text, None)."""
    match = re.fullmatch(r"(local|slurm):(\d+)", str(text))
    if match:
        kind, n = match.group(1), int(match.group(2))
        if n < 1:
            raise SamcacheError(f"--dask {kind}:N needs N >= 1")
        return kind, n
    if re.fullmatch(r"(tcp|tls|ucx|inproc)://\S+", str(text)):
        return str(text), None
    raise SamcacheError(f"--dask takes local:N (N workers on this machine), slurm:N (N SLURM jobs, one worker "
                        f"each) or a scheduler address like tcp://HOST:8786, not {text!r}")


def parse_resources(text: str | None) -> dict[str, float]:
    """'GPU=1,MEM=8e9' -> {'GPU': 1.0, 'MEM': 8e9}."""
    if not text:
        return {}
    try:
        pairs = [part.split("=") for part in str(text).split(",")]
        resources = {k.strip(): float(v) for k, v in pairs}
    except ValueError:
        raise SamcacheError(f"--resources expects NAME=AMOUNT[,NAME=AMOUNT], got {text!r}") from None
    if any(not k or v <= 0 for k, v in resources.items()):
        raise SamcacheError(f"--resources expects NAME=AMOUNT with AMOUNT > 0, got {text!r}")
    return resources


# --dask slurm:N's job settings (sbatch's own forms), checked before anything is submitted
_WALLTIME = re.compile(r"\d+(:\d{1,2}){0,2}|\d+-\d{1,2}(:\d{1,2}){0,2}|UNLIMITED|INFINITE")
_MEMORY = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt])i?b?", re.IGNORECASE)  # sbatch's units: 16G = 16GB = 16GiB
_GRES = re.compile(r"[\w.-]+(:[\w.-]+)*(,[\w.-]+(:[\w.-]+)*)*")


def check_walltime(text: str) -> None:
    if not isinstance(text, str):  # YAML reads 02:00:00 as 7200 and 90 as 90: sbatch would read minutes
        raise SamcacheError('expected a string; in YAML quote it, like "2:00:00" (unquoted, YAML reads it as a '
                            'number of seconds)')
    if not _WALLTIME.fullmatch(text):
        raise SamcacheError("expected MINUTES, HH:MM:SS, D-HH or D-HH:MM:SS (sbatch -t's forms)")


def memory_bytes(text: str) -> int:
    """'16GB', '16G' or '16GiB' -> 16 * 2**30, as sbatch --mem reads them (dask-jobqueue would read 16GB as 16e9
    and ask SLURM for 15G)."""
    match = _MEMORY.fullmatch(str(text).strip())
    if not match:
        raise SamcacheError("expected an amount with a unit, like 16GB or 500MB (as sbatch --mem: 1GB = 1024MB)")
    amount = float(match.group(1)) * 1024 ** ("kmgt".index(match.group(2).lower()) + 1)
    if amount < 2**20:
        raise SamcacheError("a SLURM job needs at least 1MiB")
    return int(amount)


def check_gres(text: str) -> None:
    if not _GRES.fullmatch(str(text)):
        raise SamcacheError("expected sbatch --gres's form, like gpu:1 or gpu:a100:2")


def sbatch_option(text: str) -> str:
    """'#SBATCH --qos=high' or '--qos=high' -> '--qos=high'."""
    option = str(text).strip().removeprefix("#SBATCH").strip()
    if not option.startswith("-") or "\n" in option:
        raise SamcacheError("expected one sbatch option, like --qos=high or --constraint=a100")
    return option


def one_word(text: str) -> None:
    if not str(text).strip() or re.search(r"\s", str(text)):
        raise SamcacheError("expected one word, without spaces")
