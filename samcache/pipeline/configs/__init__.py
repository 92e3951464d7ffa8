"""Every command's settings: type, default, range, choices and help, in one place per group of commands.

Choices come from the registries (model types, codecs, prompt strategies, class sets, ...), never
retyped; model types are read from the family registry when a command runs. The CLI options, their
--help, YAML validation and the saved config.yaml all come from these classes (see ``config.py``).
Nothing here imports torch, numpy or Zarr: `samcache --help` imports these modules.
"""

# imported in this order, which is the order error messages list the YAML sections in
from samcache.pipeline.configs.encoding import ExtractConfig
from samcache.pipeline.configs.prompting import ClicksConfig, DecodingConfig, ZeroShotConfig
from samcache.pipeline.configs.heads import EvaluateConfig, HeadConfig
from samcache.pipeline.configs.everything import EverythingConfig
from samcache.pipeline.configs.sweeping import SweepConfig
from samcache.pipeline.configs.tools import (DeleteSplitConfig, DemoConfig, ExportConfig, ImportConfig, InfoConfig,
                                             ReportConfig, SynthConfig, UpgradeConfig, VerifyConfig)
from samcache.pipeline.configs.storage import StorageConfig

__all__ = ["ExtractConfig", "DecodingConfig", "ZeroShotConfig", "ClicksConfig", "HeadConfig", "EvaluateConfig", "EverythingConfig",
           "ReportConfig", "SweepConfig", "SynthConfig", "ExportConfig", "ImportConfig", "UpgradeConfig", "InfoConfig",
           "DeleteSplitConfig", "DemoConfig", "VerifyConfig", "StorageConfig"]
