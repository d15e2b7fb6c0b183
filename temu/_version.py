"""The version of temu: the one place it is written (setup.cfg and every module read it from here)."""

__version__ = "0.1.0"
