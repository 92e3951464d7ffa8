"""SAM pieces: model registry and checkpoints, preprocessing, encoder, prompts, decoder, head."""
