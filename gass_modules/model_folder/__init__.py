"""Model folders: the card a folder carries, safe loading and the bundled models.

Example
-------
>>> import gass_modules.model_folder as pkg
>>> all(hasattr(pkg, name) for name in pkg.__all__)
True
"""

from gass_modules.model_folder.folder import (
    ModelCard,
    describe_separator,
    load_separator_checkpoint,
    save_model_folder,
)
from gass_modules.model_folder.pretrained import bundled_model_folder, choose_model, default_model
from gass_modules.model_folder.safe_hparams import (
    UntrustedCodeError,
    load_model_description,
    register_separator,
)

__all__ = [
    "ModelCard",
    "save_model_folder",
    "describe_separator",
    "load_separator_checkpoint",
    "UntrustedCodeError",
    "register_separator",
    "load_model_description",
    "default_model",
    "choose_model",
    "bundled_model_folder",
]
