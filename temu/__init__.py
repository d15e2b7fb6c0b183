"""temu: TeMu-IQA no-reference image quality assessment on a frozen CLIP backbone."""

__version__ = "0.1.0.dev0"
