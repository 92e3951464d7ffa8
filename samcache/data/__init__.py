"""Datasets: the official Cityscapes layout, its class table, and a synthetic generator."""
