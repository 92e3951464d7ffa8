"""Scoring and pictures shared by the stages: IoU bookkeeping, confusion matrices, overlays."""
