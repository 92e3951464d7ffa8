"""`extract --dask` and `--resources`: parsed without importing Dask, so that a bad value is refused at once."""

from __future__ import annotations

import re

from samcache.errors import SamcacheError


def parse_dask_address(text: str) -> tuple[str, int | None]:
    """'local:N' -> ('local', N); 'tcp://host:port' (or tls://, ucx://, inproc://) -> (text, None)."""
    match = re.fullmatch(r"local:(\d+)", str(text))
    if match:
        n = int(match.group(1))
        if n < 1:
            raise SamcacheError("--dask local:N needs N >= 1")
        return "local", n
    if re.fullmatch(r"(tcp|tls|ucx|inproc)://\S+", str(text)):
        return str(text), None
    raise SamcacheError(f"--dask takes local:N (N workers on this machine) or a scheduler address like "
                        f"tcp://HOST:8786, not {text!r}")


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
