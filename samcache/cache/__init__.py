"""The Zarr feature cache: its schema (one place), a resumable writer, a reader."""
