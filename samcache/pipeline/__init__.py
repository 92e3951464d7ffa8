"""Stages and the click CLI. Each stage is a plain function over a config dataclass."""
