"""Where the head's training data is held during training (``preload``): chosen by ``auto``, or forced.

torch-free, so that the CLI can offer the choices without importing torch; the policy is in
``samcache.evaluation.training_data.choose_preload``.
"""

PRELOAD_MODES = ("auto", "ram", "gpu", "off")
